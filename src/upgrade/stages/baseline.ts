// Step 2 (end): a run never starts from an unverified system. The running system is the
// baseline (rollback target, failed-units baseline) only when it is verified: otherwise the run
// first returns to the last verified system, and does nothing else when it cannot. A system the
// loop did not leave unconfirmed (the first run's, one switched by hand) is adopted as verified.
import { DesyncError } from '../../util/errors.js';
import { unverifiedReason, verifiedTarget } from '../../state/verified.js';
import { timed, type RunContext } from '../context.js';
import { rollbackSystem } from './rollback.js';

export async function verifiedBaselineStage(ctx: RunContext): Promise<void> {
  const { system, prev, next, log } = ctx;
  if (!system.gated) return;
  const running = await system.current();
  const why = unverifiedReason(prev, null, running);
  if (why === null) {
    if (running !== null && prev.verified?.toplevel !== running) {
      next.verified = { toplevel: running, at: ctx.now().toISOString(), runId: ctx.res.runId, how: 'running' };
    }
    return;
  }
  // A booted boot-path candidate is verify-boot's to judge (step 9c): never adopted, never rolled back by a run.
  if (prev.reboot.pending?.toplevel === running) {
    throw new DesyncError('E_BOOT_PENDING', `the running system is unverified (${why}); the run waits for \`nixos-desync verify-boot\` (run at boot before boot-complete.target) to judge it — nothing was changed`);
  }
  const target = verifiedTarget(prev);
  log.warn(`verify     the running system is unverified (${why}); returning to the verified system ${target ?? '(none known)'} first`, { stage: 'rollback', previous: target });
  const r = await timed(ctx, 'rollback', () => rollbackSystem(system, target, running!, ctx.uninterruptible('system')));
  if (!r.confirmed) {
    throw new DesyncError('E_ROLLBACK', `the running system is unverified (${why}) and returning to the verified system failed: ${r.line}; ` +
      'nothing else happens until it succeeds: fix the cause (see `nixos-desync status`), then run `nixos-desync recover` or the next upgrade');
  }
  log.warn(`rollback   ${r.line}: the run starts from the verified system`, { stage: 'rollback', previous: target });
}
