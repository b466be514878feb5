// Step 9b: after the commit, what a reboot would apply — the booted system against the new boot
// default in the reboot triggers — goes to the sentinel and the log. Never fails the run: the
// system is committed and healthy by now.
import { readRebootSituation, describeReason } from '../../reboot/triggers.js';
import { syncSentinel } from '../../reboot/sentinel.js';
import { errorMessage } from '../../util/errors.js';
import type { RunContext } from '../context.js';

export async function rebootStage(ctx: RunContext): Promise<void> {
  const { config, log } = ctx;
  try {
    const situation = await readRebootSituation(config.profilesDir, config.runDir, config.reboot.triggers);
    const changed = await syncSentinel(config.reboot.sentinel, situation.reasons);
    if (situation.reasons.length === 0) return;
    log.info(`reboot     required: ${situation.reasons.map(describeReason).join('; ')}${changed === 'written' ? ` (${config.reboot.sentinel} written)` : ''}`,
      { stage: 'reboot', triggers: situation.reasons.map((r) => r.trigger) });
  } catch (err) {
    log.warn(`reboot     cannot tell whether a reboot is required: ${errorMessage(err)}`, { stage: 'reboot' });
  }
}
