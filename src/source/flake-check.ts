// Flake mode's guard against re-locking (DESIGN.md "The run", step 7): flake.nix and
// flake.lock must agree before anything is gated. Nix 2.8 re-locks an input whose flake.nix
// reference changed during any build (even with --no-write-lock-file, in memory), which would
// build an ungated revision; so the loop asks Nix what it would lock
// (`nix flake metadata --json --no-write-lock-file`, which writes nothing) and refuses to run
// when that differs from flake.lock, naming each input.
import { isDeepStrictEqual } from 'node:util';
import type { CallOptions } from '../nix/adapter.js';
import { nixErrorExcerpt } from '../nix/cli-adapter.js';
import { DesyncError, errorMessage } from '../util/errors.js';
import { describeFailure, tailLines, type Runner } from '../util/exec.js';
import { describeRef, NIX_FLAKE_FLAGS } from './flake-fetch.js';
import { parseFlakeLock, rootInput, rootInputNames, type FlakeLock } from './flake-lock.js';

/** One line per root input on which flake.nix (as Nix would lock it) and flake.lock disagree. */
export function lockDrift(wanted: FlakeLock, have: FlakeLock): string[] {
  const out: string[] = [];
  for (const name of [...new Set([...rootInputNames(wanted), ...rootInputNames(have)])].sort()) {
    const w = rootInput(wanted, name);
    const h = rootInput(have, name);
    if (h.kind === 'missing') out.push(`input ${name} is in flake.nix but not in flake.lock`);
    else if (w.kind === 'missing') out.push(`input ${name} is in flake.lock but no longer in flake.nix`);
    else if (w.kind === 'follows' || h.kind === 'follows') {
      if (!isDeepStrictEqual(w, h)) out.push(`input ${name}: flake.nix says ${w.kind === 'follows' ? `follows ${w.path.join('/')}` : 'its own reference'}, flake.lock has ${h.kind === 'follows' ? `follows ${h.path.join('/')}` : 'its own node'}`);
    } else if (!isDeepStrictEqual(w.value.original, h.value.original)) {
      out.push(`input ${name}: flake.nix says ${describeRef(w.value.original ?? {})}, flake.lock was locked from ${describeRef(h.value.original ?? {})}`);
    }
  }
  return out;
}

/** Throws E_FLAKE_LOCK when the flake at `dir` would re-lock `have` (its flake.lock); E_FETCH when Nix cannot tell. */
export async function assertLockMatchesFlake(dir: string, have: FlakeLock, o: CallOptions & { run: Runner; env?: NodeJS.ProcessEnv }): Promise<void> {
  const argv = ['nix', ...NIX_FLAKE_FLAGS, 'flake', 'metadata', '--json', '--no-write-lock-file', dir];
  const r = await o.run(argv, { env: o.env, timeoutMs: o.timeoutMs, signal: o.signal, onSpawn: o.onSpawn });
  if (r.exitCode !== 0 || r.timedOut) {
    throw new DesyncError('E_FETCH', `reading the flake ${dir} failed: ${describeFailure(r)}\n${nixErrorExcerpt(r.stderr)}`, { details: { argv, stderr: tailLines(r.stderr, 20) } });
  }
  let wanted: FlakeLock;
  try {
    wanted = parseFlakeLock(JSON.stringify((JSON.parse(r.stdout) as { locks?: unknown }).locks), `the lock Nix computes for ${dir}`);
  } catch (err) {
    throw new DesyncError('E_FETCH', `nix flake metadata printed no lock for ${dir}: ${errorMessage(err)}`, { cause: err });
  }
  const drift = lockDrift(wanted, have);
  // Nix says so too when something deeper than a root input changed (e.g. a nested follows).
  if (drift.length === 0 && !/not writing modified lock file/.test(r.stderr)) return;
  const what = drift.length > 0 ? drift.map((d) => `  ${d}`).join('\n') : `  ${tailLines(r.stderr, 10)}`;
  throw new DesyncError('E_FLAKE_LOCK',
    `${dir}/flake.nix and its flake.lock disagree (flake.nix was changed without re-locking):\n${what}\n` +
    `The loop never lets Nix re-lock an input during the build (that would build a revision no gate saw). Run \`nix flake lock\` in ${dir} ` +
    '(and commit flake.lock), then run the upgrade again');
}
