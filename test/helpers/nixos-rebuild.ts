// The real nixos-rebuild of nixpkgs for the real-Nix tests: the vendored, unmodified copies in
// test/fixtures/nixos-rebuild (the bash template and the ng Python package) get their
// placeholders filled into a temp dir, as nixpkgs' package does at install time. Their `@nix@`
// is a Nix prefix of test-only PATH shims (writeNixShims) that log every Nix call and give
// Nix 2.8 the `nix build --print-out-paths` flag ng uses.
import { spawnSync } from 'node:child_process';
import { chmod, cp, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hasTool, inCi } from './tools.js';

export const NIXOS_REBUILD_FIXTURES = fileURLToPath(new URL('../fixtures/nixos-rebuild/', import.meta.url));
export type RebuildKind = 'bash' | 'ng';
export const REBUILD_KINDS: readonly RebuildKind[] = ['bash', 'ng'];

/** The Nix commands the shims stand in for. */
export const NIX_TOOLS = ['nix', 'nix-build', 'nix-instantiate', 'nix-store', 'nix-env', 'nix-channel', 'nix-collect-garbage', 'nix-copy-closure'] as const;
/** Where the shims append one line per call (`<tool> <args…>`) when set. */
export const NIX_CALLS_ENV = 'NIXOS_DESYNC_TEST_NIX_CALLS';

/** Absolute path of `name` on `path` (no shell), or null. */
export function which(name: string, path = process.env.PATH ?? ''): string | null {
  for (const dir of path.split(delimiter)) {
    if (dir !== '' && hasTool(name, dir)) return join(dir, name);
  }
  return null;
}

function pythonAtLeast312(python: string): boolean {
  const r = spawnSync(python, ['-c', 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'], { stdio: 'ignore' });
  return r.status === 0;
}

/**
 * A Python ≥ 3.12 for ng (it uses `type` statements and typing.override): $NIXOS_DESYNC_TEST_PYTHON,
 * else python3 on PATH when new enough, else the newest pyenv build (`pyenv root`/versions/3.x.y,
 * which the machine image carries; Debian 12's python3 is 3.11).
 */
export function findPython312(env: NodeJS.ProcessEnv = process.env): string | null {
  const candidates: string[] = [];
  if (env.NIXOS_DESYNC_TEST_PYTHON) candidates.push(env.NIXOS_DESYNC_TEST_PYTHON);
  const onPath = which('python3', env.PATH ?? '');
  if (onPath) candidates.push(onPath);
  const roots = new Set<string>();
  const pyenv = spawnSync('pyenv', ['root'], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'ignore'] });
  if (pyenv.status === 0 && pyenv.stdout.trim() !== '') roots.add(pyenv.stdout.trim());
  if (env.PYENV_ROOT) roots.add(env.PYENV_ROOT);
  roots.add(join(homedir(), '.pyenv'));
  for (const root of roots) {
    let versions: string[];
    try {
      versions = readdirSync(join(root, 'versions'));
    } catch {
      continue; // no pyenv here
    }
    const found = versions
      .map((v) => /^3\.(\d+)\.(\d+)$/.exec(v))
      .filter((m): m is RegExpExecArray => m !== null && Number(m[1]) >= 12)
      .sort((a, b) => Number(b[1]) - Number(a[1]) || Number(b[2]) - Number(a[2]))
      .map((m) => join(root, 'versions', m[0], 'bin', 'python3'));
    candidates.push(...found);
  }
  return candidates.find((p) => existsSync(p) && pythonAtLeast312(p)) ?? null;
}

/** findPython312, requireTools-style: null on a laptop without one (skip), an error under CI. */
export function requirePython312(env: NodeJS.ProcessEnv = process.env): string | null {
  const python = findPython312(env);
  if (python === null && inCi(env)) throw new Error('CI is set but no Python >= 3.12 was found (nixos-rebuild-ng needs it): set NIXOS_DESYNC_TEST_PYTHON or install one with pyenv');
  return python;
}

/**
 * TEST-ONLY Nix shims in `<prefix>/bin` (the prefix is the bash script's `@nix@` and goes first on
 * PATH): each logs `<tool> <args…>` to $NIXOS_DESYNC_TEST_NIX_CALLS when set, then runs the real
 * tool. The `nix` one also emulates `nix build --print-out-paths` (Nix ≥ 2.13; ng's flake build
 * uses it) on Nix 2.8: it runs `--json` instead and prints the out paths, one a line.
 */
export async function writeNixShims(prefix: string, path = process.env.PATH ?? ''): Promise<string> {
  const bin = join(prefix, 'bin');
  await mkdir(bin, { recursive: true });
  for (const tool of NIX_TOOLS) {
    const real = which(tool, path.split(delimiter).filter((d) => d !== bin).join(delimiter));
    if (real === null) continue;
    // One record per call: the argv joined by \037, ended by \036 (arguments may hold newlines).
    const log = `[ -z "$${NIX_CALLS_ENV}" ] || { printf '%s\\037' ${tool} "$@"; printf '\\036'; } >> "$${NIX_CALLS_ENV}"\n`;
    const body = tool !== 'nix'
      ? `exec ${JSON.stringify(real)} "$@"\n`
      : [
          '# --print-out-paths → --json (Nix 2.8 has no --print-out-paths), then the out paths.',
          'po=',
          'for a do',
          '  shift',
          '  if [ "$a" = --print-out-paths ]; then po=1; set -- "$@" --json; else set -- "$@" "$a"; fi',
          'done',
          `[ -n "$po" ] || exec ${JSON.stringify(real)} "$@"`,
          `json=$(${JSON.stringify(real)} "$@") || exit $?`,
          `printf '%s\\n' "$json" | grep -o '"outputs":{[^}]*}' | grep -o '"/nix/store/[^"]*"' | tr -d '"'`,
          '',
        ].join('\n');
    await writeFile(join(bin, tool), `#!/bin/sh\n# Test-only shim for ${tool} (nixos-desync test/helpers/nixos-rebuild.ts).\n${log}${body}`);
    await chmod(join(bin, tool), 0o755);
  }
  return prefix;
}

/** The calls the shims logged to `file` (each an argv, tool first). */
export async function readNixCalls(file: string): Promise<string[][]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\x1e').filter((r) => r !== '').map((r) => r.split('\x1f').slice(0, -1));
}

/**
 * What a Nix call does: `eval` evaluates Nix expressions (nixpkgs, a configuration: nix-build,
 * nix-instantiate, nix-env from an expression, `nix build/eval/…`, `nix flake show/check`);
 * `fetch` locks or fetches flake inputs (`nix flake archive/lock/update/metadata/prefetch`: only
 * a flake.nix's `inputs`, never its outputs); `store` only works on store paths and profiles.
 */
export function classifyNixCall(argv: readonly string[]): 'eval' | 'fetch' | 'store' {
  const [tool, ...args] = argv;
  if (tool === 'nix-instantiate' || tool === 'nix-build') return 'eval';
  if (tool === 'nix-env') return args.some((a) => /^(-f|--file|-i|--install|-qa|--available|-E|--expr)$/.test(a)) ? 'eval' : 'store';
  if (tool !== 'nix') return 'store';
  const words: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--extra-experimental-features' || a === '--experimental-features') i += 1;
    else if (a === '--option') i += 2;
    else if (!a.startsWith('-')) words.push(a);
  }
  if (words[0] === 'flake') return ['show', 'check'].includes(words[1] ?? '') ? 'eval' : 'fetch';
  return ['build', 'eval', 'develop', 'shell', 'run', 'repl', 'edit', 'bundle', 'print-dev-env'].includes(words[0] ?? '') ? 'eval' : 'store';
}

/** A logged call as one short line for messages. */
export function showNixCall(argv: readonly string[]): string {
  const line = argv.join(' ').replace(/\s+/g, ' ');
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

const PLACEHOLDER = /@[A-Za-z_][A-Za-z0-9_]*@/g;

function fill(text: string, values: Record<string, string>, what: string): string {
  const out = text.replace(PLACEHOLDER, (m) => values[m] ?? m);
  const left = out.match(PLACEHOLDER);
  if (left) throw new Error(`${what}: unfilled placeholder(s) ${[...new Set(left)].join(', ')}`);
  return out;
}

/** Where nixpkgs' package would put the fallback Nix of a platform: a store path that never exists here. */
const NO_FALLBACK_NIX = '/nix/store/00000000000000000000000000000000-nix-fallback-not-in-tests';

/**
 * Installs the vendored nixos-rebuild of `kind` into `dir` (bin/nixos-rebuild) with its
 * placeholders filled: bash as nixpkgs' `nixos-rebuild` package, ng as `nixos-rebuild-ng`'s
 * console script. Returns the bin directory (put it first on PATH).
 */
export async function installNixosRebuild(kind: RebuildKind, dir: string, o: { nixPrefix: string; python?: string | null }): Promise<string> {
  const bin = join(dir, 'bin');
  await mkdir(bin, { recursive: true });
  const exe = join(bin, 'nixos-rebuild');
  if (kind === 'bash') {
    const bash = which('bash') ?? '/bin/bash';
    // Where the package's own tools come from (nixpkgs: coreutils, sed, grep, jq, util-linux).
    const toolDirs = [...new Set(['cat', 'sed', 'grep', 'jq', 'column', 'mktemp', 'readlink'].map((t) => which(t)).filter((p): p is string => p !== null).map((p) => dirname(p)))];
    const template = await readFile(join(NIXOS_REBUILD_FIXTURES, 'bash', 'nixos-rebuild.sh'), 'utf8');
    await writeFile(exe, fill(template, {
      '@runtimeShell@': bash,
      '@path@': toolDirs.join(':'),
      '@nix@': o.nixPrefix,
      '@nix_x86_64_linux@': NO_FALLBACK_NIX,
      '@nix_i686_linux@': NO_FALLBACK_NIX,
      '@nix_aarch64_linux@': NO_FALLBACK_NIX,
    }, 'nixos-rebuild.sh'));
  } else {
    if (!o.python) throw new Error('nixos-rebuild-ng needs a Python >= 3.12 (requirePython312)');
    const lib = join(dir, 'lib');
    const pkg = join(lib, 'nixos_rebuild');
    await cp(join(NIXOS_REBUILD_FIXTURES, 'ng', 'nixos_rebuild'), pkg, { recursive: true });
    for (const f of (await readdir(pkg)).filter((n) => n.endsWith('.py'))) {
      const text = await readFile(join(pkg, f), 'utf8');
      await writeFile(join(pkg, f), fill(text, { '@executable@': 'nixos-rebuild', '@withShellFiles@': 'false' }, `nixos_rebuild/${f}`));
    }
    // What the package's console script `nixos-rebuild = nixos_rebuild:main` is.
    await writeFile(exe, `#!${o.python} -I\nimport sys\nsys.path.insert(0, ${JSON.stringify(lib)})\nfrom nixos_rebuild import main\nsys.exit(main())\n`);
  }
  await chmod(exe, 0o755);
  return bin;
}
