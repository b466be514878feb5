// exporter.socketActivation in a real systemd (test/helpers/systemd.ts): the module's
// nixos-desync-exporter.socket listens from boot, the service is started by the first
// connection with the socket (serve --web.systemd-socket, as its DynamicUser), and after the
// service is stopped the socket still listens and the next scrape starts it again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTools } from '../helpers/tools.js';
import { evaluateUnits, moduleStandins, storePath } from '../helpers/module-units.js';
import { bootSystemd, requireSystemd, type SystemdContainer } from '../helpers/systemd.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');
const HTTP_GET = join(ROOT, 'test/helpers/http-get.mjs');
const SOCKET = 'nixos-desync-exporter.socket';
const SERVICE = 'nixos-desync-exporter.service';

const ok = requireTools('nix-instantiate', 'nix-store') && requireSystemd();

describe.skipIf(!ok)('exporter.socketActivation in a real systemd', () => {
  let tmp: string;
  let c: SystemdContainer;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'nixos-desync-socksd-'));
    const { pkg, systemd, nix } = moduleStandins(tmp);
    const nixpkgs = storePath(tmp, 'nixpkgs-socket', { 'default.nix': '{ ... }: { }\n' });
    const host = join(tmp, 'host.nix');
    writeFileSync(host, [
      '{ lib, testArgs, ... }:',
      '{',
      '  systemd.package = lib.mkForce testArgs.systemdPackage;',
      '  nix.package = lib.mkForce testArgs.nixPackage;',
      '  services.nixos-desync = { enable = true; exporter.socketActivation = true; };',
      '}',
      '',
    ].join('\n'));
    const { units } = evaluateUnits(host, pkg, nixpkgs, { systemdPackage: systemd, nixPackage: nix });
    c = await bootSystemd({
      units: { [SOCKET]: units[SOCKET]!, [SERVICE]: units[SERVICE]! },
      binds: [
        { src: '/nix/store', readOnly: true },
        { src: ROOT, readOnly: true },
        { src: process.execPath, readOnly: true },
      ],
    });
    // What NixOS makes of wantedBy = [ "sockets.target" ] (a sockets.target.wants link), then a boot.
    expect((await c.systemctl('enable', SOCKET)).exitCode).toBe(0);
    await c.reboot();
  }, 120_000);

  afterAll(async () => {
    await c?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const state = async (unit: string): Promise<string> => (await c.systemctl('is-active', unit)).stdout.trim();
  const scrape = async (): Promise<{ exitCode: number; stdout: string }> => c.exec([process.execPath, HTTP_GET, 'http://127.0.0.1:9793/metrics'], { timeoutMs: 30_000 });

  it('at boot the socket listens and the exporter is not running; the first scrape starts it with the socket', async () => {
    expect(await state(SOCKET)).toBe('active');
    expect(await state(SERVICE)).toBe('inactive');
    const r = await scrape();
    expect(r.exitCode, (await c.exec(['journalctl', '--no-pager', '-o', 'cat', '-u', SERVICE])).stdout).toBe(0);
    expect(r.stdout).toMatch(/^nixos_desync_build_info\{version=/m);
    expect(await state(SERVICE)).toBe('active');
    const log = (await c.exec(['journalctl', '--no-pager', '-o', 'cat', '-u', SERVICE])).stdout;
    expect(log).toMatch(/"msg":"listening".*"systemdSocket":true/);
  }, 60_000);

  it('a stopped exporter is started again by the next scrape: the socket keeps listening', async () => {
    await c.systemctl('stop', SERVICE);
    expect(await state(SERVICE)).toBe('inactive');
    expect(await state(SOCKET)).toBe('active');
    const r = await scrape();
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^nixos_desync_build_info\{version=/m);
    expect(await state(SERVICE)).toBe('active');
  }, 60_000);
});
