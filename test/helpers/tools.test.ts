// No silent skips: a missing tool fails under CI, shows as skipped elsewhere, and the suite's
// totals line counts the skips.
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { hasTool, inCi, requireToolsIn } from './tools.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

describe('requireTools', () => {
  it('finds an executable on PATH without a shell, and not a non-executable file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-tools-'));
    await writeFile(join(dir, 'mytool'), '#!/bin/sh\n');
    await writeFile(join(dir, 'notexec'), '');
    await chmod(join(dir, 'mytool'), 0o755);
    expect(hasTool('mytool', dir)).toBe(true);
    expect(hasTool('notexec', dir)).toBe(false);
    expect(hasTool('nixos-desync-no-such-tool', dir)).toBe(false);
    // A name with shell syntax is just a file name that does not exist.
    expect(hasTool('mytool; echo hi', dir)).toBe(false);
  });

  it('a missing tool throws under CI (the suite fails) and returns false elsewhere (skip)', () => {
    expect(() => requireToolsIn({ CI: 'true', PATH: '/nonexistent' }, 'promtool')).toThrow(/CI is set but required tools are missing: promtool/);
    expect(() => requireToolsIn({ CI: '1', PATH: '/nonexistent' }, 'promtool')).toThrow(/missing/);
    expect(requireToolsIn({ PATH: '/nonexistent' }, 'promtool')).toBe(false);
    expect(requireToolsIn({ CI: 'false', PATH: '/nonexistent' }, 'promtool')).toBe(false);
    expect(inCi({ CI: '' })).toBe(false);
  });

  it('no test skips on a bare hasTool() (that path skipped silently in CI)', async () => {
    const files: string[] = [];
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory() && e.name !== 'fixtures') await walk(join(d, e.name));
        else if (/\.(test|suite)\.ts$/.test(e.name)) files.push(join(d, e.name));
      }
    };
    await walk(join(ROOT, 'test'));
    expect(files.length).toBeGreaterThan(10);
    const offenders: string[] = [];
    for (const f of files) {
      const text = await readFile(f, 'utf8');
      if (/\bhasTool\s*\(/.test(text) && !f.endsWith('tools.test.ts')) offenders.push(f);
    }
    expect(offenders).toEqual([]);
  });
});

describe('scripts/test.sh totals line', () => {
  it('prints "N passed, N failed, N skipped" from a real vitest report', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-summary-'));
    const report = join(dir, 'report.json');
    const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', '--config', join(ROOT, 'test/fixtures/vitest-summary/vitest.config.mjs'),
      '--reporter=json', `--outputFile=${report}`], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, env: { ...process.env, CI: '' } });
    expect(r.status).toBe(1); // the fixture has one failing test
    const s = spawnSync(process.execPath, [join(ROOT, 'scripts/vitest-summary.mjs'), report, String(r.status)], { encoding: 'utf8' });
    expect(s.stdout).toBe('1 passed, 1 failed, 2 skipped\n');
    // A report that cannot be read is a failure, never "0 failed".
    const bad = spawnSync(process.execPath, [join(ROOT, 'scripts/vitest-summary.mjs'), join(dir, 'missing.json'), '1'], { encoding: 'utf8' });
    expect(bad.stdout).toBe('0 passed, 1 failed, 0 skipped\n');
  }, 90_000);

  it('.ci/run sets CI and runs scripts/test.sh', async () => {
    const ci = await readFile(join(ROOT, '.ci/run'), 'utf8');
    expect(ci).toMatch(/^export CI=/m);
    expect(ci).toMatch(/exec scripts\/test\.sh/);
  });
});
