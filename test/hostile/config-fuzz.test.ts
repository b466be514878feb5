// Property-based fuzzing of the config: random names, attribute paths, check argv, durations
// and nested junk never crash, never reach a shell or Nix code, and are either accepted as
// valid or rejected with E_CONFIG (exit 78) naming the offending field.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../../src/config/load.js';
import { DESYNC_NAME_RE, ATTR_PATH_RE } from '../../src/config/schema.js';
import { DesyncError } from '../../src/util/errors.js';
import { main } from '../../src/cli/main.js';
import { GATE_EXPR } from '../../src/nix/gate-expr.js';

const nasty = fc.constantFrom('../../etc', 'a b', '$(reboot)', '`id`', 'x;rm -rf /', '${builtins.abort "x"}', '"', "''", '\\', 'é', '😀', 'a'.repeat(200), '', '.', '-a', 'A', 'let', 'a.b', '\u0000', 'a\nb');
const junk: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small' }, fc.string(), nasty, fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(fc.oneof(fc.string(), nasty), tie('v'), { maxKeys: 3 })),
})).v;

const desyncArb = fc.record(
  {
    requireBuilds: fc.oneof(fc.array(fc.oneof(nasty, fc.string(), fc.constantFrom('hello', 'python3Packages.requests')), { maxLength: 3 }), junk),
    checks: fc.oneof(fc.array(fc.array(fc.oneof(nasty, fc.string()), { maxLength: 3 }), { maxLength: 2 }), junk),
    maxLagRebuilds: fc.oneof(fc.integer({ min: -5, max: 100 }), fc.constant(null), junk),
    maxBehind: fc.oneof(fc.constantFrom('14d', '2w', '30s', '0s', '1.5h', 'soon', '10'), fc.constant(null), junk),
    nixpkgsConfig: fc.oneof(fc.dictionary(fc.string(), junk, { maxKeys: 3 }), junk),
    extra: junk,
  },
  { requiredKeys: [] },
);

const configArb = fc.record(
  {
    nixpkgs: fc.oneof(fc.constantFrom('/nix/var/nix/profiles/per-user/root/channels/nixos', 'relative', '/a/../b'), nasty, junk),
    desyncs: fc.oneof(fc.dictionary(fc.oneof(nasty, fc.string(), fc.constantFrom('home-manager', 'synapse')), desyncArb, { maxKeys: 3 }), junk),
    onBreach: fc.oneof(fc.constantFrom('fail', 'continue'), nasty),
    timeouts: fc.oneof(fc.record({ build: fc.oneof(fc.constantFrom('3h', '1x'), nasty) }, { requiredKeys: [] }), junk),
    system: fc.oneof(fc.record({ build: fc.oneof(fc.array(fc.oneof(nasty, fc.string()), { maxLength: 3 }), junk), activate: fc.oneof(fc.constant(null), junk) }, { requiredKeys: [] }), junk),
    exporter: fc.oneof(fc.record({ listenAddress: fc.oneof(fc.constantFrom('127.0.0.1:9793', '[::1]:1', 'host', ':99999'), nasty) }, { requiredKeys: [] }), junk),
    unknownKey: junk,
  },
  { requiredKeys: [] },
);

export const FUZZ_RUNS = 3000;

describe('config fuzzing (fast-check)', () => {
  it(`${FUZZ_RUNS} random configs: valid, or E_CONFIG with a JSON path; accepted values are safe`, () => {
    let rejected = 0;
    fc.assert(
      fc.property(configArb, (raw) => {
        let cfg;
        try {
          cfg = parseConfig(raw, 'fuzz.json');
        } catch (err) {
          expect(err).toBeInstanceOf(DesyncError);
          expect((err as DesyncError).code).toBe('E_CONFIG');
          const problems = (err as DesyncError).details.problems as Array<{ path: string; message: string }>;
          expect(problems.length).toBeGreaterThan(0);
          for (const p of problems) expect(p.path).toMatch(/^\$/);
          rejected += 1;
          return;
        }
        // Whatever was accepted can only be safe data.
        for (const [name, d] of Object.entries(cfg.desyncs)) {
          expect(name).toMatch(DESYNC_NAME_RE);
          for (const a of d.requireBuilds) expect(a).toMatch(ATTR_PATH_RE);
          for (const c of d.checks) {
            expect(Array.isArray(c)).toBe(true);
            expect(c.length).toBeGreaterThan(0);
            for (const arg of c) expect(arg).not.toContain('\u0000');
          }
        }
        expect(cfg.nixpkgs.startsWith('/')).toBe(true);
        expect(cfg.nixpkgs.split('/')).not.toContain('..');
      }),
      { numRuns: FUZZ_RUNS, seed: 20261125 },
    );
    expect(rejected).toBeGreaterThan(FUZZ_RUNS / 2);
  });

  it('the Nix gate expression is a constant: no user value can ever be part of it', () => {
    // Data reaches Nix only through --argstr specFile (a path) and builtins.fromJSON.
    expect(GATE_EXPR).toMatch(/builtins\.fromJSON \(builtins\.readFile specFile\)/);
    expect(GATE_EXPR).not.toMatch(/\$\{/);
  });

  it('200 random config files through the CLI: exit 0 or 78, never a stack trace', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-fuzz-'));
    const samples = fc.sample(configArb, { numRuns: 200, seed: 7 });
    const codes = new Set<number>();
    for (const [i, raw] of samples.entries()) {
      const f = join(dir, `c${i}.json`);
      await writeFile(f, JSON.stringify(raw) ?? 'null');
      let err = '';
      const code = await main(['check-config', '--config', f], { stdout: () => undefined, stderr: (s) => (err += s), env: {} });
      codes.add(code);
      expect([0, 78]).toContain(code);
      expect(err).not.toMatch(/\n\s+at /);
      if (code === 78) expect(err).toMatch(/\$/);
    }
    expect(codes.has(78)).toBe(true);
  });
});
