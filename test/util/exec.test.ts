import { describe, it, expect } from 'vitest';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand, tailLines, describeFailure } from '../../src/util/exec.js';

const SPAWN_TREE = fileURLToPath(new URL('../fixtures/bin/spawn-tree.sh', import.meta.url));
const TERM_TREE = fileURLToPath(new URL('../fixtures/bin/term-tree.sh', import.meta.url));

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

  it('a timeout sends SIGTERM to the whole group first, then SIGKILL to what ignores it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-exec-'));
    const pids = join(dir, 'pids');
    const r = await runCommand([TERM_TREE, pids], { timeoutMs: 500, killGraceMs: 500 });
    expect(r.timedOut).toBe(true);
    // The parent ignores SIGTERM: only the force kill after the grace period stops it.
    expect(r.signal).toBe('SIGKILL');
    // The grandchild got the graceful SIGTERM (not just a SIGKILL once its parent died).
    expect(await readFile(`${pids}.term`, 'utf8')).toBe('TERM\n');
    const [sh, sub] = (await readFile(pids, 'utf8')).trim().split(' ').map(Number);
    expect(await gone(sh!)).toBe(true);
    expect(await gone(sub!)).toBe(true);
  });

  it('a command that exits leaves no process behind, even one holding its output open', async () => {
    const r = await runCommand(['/bin/sh', '-c', 'sleep 300 & echo $!'], { timeoutMs: 10_000 });
    expect(r.exitCode).toBe(0);
    expect(r.timedOut).toBe(false);
    expect(await gone(Number(r.stdout.trim()))).toBe(true);
  });

  it('runs in its own process group and reports its id to onSpawn (crash recovery kills it by that id)', async () => {
    const seen: number[] = [];
    // Field 5 of /proc/self/stat is the process group (the shell's comm has no spaces).
    const r = await runCommand(['/bin/sh', '-c', 'cut -d" " -f5 /proc/$$/stat'], { timeoutMs: 5000, onSpawn: (g) => seen.push(g) });
    expect(seen).toHaveLength(1);
    expect(Number(r.stdout.trim())).toBe(seen[0]);
    expect(seen[0]).not.toBe(process.pid);
  });

  it('env is the whole environment of the command (not merged with ours)', async () => {
    const r = await runCommand(['/usr/bin/env'], { timeoutMs: 5000, env: { ONLY: 'this' } });
    expect(r.stdout).toBe('ONLY=this\n');
  });

  it('a failing command is a result with its exit code and output, not an exception', async () => {
    const r = await runCommand(['/bin/sh', '-c', 'echo out; echo err >&2; exit 3'], { timeoutMs: 5000 });
    expect(r).toMatchObject({ exitCode: 3, signal: null, stdout: 'out\n', stderr: 'err\n', timedOut: false });
    expect(describeFailure(r)).toBe('/bin/sh exited with code 3');
  });

  it('a missing program is a clear E_COMMAND error', async () => {
    await expect(runCommand(['/nonexistent/prog'], { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'E_COMMAND', message: 'program not found: /nonexistent/prog' });
  });

  it('a program that cannot be executed is an E_COMMAND error naming it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-exec-'));
    await expect(runCommand([dir], { timeoutMs: 1000 })).rejects.toMatchObject({ code: 'E_COMMAND', message: expect.stringContaining(`cannot start ${dir}`) });
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
