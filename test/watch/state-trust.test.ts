// Who holds the run lock, as the exporter sees it (also inside its sandbox, where boot id and
// /proc/stat are hidden), and the exporter's trust rule for the state directory.
import { chmod, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exporterBootInfo, runLockHolder, stateTrustProblem } from '../../src/watch/state-trust.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nixos-desync-trust-'));
  await chmod(dir, 0o755);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const lock = (o: Record<string, unknown>): Promise<void> => writeFile(join(dir, 'lock'), JSON.stringify(o) + '\n');

describe('runLockHolder', () => {
  it('no lock, or a lock whose process is gone: nobody holds it', async () => {
    expect(await runLockHolder(dir)).toBeNull();
    await lock({ pid: 2 ** 22 + 12345, startedAt: '2026-01-10T04:00:00.000Z' });
    expect(await runLockHolder(dir)).toBeNull();
  });

  it('a live owner holds it', async () => {
    await lock({ pid: process.pid, startedAt: '2026-01-10T04:00:00.000Z' });
    expect(await runLockHolder(dir)).toEqual({ pid: process.pid, startedAt: '2026-01-10T04:00:00.000Z' });
  });

  it('a lock written before this boot is stale even when its pid is alive now (PID reuse after a reboot), with only the uptime to go by', async () => {
    await lock({ pid: process.pid, startedAt: '2026-01-10T04:00:00.000Z' });
    const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(join(dir, 'lock'), twoHoursAgo, twoHoursAgo);
    // Inside the exporter's sandbox: no boot id, boot time from the uptime (here: 1 h ago).
    expect(await runLockHolder(dir, { bootTimeMs: Date.now() - 3600_000 })).toBeNull();
    // Without any notion of the boot, a live pid is all there is.
    expect(await runLockHolder(dir, {})).not.toBeNull();
    // A lock from another boot id is stale too.
    await lock({ pid: process.pid, startedAt: 'x', bootId: 'another-boot' });
    expect(await runLockHolder(dir, { bootId: 'this-boot' })).toBeNull();
  });

  it('the boot time is known even where /proc/stat is hidden (falls back to the uptime)', () => {
    const b = exporterBootInfo();
    expect(b.bootTimeMs).toBeDefined();
    expect(b.bootTimeMs!).toBeLessThanOrEqual(Date.now());
  });

  it('a lock still being written (unparsable, young) is held; an old unparsable one is not', async () => {
    await writeFile(join(dir, 'lock'), '');
    expect(await runLockHolder(dir)).not.toBeNull();
    const old = new Date(Date.now() - 60_000);
    await utimes(join(dir, 'lock'), old, old);
    expect(await runLockHolder(dir)).toBeNull();
  });
});

describe('stateTrustProblem', () => {
  it('accepts a private directory and refuses a group-writable one or a symlinked state file', async () => {
    expect(await stateTrustProblem(dir)).toBeNull();
    await chmod(dir, 0o775);
    expect(await stateTrustProblem(dir)).toMatch(/group- or world-writable \(mode 775\)/);
    await chmod(dir, 0o755);
    const { symlink } = await import('node:fs/promises');
    await symlink('/etc/hostname', join(dir, 'state.json'));
    expect(await stateTrustProblem(dir)).toMatch(/state\.json is a symlink/);
  });
});
