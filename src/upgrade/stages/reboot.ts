// Step 9b: after the commit, what a reboot would apply — the booted system against the new boot
// default in the reboot triggers — goes to the sentinel and the log; with reboot.enable, inside
// the window and not blocked by alerts, the run reboots the host once it is recorded (otherwise
// `nixos-desync reboot` does at the next window). Never fails the run: the system is committed.
import { alertsCheck } from '../../reboot/alerts.js';
import { blockedByFleet, noteDecision, runRebootCommand } from '../../reboot/command.js';
import { decideReboot } from '../../reboot/decide.js';
import { readRebootSituation } from '../../reboot/triggers.js';
import { syncSentinel } from '../../reboot/sentinel.js';
import { errorMessage } from '../../util/errors.js';
import type { RunContext, UpgradeDeps, UpgradeResult } from '../context.js';

export async function rebootStage(ctx: RunContext): Promise<void> {
  const { config, log } = ctx;
  try {
    const situation = await readRebootSituation(config.profilesDir, config.runDir, config.reboot.triggers);
    const changed = await syncSentinel(config.reboot.sentinel, situation.reasons);
    const now = ctx.now();
    const decision = await decideReboot(config, situation, now, alertsCheck(config));
    noteDecision(ctx.next, decision, now);
    if (!decision.required) return;
    const rebooting = decision.blocked === null;
    ctx.res.reboot = { blocked: decision.blocked, message: decision.message, rebooting };
    const sentinel = changed === 'written' ? ` (${config.reboot.sentinel} written)` : '';
    (blockedByFleet(decision) ? log.warn : log.info)(`reboot     ${decision.message}${rebooting ? ' once the run is recorded' : ''}${sentinel}`,
      { stage: 'reboot', triggers: situation.reasons.map((r) => r.trigger), blocked: decision.blocked });
  } catch (err) {
    log.warn(`reboot     cannot tell whether a reboot is required: ${errorMessage(err)}`, { stage: 'reboot' });
  }
}

/** The run's reboot (reboot.command), after the run was recorded and the lock released. A failure is reported, not fatal. */
export async function rebootAfterRun(deps: UpgradeDeps, res: UpgradeResult): Promise<void> {
  try {
    deps.logger.warn(`reboot     rebooting now (${deps.config.reboot.command.join(' ')})`, { stage: 'reboot' });
    await runRebootCommand({ config: deps.config, run: deps.run, env: deps.env ?? process.env });
  } catch (err) {
    res.reboot = { ...res.reboot!, rebooting: false, error: errorMessage(err) };
    deps.logger.error(`reboot     ${errorMessage(err)}; \`nixos-desync reboot\` tries again at the next window`, { stage: 'reboot', code: 'E_COMMAND' });
  }
}
