// A fake Nix adapter and command runner whose calls the test releases one by one, so the
// loop can be observed (and "crashed") between any two steps.
import type { CallOptions, Candidate, GateBuildReport, GateRequest, NixAdapter } from '../../src/nix/adapter.js';
import type { RunOptions, RunResult, Runner } from '../../src/util/exec.js';

export interface PendingCall<T = unknown> {
  method: string;
  args: unknown[];
  resolve(value: T): void;
  reject(err: unknown): void;
}

export class CallQueue {
  private calls: PendingCall[] = [];
  private waiters: Array<{ method?: string; fn: (c: PendingCall) => void }> = [];
  readonly log: Array<{ method: string; args: unknown[] }> = [];

  call<T>(method: string, args: unknown[]): Promise<T> {
    this.log.push({ method, args });
    return new Promise<T>((resolve, reject) => {
      const c: PendingCall = { method, args, resolve: resolve as (v: unknown) => void, reject };
      const i = this.waiters.findIndex((w) => !w.method || w.method === method);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.fn(c);
      else this.calls.push(c);
    });
  }

  /** The next call (of `method`, if given); waits until the loop makes it. */
  next<T = unknown>(method?: string, timeoutMs = 5000): Promise<PendingCall<T>> {
    const i = this.calls.findIndex((c) => !method || c.method === method);
    if (i >= 0) return Promise.resolve(this.calls.splice(i, 1)[0] as PendingCall<T>);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${method ?? 'call'} within ${timeoutMs}ms; calls so far: ${this.log.map((l) => l.method).join(', ')}`)), timeoutMs);
      this.waiters.push({ method, fn: (c) => { clearTimeout(t); resolve(c as PendingCall<T>); } });
    });
  }
}

export function createFakeNix(q: CallQueue): NixAdapter {
  return {
    updateChannel: (name: string, o: CallOptions) => q.call<void>('updateChannel', [name, o]),
    resolveCandidate: (p: string, o: CallOptions) => q.call<Candidate>('resolveCandidate', [p, o]),
    buildGates: (reqs: GateRequest[], o: CallOptions) => q.call<GateBuildReport>('buildGates', [reqs, o]),
    // Roots are bookkeeping, not a step under test: always succeed at once.
    addRoot: async (storePath: string, link: string) => {
      q.log.push({ method: 'addRoot', args: [storePath, link] });
    },
  };
}

export function createFakeRunner(q: CallQueue): Runner {
  return (argv: readonly string[], opts: RunOptions) => q.call<RunResult>('run', [argv, opts]);
}

export function ok(argv: readonly string[], stdout = ''): RunResult {
  return { argv: [...argv], exitCode: 0, signal: null, stdout, stderr: '', timedOut: false, durationMs: 5 };
}

export function fail(argv: readonly string[], stderr = 'boom', exitCode = 1): RunResult {
  return { argv: [...argv], exitCode, signal: null, stdout: '', stderr, timedOut: false, durationMs: 5 };
}

export function candidate(label: string): Candidate {
  const hash = (label + 'x'.repeat(32)).slice(0, 32).replace(/[^0-9a-z]/g, 'a');
  return { path: `/nix/store/${hash}-${label}`, storePath: `/nix/store/${hash}-${label}`, revision: label, id: `/nix/store/${hash}-${label}` };
}

/** A gate report in which `failing` desyncs failed to build and the others passed. */
export function gateReport(reqs: GateRequest[], failing: string[] = [], evalFailing: string[] = []): GateBuildReport {
  const results = new Map();
  for (const r of reqs) {
    const bad = failing.includes(r.desync);
    const evalBad = evalFailing.includes(r.desync);
    results.set(r.desync, {
      desync: r.desync,
      ok: !bad && !evalBad,
      attrs: r.attrs.map((attr) => ({
        attr,
        ok: !bad && !evalBad,
        failedAt: bad ? 'build' : evalBad ? 'eval' : undefined,
        error: bad ? `${attr} failed to build (builder exited with code 1)` : evalBad ? `error: ${attr} is broken` : undefined,
        outputs: [`/nix/store/${'o'.repeat(32)}-${attr}`],
      })),
    });
  }
  return { results, evaluations: 1 };
}
