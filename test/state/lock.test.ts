import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, writeFile, stat, utimes } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock } from '../../src/state/lock.js';
import { bootId } from '../../src/util/proc.js';

const deadPid = (): number => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);

describe('lock', () => {
  it('is exclusive while held and released afterwards', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-lock-'));
    const path = join(dir, 'lock');
    const a = await acquireLock(path, 'upgrade');
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid, command: 'upgrade' });
    await expect(acquireLock(path, 'upgrade')).rejects.toMatchObject({ code: 'E_LOCKED', message: expect.stringMatching(new RegExp(`pid ${process.pid}`)) });
    await a.release();
    await expect(stat(path)).rejects.toThrow();
    const b = await acquireLock(path, 'upgrade');
    await b.release();
  });

  it('recovers a lock left by a dead process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-lock-'));
    const path = join(dir, 'lock');
    await writeFile(path, JSON.stringify({ pid: deadPid(), startedAt: new Date().toISOString(), host: hostname(), command: 'upgrade' }));
    const l = await acquireLock(path, 'upgrade');
    expect(JSON.parse(await readFile(path, 'utf8')).pid).toBe(process.pid);
    await l.release();
  });

  it('treats a live PID with another start time (PID reuse) as stale', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-lock-'));
    const path = join(dir, 'lock');
    await writeFile(path, JSON.stringify({ pid: process.pid, startTime: '1', startedAt: new Date().toISOString(), host: hostname(), command: 'upgrade' }));
    const l = await acquireLock(path, 'upgrade');
    await l.release();
  });

  it('an empty lock file is stale only once it is old (its writer may still be writing)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-lock-'));
    const path = join(dir, 'lock');
    await writeFile(path, '');
    await expect(acquireLock(path, 'upgrade')).rejects.toMatchObject({ code: 'E_LOCKED' });
    const old = new Date(Date.now() - 60_000);
    await utimes(path, old, old);
    const l = await acquireLock(path, 'upgrade');
    await l.release();
  });

  // #11.11: a hostname change across a reboot must not leave exit 75 forever.
  it('a lock from another boot is stale even when its PID is alive now and the hostname changed', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-lock-'));
    const path = join(dir, 'lock');
    // The PID (ours) runs now, with the same start time: only the boot id says the owner is gone.
    const { processStartTime } = await import('../../src/util/proc.js');
    const holder = { pid: process.pid, startTime: processStartTime(process.pid), bootId: '00000000-0000-0000-0000-000000000000', startedAt: new Date().toISOString(), host: 'old-hostname', command: 'upgrade', runId: '20260101T000000Z-abcdef' };
    await writeFile(path, JSON.stringify(holder));
    const l = await acquireLock(path, 'upgrade');
    expect(l.recoveredFrom).toMatchObject({ runId: '20260101T000000Z-abcdef', host: 'old-hostname' });
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid, bootId: bootId(), host: hostname() });
    await l.release();
  });

  it('same boot, other hostname: a dead owner is recovered, a live one still holds the lock', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-lock-'));
    const path = join(dir, 'lock');
    await writeFile(path, JSON.stringify({ pid: deadPid(), bootId: bootId(), startedAt: new Date().toISOString(), host: 'renamed-host', command: 'upgrade' }));
    const l = await acquireLock(path, 'upgrade');
    expect(l.recoveredFrom).toMatchObject({ host: 'renamed-host' });
    await l.release();
    const { processStartTime } = await import('../../src/util/proc.js');
    await writeFile(path, JSON.stringify({ pid: process.pid, startTime: processStartTime(process.pid), bootId: bootId(), startedAt: new Date().toISOString(), host: 'renamed-host', command: 'upgrade' }));
    await expect(acquireLock(path, 'upgrade')).rejects.toMatchObject({ code: 'E_LOCKED' });
  });

  it('an old-format lock (no boot id) written before this boot is stale whatever its hostname', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-lock-'));
    const path = join(dir, 'lock');
    await writeFile(path, JSON.stringify({ pid: process.pid, startedAt: '2020-01-01T00:00:00.000Z', host: 'old-hostname', command: 'upgrade' }));
    const { bootTimeMs } = await import('../../src/util/proc.js');
    const before = new Date(bootTimeMs()! - 3_600_000);
    await utimes(path, before, before);
    const l = await acquireLock(path, 'upgrade');
    expect(l.recoveredFrom).toMatchObject({ host: 'old-hostname' });
    await l.release();
  });

  it('a lock taken cleanly reports no recovered owner', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-lock-'));
    const l = await acquireLock(join(dir, 'lock'), 'upgrade', { runId: 'r1' });
    expect(l.recoveredFrom).toBeNull();
    expect(JSON.parse(await readFile(join(dir, 'lock'), 'utf8')).runId).toBe('r1');
    await l.release();
  });
});
