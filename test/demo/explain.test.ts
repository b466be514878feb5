// The demo's explanations: the REBOOT REQUIRED note (once), and the "run it yourself" lines,
// whose NIX_CONFIG quoting a real bash reads back exactly.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REBOOT_NOTE, ansiQuote, rebootExplainer, runItYourself } from '../../src/demo/explain.js';
import { requireTools } from '../helpers/tools.js';

describe('demo explanations', () => {
  it('explains REBOOT REQUIRED once, at the first status that says it', () => {
    const printed: string[] = [];
    const explain = rebootExplainer((s) => printed.push(s));
    explain('system: generation 1, 1 generation(s)\n');
    expect(printed).toEqual([]);
    explain('system: generation 2, 2 generation(s), REBOOT REQUIRED\n');
    explain('system: generation 3, 3 generation(s), REBOOT REQUIRED\n');
    expect(printed).toEqual([REBOOT_NOTE]);
    expect(REBOOT_NOTE).toMatch(/kernel/);
  });

  it('prints the PATH line (the host bin first) and the Nix settings', () => {
    const text = runItYourself({ binDir: '/tmp/d/bin', configPath: '/tmp/d/config.json' }, 'sandbox = false\nsubstituters =');
    expect(text).toContain('export PATH=/tmp/d/bin:$PATH\n');
    expect(text).toContain("export NIX_CONFIG=$'sandbox = false\\nsubstituters ='\n");
    expect(text).toContain('nixos-desync upgrade --config /tmp/d/config.json');
    expect(runItYourself({ binDir: '/b', configPath: '/c' }, undefined)).not.toContain('NIX_CONFIG');
  });

  it.skipIf(!requireTools('bash'))("$'…' quoting: bash reads back newlines, quotes and backslashes exactly", () => {
    for (const value of ['sandbox = false\nsubstituters =', "it's \\n not a newline\\", 'plain']) {
      const r = spawnSync('bash', ['-c', `X=${ansiQuote(value)}; printf %s "$X"`], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toBe(value);
    }
  });
});
