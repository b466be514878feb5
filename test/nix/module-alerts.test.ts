// services.nixos-desync.alerts: the module's rule files (for services.prometheus.ruleFiles) link
// every alert to the configured runbook base, parse with promtool, and refuse a base that would
// break the YAML or the anchor. Evaluated by real Nix with nixpkgs' real module system.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { requireTools } from '../helpers/tools.js';
import { nixpkgsLibDir } from '../helpers/nixpkgs-lib.js';

const HERE = fileURLToPath(new URL('./', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENV = { ...process.env, NIX_CONFIG: 'sandbox = false\nsubstituters =' };
const PLACEHOLDER = 'https://nixos-desync.invalid/docs/runbooks.md';
const FILES = ['nixos-desync.rules.yml', 'nixos-desync-fleet.rules.yml', 'nixos-desync-rollout.rules.yml'];

const ok = requireTools('nix-instantiate', 'promtool');

type Rules = { groups: { rules: { alert?: string; annotations?: { runbook_url?: string } }[] }[] };
const runbookUrls = (text: string): Array<[string, string | undefined]> =>
  (parseYaml(text) as Rules).groups.flatMap((g) => g.rules.filter((r) => r.alert).map((r): [string, string | undefined] => [r.alert!, r.annotations?.runbook_url]));

describe.skipIf(!ok)('NixOS module: alerts.ruleFiles with alerts.runbookBaseUrl', () => {
  let tmp: string;
  let libDir: string;

  function evaluate(testArgs: Record<string, unknown>): { status: number | null; stdout: string; stderr: string } {
    return spawnSync(
      'nix-instantiate',
      [
        '--eval', '--strict', '--json', '--read-write-mode', join(HERE, 'eval.nix'), '-A', 'alerts',
        '--argstr', 'nixpkgsLib', libDir,
        '--argstr', 'packageDir', join(tmp, 'pkg'),
        '--argstr', 'nixpkgsPath', join(tmp, 'system-nixpkgs'),
        '--arg', 'configModule', join(HERE, 'host-alerts.nix'),
        '--argstr', 'testArgs', JSON.stringify(testArgs),
      ],
      { env: ENV, encoding: 'utf8', maxBuffer: 64 << 20 },
    );
  }
  const rendered = (testArgs: Record<string, unknown>): Array<{ path: string; text: string }> => {
    const r = evaluate(testArgs);
    expect(r.stderr, 'evaluation').not.toMatch(/error:/);
    expect(r.status).toBe(0);
    return JSON.parse(r.stdout);
  };

  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'nixos-desync-alerts-'));
    libDir = nixpkgsLibDir();
    mkdirSync(join(tmp, 'pkg', 'bin'), { recursive: true });
    mkdirSync(join(tmp, 'system-nixpkgs'), { recursive: true });
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('by default: the shipped files unchanged, every link under the .invalid placeholder', () => {
    const files = rendered({});
    expect(files.map((f) => f.path.replace(/^.*?-/, ''))).toEqual(FILES);
    for (const [i, f] of files.entries()) expect(f.text).toBe(readFileSync(join(ROOT, 'alerts', FILES[i]!), 'utf8'));
    for (const [alert, url] of runbookUrls(files[0]!.text)) expect(url).toBe(`${PLACEHOLDER}#${alert.toLowerCase()}`);
  });

  it('with a runbook base: every alert links to <base>#<alert>, no placeholder left, promtool accepts the files', () => {
    const base = 'https://git.example.com/ops/nixos-desync/src/branch/main/docs/runbooks.md';
    const files = rendered({ runbookBaseUrl: base });
    const urls = runbookUrls(files[0]!.text);
    expect(urls.length).toBeGreaterThan(10);
    for (const [alert, url] of urls) expect(url).toBe(`${base}#${alert.toLowerCase()}`);
    const dir = join(tmp, 'rules');
    mkdirSync(dir, { recursive: true });
    for (const [i, f] of files.entries()) {
      expect(f.text).not.toContain('nixos-desync.invalid');
      writeFileSync(join(dir, FILES[i]!), f.text);
    }
    const check = spawnSync('promtool', ['check', 'rules', ...FILES.map((f) => join(dir, f))], { encoding: 'utf8' });
    expect(check.stdout + check.stderr).toMatch(/SUCCESS/);
    expect(check.status, check.stdout + check.stderr).toBe(0);
  });

  it.each([
    ['a quote (it would end the YAML string)', 'https://wiki.example.com/"runbooks'],
    ['an anchor of its own', 'https://wiki.example.com/runbooks#top'],
    ['no scheme', 'wiki.example.com/runbooks'],
    ['white space', 'https://wiki.example.com/run books'],
  ])('refuses a base with %s, naming the option', (_what, base) => {
    const r = evaluate({ runbookBaseUrl: base });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('services.nixos-desync.alerts.runbookBaseUrl');
  });
});
