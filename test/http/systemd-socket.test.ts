// `serve --web.systemd-socket`: the socket comes from systemd (LISTEN_FDS/LISTEN_PID, fd 3).
// Passed for real by systemd's own `systemd-socket-activate` to the built CLI (what a .socket
// unit does), and refused clearly when there is no socket for this process.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SD_LISTEN_FDS_START, systemdListenFd } from '../../src/http/systemd-socket.js';
import { isDesyncError } from '../../src/util/errors.js';
import { CLI, runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/prometheus.js';
import { requireTools } from '../helpers/tools.js';

describe('systemdListenFd', () => {
  it('takes fd 3 when LISTEN_PID is this process and LISTEN_FDS is 1, and unsets LISTEN_* for children', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '4242', LISTEN_FDNAMES: 'x', PATH: '/bin' };
    expect(systemdListenFd(env, 4242)).toBe(SD_LISTEN_FDS_START);
    expect(env).toEqual({ PATH: '/bin' });
  });

  it.each([
    [{}, /no socket passed by systemd \(LISTEN_FDS\/LISTEN_PID are not set\).*--web\.listen-address/],
    [{ LISTEN_FDS: '1', LISTEN_PID: '1' }, /passed to process 1, not to this one \(4242\)/],
    [{ LISTEN_FDS: '0', LISTEN_PID: '4242' }, /LISTEN_FDS="0": no socket was passed/],
    [{ LISTEN_FDS: 'x', LISTEN_PID: '4242' }, /LISTEN_FDS="x"/],
    [{ LISTEN_FDS: '2', LISTEN_PID: '4242' }, /2 sockets passed; serve listens on exactly one/],
  ])('%j: E_LISTEN saying why', (env, message) => {
    const copy: NodeJS.ProcessEnv = { ...env };
    let err: unknown;
    try {
      systemdListenFd(copy, 4242);
    } catch (e) {
      err = e;
    }
    expect(isDesyncError(err) && err.code).toBe('E_LISTEN');
    expect((err as Error).message).toMatch(message);
    expect(copy.LISTEN_FDS).toBeUndefined(); // never handed on, even when refused
  });
});

describe.skipIf(!requireTools('systemd-socket-activate'))('the built CLI under systemd-socket-activate', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    dir = undefined;
  });

  async function config(): Promise<string> {
    dir = await mkdtemp(join(tmpdir(), 'nixos-desync-socket-'));
    const file = join(dir, 'config.json');
    // A fresh host (monitor mode): nothing there yet is not an error for serve.
    await writeFile(file, JSON.stringify({ stateDir: join(dir, 'state'), profilesDir: join(dir, 'profiles'), runDir: join(dir, 'run'), exporter: { listenAddress: '127.0.0.1:1' } }));
    return file;
  }

  it('serves on the socket systemd opened (the listen address is not used), and stops on SIGTERM', async () => {
    const cfg = await config();
    const port = await freePort();
    const child = spawn('systemd-socket-activate', ['-l', `127.0.0.1:${port}`, process.execPath, CLI, 'serve', '--config', cfg, '--web.systemd-socket'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => void (stderr += b.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      // systemd-socket-activate binds, then execs serve on the first connection, as systemd does.
      for (let i = 0; i < 200 && !/Listening on/.test(stderr); i++) await new Promise((r) => setTimeout(r, 25));
      expect(stderr).toMatch(new RegExp(`Listening on 127\\.0\\.0\\.1:${port} as 3`));
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(20_000) });
      expect(res.status).toBe(200);
      expect(await res.text()).toMatch(/^nixos_desync_build_info\{version=/m);
      const listening = stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'listening');
      expect(listening).toMatchObject({ systemdSocket: true, url: `http://127.0.0.1:${port}/` });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 30_000);

  it('without a socket from systemd: exit 1 and the reason, nothing listens', async () => {
    const cfg = await config();
    const r = await runCli(['serve', '--config', cfg, '--web.systemd-socket'], { LISTEN_FDS: undefined, LISTEN_PID: undefined });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--web\.systemd-socket: no socket passed by systemd/);
  });
});
