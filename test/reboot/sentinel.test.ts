import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { syncSentinel } from '../../src/reboot/sentinel.js';
import type { RebootReason } from '../../src/reboot/triggers.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixos-desync-sentinel-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const kernel: RebootReason = { trigger: 'kernel', booted: '/nix/store/a-linux/bzImage', next: '/nix/store/b-linux/bzImage' };

it('written with one reason per line while required, left alone when unchanged, removed after', async () => {
  const p = join(dir, 'reboot-required');
  expect(await syncSentinel(p, [kernel])).toBe('written');
  expect(await readFile(p, 'utf8')).toBe('# nixos-desync: reboot required\nkernel: /nix/store/a-linux/bzImage → /nix/store/b-linux/bzImage\n');
  const before = (await stat(p)).mtimeMs;
  expect(await syncSentinel(p, [kernel])).toBe('unchanged');
  expect((await stat(p)).mtimeMs).toBe(before);
  expect(await syncSentinel(p, [])).toBe('removed');
  await expect(stat(p)).rejects.toThrow();
  expect(await syncSentinel(p, [])).toBe('unchanged');
});

it("another tool's sentinel (a package's hook, kured's own) is never removed", async () => {
  const p = join(dir, 'reboot-required');
  await writeFile(p, '*** System restart required ***\n');
  expect(await syncSentinel(p, [])).toBe('unchanged');
  expect(await readFile(p, 'utf8')).toMatch(/System restart/);
});

it('null: no sentinel', async () => {
  expect(await syncSentinel(null, [kernel])).toBe('unchanged');
});
