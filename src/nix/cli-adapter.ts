// NixAdapter backed by the real Nix command-line tools (tested against Nix 2.8).
import { realpath, readFile, stat, mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  AttrResult,
  CallOptions,
  Candidate,
  DesyncBuildResult,
  GateBuildReport,
  GateRequest,
  NixAdapter,
} from './adapter.js';
import { GATE_EXPR } from './gate-expr.js';
import { DesyncError, errorMessage } from '../util/errors.js';
import { describeFailure, runCommand, tailLines, type RunResult, type Runner } from '../util/exec.js';

export interface CliNixOptions {
  run?: Runner;
  env?: NodeJS.ProcessEnv;
  storeDir?: string;
  /** Lines of a failed build's log kept in results and progress output. */
  logTailLines?: number;
}

const REVISION_RE = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$/;

/** Error lines of a Nix command (`error: …`), else its last lines. */
export function nixErrorExcerpt(stderr: string, lines = 8): string {
  const errs = stderr.split('\n').filter((l) => /^\s*error:/.test(l) || /^\s+(at|…)/.test(l));
  return tailLines(errs.length > 0 ? errs.join('\n') : stderr, lines);
}

/** `/nix/store/<hash>-hello-1.0.drv` → `hello-1.0`. */
export function drvName(drv: string): string {
  return (drv.split('/').pop() ?? drv).replace(/^[0-9a-z]{32}-/, '').replace(/\.drv$/, '');
}

export async function readRevision(path: string, storeDir: string): Promise<string> {
  const read = async (f: string): Promise<string | undefined> => {
    try {
      const t = (await readFile(join(path, f), 'utf8')).trim();
      return t.length > 0 ? t : undefined;
    } catch {
      return undefined;
    }
  };
  const candidates: Array<string | undefined> = [await read('.git-revision')];
  const version = await read('.version');
  const suffix = await read('.version-suffix');
  if (version !== undefined || suffix !== undefined) candidates.push(`${version ?? ''}${suffix ?? ''}`);
  for (const c of candidates) if (c !== undefined && REVISION_RE.test(c)) return c;
  // No usable revision file: the store hash identifies the tree exactly.
  const base = path.slice(storeDir.length + 1).split('/')[0] ?? '';
  return base.split('-')[0] ?? base;
}

export function createCliNix(options: CliNixOptions = {}): NixAdapter {
  const run = options.run ?? runCommand;
  const env = options.env ?? process.env;
  const storeDir = options.storeDir ?? '/nix/store';
  const logLines = options.logTailLines ?? 25;

  const exec = (argv: string[], o: CallOptions, maxOutputBytes?: number): Promise<RunResult> =>
    run(argv, { env, timeoutMs: o.timeoutMs, signal: o.signal, onSpawn: o.onSpawn, maxOutputBytes });

  const storePathOf = (p: string): string | undefined => {
    if (!p.startsWith(storeDir + '/')) return undefined;
    const first = p.slice(storeDir.length + 1).split('/')[0];
    return first ? `${storeDir}/${first}` : undefined;
  };

  async function evaluate(spec: Record<string, unknown>, o: CallOptions, strict: boolean): Promise<RunResult> {
    const dir = await mkdtemp(join(tmpdir(), 'nixos-desync-gate-'));
    try {
      const specFile = join(dir, 'spec.json');
      await writeFile(specFile, JSON.stringify(spec), { mode: 0o600 });
      const argv = ['nix-instantiate', '--eval', '--strict', '--json', '--read-write-mode', '-E', GATE_EXPR, '--argstr', 'specFile', specFile];
      if (strict) argv.push('--argstr', 'strict', 'true');
      return await exec(argv, o, 64 * 1024 * 1024);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  const specOf = (reqs: GateRequest[]): Record<string, unknown> => ({
    desyncs: Object.fromEntries(reqs.map((r) => [r.desync, { nixpkgs: r.nixpkgs, config: r.config, attrs: r.attrs, system: r.system ?? null }])),
  });

  type EvalAttr = { ok: true; drvPath: string; outputs: string[] } | { ok: false; error: string };
  type EvalDesync = { ok: true; attrs: Record<string, EvalAttr> } | { ok: false; error: string };

  async function diagnose(req: GateRequest, attr: string | undefined, o: CallOptions): Promise<string> {
    const r = await evaluate(specOf([{ ...req, attrs: attr === undefined ? [] : [attr] }]), o, true);
    if (r.exitCode === 0) return 'evaluation failed';
    return nixErrorExcerpt(r.stderr, 6) || describeFailure(r);
  }

  async function buildLogTail(drv: string, o: CallOptions): Promise<string | undefined> {
    const r = await exec(['nix-store', '--read-log', drv], o, 1024 * 1024).catch(() => undefined);
    if (!r || r.exitCode !== 0) return undefined;
    return tailLines(r.stdout, logLines) || undefined;
  }

  /** The failed builder responsible for `drv`: itself, or a failed derivation in its closure. */
  async function culpritOf(drv: string, failed: string[], o: CallOptions): Promise<string | undefined> {
    if (failed.includes(drv) || failed.length === 0) return failed.includes(drv) ? drv : undefined;
    if (failed.length === 1) return failed[0];
    const r = await exec(['nix-store', '--query', '--requisites', drv], o, 16 * 1024 * 1024).catch(() => undefined);
    const closure = new Set((r?.stdout ?? '').split('\n'));
    return failed.find((f) => closure.has(f));
  }

  return {
    async updateChannel(name, o) {
      const r = await exec(['nix-channel', '--update', name], o);
      if (r.exitCode !== 0 || r.timedOut) {
        throw new DesyncError('E_FETCH', `nix-channel --update ${name} failed: ${describeFailure(r)}\n${nixErrorExcerpt(r.stderr)}`, {
          details: { stderr: tailLines(r.stderr, 20) },
        });
      }
    },

    async resolveCandidate(nixpkgs, o) {
      let real: string;
      try {
        real = await realpath(nixpkgs);
      } catch (err) {
        throw new DesyncError('E_CANDIDATE', `nixpkgs ${nixpkgs} cannot be resolved: ${errorMessage(err)}`, { cause: err });
      }
      const isNixpkgs = await stat(join(real, 'default.nix')).then((s) => s.isFile(), () => false);
      if (!isNixpkgs) {
        throw new DesyncError('E_CANDIDATE', `nixpkgs ${nixpkgs} (${real}) is not a nixpkgs tree: it has no default.nix`);
      }
      let storePath = storePathOf(real);
      let path = real;
      if (storePath === undefined) {
        const r = await exec(['nix-store', '--add', real], o);
        const out = r.stdout.trim();
        if (r.exitCode !== 0 || !storePathOf(out)) {
          throw new DesyncError('E_CANDIDATE', `cannot add ${real} to the Nix store: ${describeFailure(r)}\n${nixErrorExcerpt(r.stderr)}`);
        }
        storePath = out;
        path = out;
      }
      // Identity is the tree itself (its store path): two trees with one `.version` differ.
      return { path, storePath, revision: await readRevision(path, storeDir), id: path } satisfies Candidate;
    },

    async buildGates(requests, o) {
      const results = new Map<string, DesyncBuildResult>();
      const withAttrs = requests.filter((r) => r.attrs.length > 0);
      for (const r of requests) if (r.attrs.length === 0) results.set(r.desync, { desync: r.desync, ok: true, attrs: [] });
      if (withAttrs.length === 0) return { results, evaluations: 0 };

      // One evaluation for every desync; fall back to one per desync only if it fails as a whole.
      let evaluations = 1;
      const evaluated = new Map<string, EvalDesync>();
      const all = await evaluate(specOf(withAttrs), o, false);
      if (all.timedOut) {
        for (const r of withAttrs) evaluated.set(r.desync, { ok: false, error: `evaluation ${describeFailure(all)}` });
      } else if (all.exitCode === 0) {
        const parsed = JSON.parse(all.stdout) as Record<string, EvalDesync>;
        for (const r of withAttrs) evaluated.set(r.desync, parsed[r.desync] ?? { ok: false, error: 'missing from evaluation' });
      } else {
        for (const r of withAttrs) {
          evaluations += 1;
          const one = await evaluate(specOf([r]), o, false);
          if (one.exitCode === 0) {
            const parsed = JSON.parse(one.stdout) as Record<string, EvalDesync>;
            evaluated.set(r.desync, parsed[r.desync] ?? { ok: false, error: 'missing from evaluation' });
          } else {
            evaluated.set(r.desync, { ok: false, error: nixErrorExcerpt(one.stderr, 6) || describeFailure(one) });
          }
        }
      }

      // Build every evaluated derivation at once; keep-going so one failure hides no other.
      const drvs = new Set<string>();
      for (const ev of evaluated.values()) {
        if (!ev.ok) continue;
        for (const a of Object.values(ev.attrs)) if (a.ok) drvs.add(a.drvPath);
      }
      let build: RunResult | undefined;
      let invalid = new Set<string>();
      const failedBuilders: string[] = [];
      const exitCodes = new Map<string, string>();
      if (drvs.size > 0) {
        build = await exec(['nix-store', '--realise', '--keep-going', ...drvs], o, 4 * 1024 * 1024);
        for (const m of build.stderr.matchAll(/builder for '([^']+\.drv)' failed(?: with exit code (\d+))?/g)) {
          failedBuilders.push(m[1]!);
          if (m[2]) exitCodes.set(m[1]!, m[2]);
        }
        const outs = [...evaluated.values()].flatMap((ev) =>
          ev.ok ? Object.values(ev.attrs).flatMap((a) => (a.ok ? a.outputs : [])) : [],
        );
        const v = await exec(['nix-store', '--check-validity', '--print-invalid', ...outs], o);
        if (v.exitCode !== 0) {
          throw new DesyncError('E_NIX', `nix-store --check-validity failed: ${describeFailure(v)}\n${nixErrorExcerpt(v.stderr)}`);
        }
        invalid = new Set(v.stdout.split('\n').filter((l) => l.length > 0));
      }

      for (const req of withAttrs) {
        const ev = evaluated.get(req.desync)!;
        if (!ev.ok) {
          const error = ev.error.startsWith('importing nixpkgs') ? `${ev.error}: ${await diagnose(req, undefined, o)}` : ev.error;
          results.set(req.desync, { desync: req.desync, ok: false, attrs: [], error });
          continue;
        }
        const attrs: AttrResult[] = [];
        for (const attr of req.attrs) {
          const a = ev.attrs[attr];
          if (!a) {
            attrs.push({ attr, ok: false, failedAt: 'eval', error: 'missing from evaluation', outputs: [] });
          } else if (!a.ok) {
            const error = a.error === 'evaluation failed' ? await diagnose(req, attr, o) : a.error;
            attrs.push({ attr, ok: false, failedAt: 'eval', error, outputs: [] });
          } else if (a.outputs.some((p) => invalid.has(p))) {
            const culprit = await culpritOf(a.drvPath, failedBuilders, o);
            const code = culprit ? exitCodes.get(culprit) : undefined;
            const how = code ? ` (builder exited with code ${code})` : '';
            const error = build?.timedOut
              ? `build ${describeFailure(build)}`
              : culprit && culprit !== a.drvPath
                ? `dependency ${drvName(culprit)} failed to build${how}`
                : `${drvName(a.drvPath)} failed to build${how}`;
            const logTail = culprit ? await buildLogTail(culprit, o) : undefined;
            attrs.push({ attr, ok: false, failedAt: 'build', error, drvPath: a.drvPath, outputs: a.outputs, logTail });
          } else {
            attrs.push({ attr, ok: true, drvPath: a.drvPath, outputs: a.outputs });
          }
        }
        results.set(req.desync, { desync: req.desync, ok: attrs.every((x) => x.ok), attrs });
      }
      return { results, evaluations } satisfies GateBuildReport;
    },

    async addRoot(storePath, link, o) {
      const r = await exec(['nix-store', '--realise', storePath, '--add-root', link, '--indirect'], o);
      if (r.exitCode !== 0) {
        throw new DesyncError('E_NIX', `cannot register GC root ${link} for ${storePath}: ${describeFailure(r)}\n${nixErrorExcerpt(r.stderr)}`);
      }
    },
  };
}
