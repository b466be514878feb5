// The NixOS module's evaluated output against a committed snapshot (test/nix/golden/module.json,
// taken from the module before it was split into nix/module/*.nix): for a set of hosts, every
// generated unit, /etc file, tmpfiles rule, warning, assertion, provenance and config text,
// the contents of the generated store files they name, and the option documentation.
// A refactoring of the module must leave all of it byte-identical; a change of behaviour
// updates the snapshot on purpose (`vt test/nix/module-golden.test.ts -u`) and shows in the diff.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requireTools } from '../helpers/tools.js';
import { CLI } from '../helpers/cli.js';
import { nixpkgsLibDir } from '../helpers/nixpkgs-lib.js';
import { writeFakeNixpkgs } from '../../src/demo/fake-nixpkgs.js';

const HERE = fileURLToPath(new URL('./', import.meta.url));
const GOLDEN = join(HERE, 'golden', 'module.json');
const ENV = { ...process.env, NIX_CONFIG: 'sandbox = false\nsubstituters =' };
const STORE_PATH = /\/nix\/store\/[0-9a-z]{32}-[^\s"'$;:)\\]+/g;

const ok = requireTools('nix-instantiate');

describe.skipIf(!ok)('NixOS module: evaluated output equals the golden snapshot', () => {
  let tmp: string;
  let libDir: string;

  /** Machine-specific paths and store hashes replaced by stable names. */
  function normalize(text: string): string {
    return text
      .split(libDir).join('<nixpkgs-lib>')
      .split(tmp).join('<tmp>')
      .replace(/\/nix\/store\/[0-9a-z]{32}-/g, '/nix/store/<hash>-');
  }

  function evaluate(attr: string, hostModule: string, testArgs: Record<string, unknown>): unknown {
    const out = execFileSync(
      'nix-instantiate',
      [
        '--eval', '--strict', '--json', '--read-write-mode', join(HERE, 'eval.nix'), '-A', attr,
        '--argstr', 'nixpkgsLib', libDir,
        '--argstr', 'packageDir', join(tmp, 'pkg'),
        '--argstr', 'nixpkgsPath', join(tmp, 'system-nixpkgs'),
        '--arg', 'configModule', join(HERE, hostModule),
        '--argstr', 'testArgs', JSON.stringify(testArgs),
      ],
      { env: ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 },
    );
    return JSON.parse(out);
  }

  /** The generated text files the evaluation names (scripts, JSON), by normalized path. */
  function storeFiles(text: string): Record<string, string> {
    const files: Record<string, string> = {};
    for (const p of new Set(text.match(STORE_PATH) ?? [])) {
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue; // a fake package's path: nothing there
      }
      if (st.isSymbolicLink() || st.isFile()) {
        try {
          files[normalize(p)] = normalize(readFileSync(p, 'utf8'));
        } catch {
          // a symlink to nothing: its path is in the snapshot already
        }
      }
    }
    return Object.fromEntries(Object.entries(files).sort(([a], [b]) => a.localeCompare(b)));
  }

  function snapshotOf(hostModule: string, testArgs: Record<string, unknown>): unknown {
    const inspect = evaluate('inspect', hostModule, testArgs) as Record<string, unknown>;
    const text = JSON.stringify(inspect);
    const { configFile: _configFile, ...rest } = inspect;
    const normalized = JSON.parse(normalize(JSON.stringify(rest))) as { units: Record<string, string> };
    // One line per array element: a change shows as the lines it changed (joined back with \n,
    // the snapshot still holds every byte).
    const lines = (o: Record<string, string>): Record<string, string[]> => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, v.split('\n')]));
    return { ...normalized, units: lines(normalized.units), files: lines(storeFiles(text)) };
  }

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'nixos-desync-golden-'));
    chmodSync(tmp, 0o755);
    libDir = nixpkgsLibDir();
    mkdirSync(join(tmp, 'pkg', 'bin'), { recursive: true });
    writeFileSync(join(tmp, 'pkg', 'bin', 'nixos-desync'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} "$@"\n`);
    chmodSync(join(tmp, 'pkg', 'bin', 'nixos-desync'), 0o755);
    await writeFakeNixpkgs(join(tmp, 'system-nixpkgs'), { label: 'channel' });
    await writeFakeNixpkgs(join(tmp, 'np-pinned'), { label: 'pinned' });
    await writeFakeNixpkgs(join(tmp, 'np-synapse'), { label: 'synapse-rev' });
    await writeFakeNixpkgs(join(tmp, 'np-hm'), { label: 'hm-rev' });
    // host-full: home-manager has a pin (with its pin set's id), the others do not.
    mkdirSync(join(tmp, 'state', 'pins'), { recursive: true });
    writeFileSync(
      join(tmp, 'state', 'pins', 'home-manager.nix'),
      `{ desyncAge = 3; path = ${JSON.stringify(join(tmp, 'np-pinned'))}; revision = "pinned-rev"; setId = "set-1"; }\n`,
    );
  });
  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('every host evaluates to the snapshot, and the option documentation is unchanged', async () => {
    const flakeInputs = {
      'nixpkgs-synapse': { outPath: join(tmp, 'np-synapse'), rev: 'a'.repeat(40) },
      'nixpkgs-home-manager': { outPath: join(tmp, 'np-hm'), rev: 'b'.repeat(40) },
    };
    const hosts: Record<string, unknown> = {
      minimal: snapshotOf('host-minimal.nix', {}),
      full: snapshotOf('host-full.nix', { stateDir: join(tmp, 'state') }),
      'full-no-pins': snapshotOf('host-full.nix', { stateDir: join(tmp, 'empty-state') }),
      'no-loop': snapshotOf('host-no-loop.nix', {}),
      monitor: snapshotOf('host-monitor.nix', {}),
      conflict: snapshotOf('host-conflict.nix', {}),
      flake: snapshotOf('host-flake.nix', { stateDir: join(tmp, 'state'), inputs: flakeInputs }),
      reboot: snapshotOf('host-reboot.nix', {}),
    };
    const docs = evaluate('docs', 'host-minimal.nix', {}) as { options: unknown; defaultTexts: unknown };
    const snapshot = { hosts, docs: JSON.parse(normalize(JSON.stringify({ options: docs.options, defaultTexts: docs.defaultTexts }))) as unknown };
    await expect(JSON.stringify(snapshot, null, 1) + '\n').toMatchFileSnapshot(GOLDEN);
  });
});
