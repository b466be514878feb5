// Flake mode (DESIGN.md "Config": flake): the system follows an input of the host's flake and
// each desync is an input of its own. The candidate lock — the followed input and every
// passing desync's input locked to the candidate, failing desyncs' inputs untouched, all
// other inputs as they were — is what `nixos-rebuild build --flake` sees; the lock as it was
// before the run is kept in the candidate set so that a failed build, a rollback or a crash
// at any instant puts it back byte for byte.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { desyncInput } from '../config/schema.js';
import type { CallOptions, Candidate } from '../nix/adapter.js';
import type { StateStore } from '../state/store.js';
import type { Pin } from '../state/model.js';
import { DesyncError, errorMessage } from '../util/errors.js';
import { describeFailure, tailLines, type Runner } from '../util/exec.js';
import { failpoint } from '../util/failpoint.js';
import { writeFileAtomic, ensureDir, fsyncDir } from '../util/fsatomic.js';
import { resolveNewest, type ResolvedInput } from './flake-fetch.js';
import { lockableProblem, readLockFile, rootInput, serializeFlakeLock, withInputsLocked, writeLockFile, type Attrs, type FlakeLock } from './flake-lock.js';
import { assertLockMatchesFlake } from './flake-check.js';
import { restorePins } from './pins.js';
import type { PinSet, Source } from './source.js';

export interface FlakeSourceDeps {
  config: Config;
  store: StateStore;
  run: Runner;
  env?: NodeJS.ProcessEnv;
}

/** Files kept in `<stateDir>/sets/<id>/flake/`: the lock before the run and the one it wrote. */
const PREVIOUS = 'previous.lock';
const CANDIDATE = 'candidate.lock';

export function createFlakeSource(deps: FlakeSourceDeps): Source & { readonly resolved: ResolvedInput | null } {
  const { config, store, run } = deps;
  const flake = config.flake;
  if (flake === null) throw new DesyncError('E_CONFIG', 'the flake source needs the "flake" config key');
  const lockPath = join(flake.path, 'flake.lock');
  const keep = (id: string, f: string): string => join(store.setDir(id), 'flake', f);
  let resolved: ResolvedInput | null = null;
  /** The lock as it was when this run exposed its candidate (what a commit message compares to). */
  let before: FlakeLock | null = null;

  const readHostLock = async () => {
    const l = await readLockFile(lockPath);
    const problem = lockableProblem(l.lock, flake.input);
    if (problem !== null) throw new DesyncError('E_CONFIG', `${lockPath}: ${problem}`);
    return l;
  };

  return {
    kind: 'flake',
    get resolved() {
      return resolved;
    },

    // Resolving changes nothing on the host (only the Nix store gains the fetched tree), so a
    // dry run resolves too: it then gates what a real run would.
    async fetch(o) {
      const { lock } = await readHostLock();
      // Before anything is gated: a flake.nix changed without re-locking would be re-locked by Nix during the build.
      await assertLockMatchesFlake(flake.path, lock, { ...o, run, env: deps.env });
      const main = rootInput(lock, flake.input);
      if (main.kind !== 'node') throw new DesyncError('E_CONFIG', `${lockPath}: input ${flake.input} is not a node`);
      resolved = await resolveNewest(main.value.original!, { ...o, run, env: deps.env, isFlake: main.value.flake !== false });
      const was = main.value.locked?.rev as string | undefined;
      const moved = was === resolved.rev ? 'unchanged' : `${short(was)} → ${short(resolved.rev)}`;
      return { skipped: false, message: `input ${flake.input} resolved to ${resolved.rev ?? resolved.narHash ?? resolved.storePath} (${moved})${o.dryRun ? '; dry run: flake.lock not changed' : ''}` };
    },

    async candidate() {
      if (resolved === null) throw new DesyncError('E_CANDIDATE', 'flake source: candidate asked before fetch');
      const revision = resolved.rev ?? storeHash(resolved.storePath);
      return { path: resolved.storePath, storePath: resolved.storePath, revision, id: flakeCandidateId(resolved) } satisfies Candidate;
    },

    async expose(set, previous) {
      if (resolved === null) throw new DesyncError('E_CANDIDATE', 'flake source: expose before fetch');
      const host = await readHostLock();
      before = host.lock;
      const follow = [flake.input, ...followingInputs(config, set, resolved.storePath)];
      let lock = withInputsLocked(host.lock, follow, resolved.locked);
      // Failing desyncs' inputs are locked to their pins, never to whatever the lock holds now (e.g. bumped by hand).
      const committed = previous === null ? null : await readLockFile(keep(previous.id, CANDIDATE)).then((l) => l.lock, () => null);
      for (const [name, pin] of Object.entries(set.pins)) {
        const d = config.desyncs[name];
        if (d === undefined || pin.storePath === resolved.storePath) continue;
        const input = desyncInput(name, d);
        lock = withInputsLocked(lock, [input], pinnedLocked(name, input, pin, committed, host.lock, lockPath));
      }
      const next = Buffer.from(serializeFlakeLock(lock));
      // Both versions are durable in the candidate set before flake.lock changes, so recovery
      // after a crash at any instant can tell the candidate lock and put the previous one back.
      await ensureDir(join(store.setDir(set.id), 'flake'));
      await writeFileAtomic(keep(set.id, PREVIOUS), host.bytes, 0o644);
      await writeFileAtomic(keep(set.id, CANDIDATE), next, 0o644);
      await fsyncDir(join(store.setDir(set.id), 'flake'));
      failpoint('after-flake-lock-kept');
      await store.pointPinsAt(set.id);
      await writeLockFile(lockPath, next, 'mid-flake-lock-write');
      failpoint('after-flake-lock-write');
    },

    async restore(committed, candidateId) {
      // The pin files follow the committed set, as in channel mode.
      await restorePins(store, committed, candidateId);
      if (candidateId === null || candidateId === committed?.id) return;
      const read = (f: string): Promise<Buffer | null> => readFile(f).catch(() => null);
      const [prev, cand, now] = [await read(keep(candidateId, PREVIOUS)), await read(keep(candidateId, CANDIDATE)), await read(lockPath)];
      // Only the lock this run wrote is taken back: a lock someone changed since is theirs.
      if (prev !== null && cand !== null && now !== null && now.equals(cand) && !now.equals(prev)) {
        await writeLockFile(lockPath, prev);
      }
    },

    async commit(set) {
      if (!flake.commitLockFile) return;
      const prev = await readFile(keep(set.id, PREVIOUS)).catch(() => null);
      const now = await readFile(lockPath);
      if (prev !== null && prev.equals(now)) return; // nothing moved: nothing to commit
      if (resolved === null) {
        // Recovery of a run that died past its commit point: its flake.lock, if still the one it wrote and not in git yet.
        const cand = await readFile(keep(set.id, CANDIDATE)).catch(() => null);
        if (cand === null || !cand.equals(now) || !(await lockDiffers(deps))) return;
        await gitCommitLock(deps, recoveryMessage(config, set), { timeoutMs: 60_000 });
        return;
      }
      await gitCommitLock(deps, commitMessage(config, set, resolved, before), { timeoutMs: 60_000 });
    },
  };
}

/**
 * The `locked` attributes of a desync's pin: its input's node in the lock the loop committed
 * with that pin, else in the host's lock if that one is still locked at the pin's revision.
 * Anything else (the pin came from channel mode, or the lock was changed by hand and no
 * committed lock knows the pin) stops the run: the build must not use an ungated revision.
 */
export function pinnedLocked(name: string, input: string, pin: Pin, committed: FlakeLock | null, host: FlakeLock, lockPath: string): Attrs {
  const isPin = (l: FlakeLock | null): Attrs | null => {
    const r = l === null ? null : rootInput(l, input);
    const locked = r?.kind === 'node' ? r.value.locked : undefined;
    if (locked === undefined) return null;
    const rev = typeof locked.rev === 'string' ? locked.rev : null;
    return rev === pin.revision ? locked : null;
  };
  const found = isPin(committed) ?? isPin(host);
  if (found !== null) return found;
  const now = rootInput(host, input);
  const held = now.kind === 'node' ? String(now.value.locked?.rev ?? 'an unlocked reference') : 'nothing';
  throw new DesyncError('E_FLAKE_LOCK',
    `desync ${name} stays on its pin ${pin.revision} (it failed its gate), but ${lockPath} locks its input ${input} to ${held} and no lock the loop committed has that pin. ` +
    `Lock the input back to the pin (nix flake lock --override-input ${input} <its url>?rev=${pin.revision}), or let the desync pass its gate`);
}

/** Desyncs whose new pin is the candidate: their inputs follow it. */
function followingInputs(config: Config, set: PinSet, candidateStorePath: string): string[] {
  return Object.entries(set.pins)
    .filter(([name, pin]) => config.desyncs[name] !== undefined && pin.storePath === candidateStorePath)
    .map(([name]) => desyncInput(name, config.desyncs[name]!));
}

/** A flake candidate's identity: its locked rev + narHash (the store path when Nix gave no narHash). */
export function flakeCandidateId(r: Pick<ResolvedInput, 'rev' | 'narHash' | 'storePath'>): string {
  return `${r.rev ?? 'no-rev'}+${r.narHash ?? r.storePath}`;
}

function short(rev: string | null | undefined): string {
  return rev ? rev.slice(0, 12) : 'unlocked';
}

function storeHash(storePath: string): string {
  return (storePath.split('/').pop() ?? storePath).split('-')[0] ?? storePath;
}

/** `flake.lock: nixos-desync run <id>` + one line per input the run followed or left behind. */
export function commitMessage(config: Config, set: PinSet, resolved: ResolvedInput, before: FlakeLock | null): string {
  const flake = config.flake!;
  const revOf = (input: string): string | undefined => {
    const r = before === null ? undefined : rootInput(before, input);
    return r?.kind === 'node' ? (r.value.locked?.rev as string | undefined) : undefined;
  };
  const lines = [`${flake.input}: ${short(revOf(flake.input))} → ${short(resolved.rev)}`];
  for (const name of Object.keys(config.desyncs).sort()) {
    const input = desyncInput(name, config.desyncs[name]!);
    const pin = set.pins[name];
    if (pin === undefined) continue;
    if (pin.storePath === resolved.storePath) lines.push(`desync ${name} (${input}): followed ${short(resolved.rev)}`);
    else lines.push(`desync ${name} (${input}): stayed on ${short(revOf(input) ?? pin.revision)} (lag ${pin.desyncAge})`);
  }
  return `flake.lock: nixos-desync run ${set.id}\n\n${lines.join('\n')}\n`;
}

/** The message when `recover` commits the flake.lock of a run that died before its own git commit. */
function recoveryMessage(config: Config, set: PinSet): string {
  const lines = Object.keys(config.desyncs).sort().flatMap((name) => {
    const pin = set.pins[name];
    return pin === undefined ? [] : [`desync ${name} (${desyncInput(name, config.desyncs[name]!)}): ${short(pin.revision)} (lag ${pin.desyncAge})`];
  });
  return `flake.lock: nixos-desync run ${set.id}\n\nCommitted by nixos-desync recover: the run died past its commit point, before its git commit.\n\n${lines.join('\n')}\n`;
}

/** Whether flake.lock differs from git's HEAD (`git diff --quiet` exits 1). */
async function lockDiffers(deps: FlakeSourceDeps): Promise<boolean> {
  const dir = deps.config.flake!.path;
  const r = await deps.run(['git', '-c', `safe.directory=${dir}`, '-C', dir, 'diff', '--quiet', 'HEAD', '--', 'flake.lock'], { env: deps.env ?? process.env, timeoutMs: 60_000 })
    .catch(() => ({ exitCode: 0 }));
  return r.exitCode === 1;
}

/** `git commit` of flake.lock alone (other staged changes stay staged). */
async function gitCommitLock(deps: FlakeSourceDeps, message: string, o: CallOptions): Promise<void> {
  const dir = deps.config.flake!.path;
  const env = deps.env ?? process.env;
  // Root on a NixOS host often has no git identity; an identity the user set is kept.
  const who = await deps.run(['git', '-c', `safe.directory=${dir}`, '-C', dir, 'config', '--get', 'user.email'], { env, timeoutMs: o.timeoutMs, signal: o.signal })
    .catch(() => ({ exitCode: 1, stdout: '' }));
  const identity = who.exitCode === 0 && who.stdout.trim() !== '' ? [] : ['-c', 'user.name=nixos-desync', '-c', 'user.email=nixos-desync@localhost'];
  const r = await deps.run(['git', '-c', `safe.directory=${dir}`, ...identity, '-C', dir, 'commit', '--quiet', '--no-verify', '-m', message, '--', 'flake.lock'],
    { env, timeoutMs: o.timeoutMs, signal: o.signal }).catch((err: unknown) => ({ exitCode: null, failedToStart: errorMessage(err) }) as const);
  if ('failedToStart' in r) throw new DesyncError('E_FLAKE_LOCK', `git commit of ${dir}/flake.lock could not start: ${r.failedToStart}; the new flake.lock is in place`);
  if (r.exitCode !== 0 || r.timedOut) {
    throw new DesyncError('E_FLAKE_LOCK', `git commit of ${dir}/flake.lock failed: ${describeFailure(r)}; the new flake.lock is in place (commit it yourself)\n${tailLines(r.stderr || r.stdout, 10)}`);
  }
}
