import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile, writeFile, stat, utimes } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireLock } from '../../src/state/lock.js';

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
});
