import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand, tailLines, describeFailure } from '../../src/util/exec.js';

const SPAWN_TREE = fileURLToPath(new URL('../fixtures/bin/spawn-tree.sh', import.meta.url));

async function gone(pid: number, waitMs = 3000): Promise<boolean> {
  const end = Date.now() + waitMs;
  for (;;) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return true;
    } catch {
      return true;
    }
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('runCommand', () => {
  it('runs argv without a shell: metacharacters are plain arguments', async () => {
    const r = await runCommand(['/bin/echo', '$(reboot)', '; rm -rf /', '`id`'], { timeoutMs: 5000 });
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('$(reboot) ; rm -rf / `id`\n');
  });

  it('a timeout longer than a Node timer can hold does not fire at once (#11.12)', async () => {
    const r = await runCommand(['/bin/sh', '-c', 'sleep 0.3; echo done'], { timeoutMs: 28 * 86_400_000 });
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('done\n');
  });

  it('a timeout kills the whole process tree, grandchildren included', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-exec-'));
    const pids = join(dir, 'pids');
    const r = await runCommand([SPAWN_TREE, pids], { timeoutMs: 500, killGraceMs: 500 });
    expect(r.timedOut).toBe(true);
    expect(describeFailure(r)).toMatch(/timed out after .*process tree killed/);
    const [sh, sleeper] = (await readFile(pids, 'utf8')).trim().split(' ').map(Number);
    expect(await gone(sh!)).toBe(true);
    expect(await gone(sleeper!)).toBe(true);
  });

  it('an abort signal kills the tree too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-exec-'));
    const pids = join(dir, 'pids');
    const ac = new AbortController();
    const p = runCommand([SPAWN_TREE, pids], { timeoutMs: 60_000, signal: ac.signal, killGraceMs: 500 });
    for (let i = 0; i < 100; i++) {
      if (await readFile(pids, 'utf8').then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    ac.abort();
    const r = await p;
    expect(r.signal).toBe('SIGTERM');
    const [, sleeper] = (await readFile(pids, 'utf8')).trim().split(' ').map(Number);
    expect(await gone(sleeper!)).toBe(true);
  });

  it('a missing program is a clear E_COMMAND error', async () => {
    await expect(runCommand(['/nonexistent/prog'], { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'E_COMMAND', message: 'program not found: /nonexistent/prog' });
  });

  it('keeps only the tail of a large output', async () => {
    const r = await runCommand([process.execPath, '-e', 'for (let i = 0; i < 20000; i++) console.log("line " + i)'], { timeoutMs: 10_000, maxOutputBytes: 1024 });
    expect(r.stdout.length).toBeLessThanOrEqual(1024);
    expect(r.stdout).toMatch(/line 19999\n$/);
    expect(tailLines(r.stdout, 2)).toBe('line 19998\nline 19999');
  });
});

describe('runCommand with an aborted signal', () => {
  it('starts nothing', async () => {
    const ac = new AbortController();
    ac.abort();
    const dir = await mkdtemp(join(tmpdir(), 'desync-exec-'));
    const r = await runCommand(['/bin/sh', '-c', 'touch "$0"', join(dir, 'ran')], { timeoutMs: 5000, signal: ac.signal });
    expect(r.signal).toBe('SIGTERM');
    await expect(readFile(join(dir, 'ran'))).rejects.toThrow();
  });
});
