// `nixos-desync status`: the contract's JSON, or a table a person reads at a glance.
import { readdir, realpath } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import { createStateStore } from '../state/store.js';
import { stateDirProblem } from '../state/safe-dir.js';
import { buildStatus, type PrDesyncInput, type RunActivity, type StatusDoc } from '../views/status.js';
import { readSystemInfo } from '../system/running.js';
import { formatSeconds } from '../util/duration.js';
import { DesyncError, errorMessage } from '../util/errors.js';
import { sourcesOf } from '../system/generations.js';
import { describeReason, readRebootSituation } from '../reboot/triggers.js';
import { unverifiedReason } from '../state/verified.js';
import { isProcessAlive } from '../util/proc.js';
import { runLockHolder } from '../watch/state-trust.js';
import { readPrDesyncFile } from '../watch/pr-desync.js';

export async function collectStatus(config: Config, now = new Date()): Promise<StatusDoc> {
  // What upgrade refuses to run on and the exporter refuses to export, status refuses to show.
  const untrusted = await stateDirProblem(config.stateDir);
  if (untrusted !== null) {
    throw new DesyncError('E_UNSAFE_PATH', `${untrusted}. Until it is fixed, upgrade refuses to run, the exporter exports nothing from it, and status does not show what anyone could have written there`);
  }
  const store = createStateStore(config.stateDir);
  const [state, sys, corrupt] = await Promise.all([
    store.readState({ repair: false }),
    readSystemInfo(config.profilesDir, config.runDir),
    store.corruptFiles(),
  ]);
  const problems = [...state.problems, ...corrupt.map((f) => ({ file: `${config.stateDir}/${f}`, message: 'corrupt file moved aside by an earlier run' }))];
  const toplevel = await realpath(join(config.runDir, 'current-system')).catch(() => null);
  const reboot = await readRebootSituation(config.profilesDir, config.runDir, config.reboot.triggers);
  // A live run's journal is its own; a dead one's activation makes the running system unverified.
  const journal = (await store.readJournal({ repair: false })).value;
  const dead = journal !== null && !isProcessAlive(journal.pid, journal.pidStartTime) ? journal : null;
  const holder = await runLockHolder(config.stateDir);
  const run: RunActivity = {
    inProgress: holder === null ? null : {
      pid: holder.pid, since: holder.startedAt,
      runId: journal !== null && journal.pid === holder.pid ? journal.runId : null,
      stage: journal !== null && journal.pid === holder.pid ? journal.stage : null,
    },
    interrupted: dead === null || holder !== null ? null : { runId: dead.runId, stage: dead.stage, startedAt: dead.startedAt },
  };
  return buildStatus(config, state.value, sys, now, problems, { toplevel, sources: await sourcesOf(toplevel, state.value.systems), unverified: unverifiedReason(state.value, dead, toplevel) }, reboot.reasons,
    { run, pr: config.exporter.prDesyncDir === null ? undefined : await readPrDir(config.exporter.prDesyncDir) });
}

/** The desync proposal's state files (exporter.prDesyncDir), as the exporter reads them; each unreadable one is a problem. */
async function readPrDir(dir: string): Promise<{ desyncs: PrDesyncInput[]; problems: string[] }> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.nix') && !n.startsWith('.')).sort();
  } catch (err) {
    return { desyncs: [], problems: (err as NodeJS.ErrnoException).code === 'ENOENT' ? [] : [`${dir}: ${errorMessage(err)}`] };
  }
  const desyncs: PrDesyncInput[] = [];
  const problems: string[] = [];
  for (const n of names) {
    await readPrDesyncFile(join(dir, n), n.slice(0, -'.nix'.length)).then((d) => desyncs.push(d), (err: unknown) => problems.push(errorMessage(err)));
  }
  return { desyncs, problems };
}

function pad(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

export function renderStatus(doc: StatusDoc): string {
  const lines: string[] = [];
  const live = doc.run.inProgress;
  if (live) {
    lines.push(`RUN IN PROGRESS: ${live.runId ? `run ${live.runId}` : 'a run'} (pid ${live.pid})${live.stage ? `, stage ${live.stage}` : ''}${live.since ? `, started ${live.since}` : ''}; what follows is the state before it`, '');
  }
  const dead = doc.run.interrupted;
  if (dead) lines.push(`INTERRUPTED RUN: ${dead.runId} (started ${dead.startedAt}) died in stage ${dead.stage}; \`nixos-desync recover\` (or the next run) finishes or rolls it back`, '');
  if (doc.desyncs.length === 0) {
    lines.push('No desyncs configured: runs are plain auto-upgrades (still recorded and exported).');
  } else {
    const rows = [['DESYNC', 'REVISION', 'LAG', 'BEHIND', 'LAST ATTEMPT', 'STATE']];
    for (const d of doc.desyncs) {
      const lag = `${d.lagRebuilds}/${d.maxLagRebuilds ?? '∞'}`;
      const behind = `${formatSeconds(d.behindSeconds)}${d.maxBehindSeconds !== null ? '/' + formatSeconds(d.maxBehindSeconds) : ''}`;
      const last = d.lastAttempt ? `${d.lastAttempt.result} ${d.lastAttempt.at.replace('T', ' ').slice(0, 19)}Z` : 'never';
      const state = d.breached ? 'BREACHED' : d.revision === null ? 'no pin' : d.inSync ? 'in sync' : d.heldBack?.stage === 'health' ? 'held back (runtime)' : 'lagging';
      const name = d.source === 'pr' ? `${d.name} (proposal)` : d.configured ? d.name : `${d.name} (removed)`;
      rows.push([name, (d.revision ?? '-').slice(0, 16), lag, d.source === 'pr' ? '-' : behind, last, state]);
    }
    lines.push(pad(rows));
    for (const d of doc.desyncs) {
      if (d.breached && d.breachReason) lines.push(`  ${d.name}: breach: ${d.breachReason}`);
      if (d.lastAttempt?.result === 'failed' && d.lastAttempt.error) lines.push(`  ${d.name}: last failure: ${d.lastAttempt.error.split('\n')[0]}`);
      const h = d.heldBack;
      if (h?.stage === 'health') lines.push(`  ${d.name}: held back at runtime since ${h.since}${h.retryAt ? `, tried again after ${h.retryAt}` : ''} — ${h.reason.split('\n')[0]}`);
      if (d.passedUncommitted) lines.push(`  ${d.name}: passed its gate, but that run did not commit (failed or rolled back): still on its pin at lag ${d.lagRebuilds}`);
    }
    for (const p of doc.prProblems) lines.push(`warning: proposal state file: ${p}`);
  }
  const s = doc.system;
  lines.push('');
  lines.push(`system: generation ${s.generation ?? '-'}${s.generationTimestamp ? ` (${s.generationTimestamp})` : ''}, ${s.generations} generation(s)` +
    `${s.activationPending ? ', activation pending' : ''}${s.rebootRequired ? ', REBOOT REQUIRED' : ''}`);
  const src = doc.system.sources as { nixpkgs: { revision: string }; desyncs: Record<string, { revision: string; desyncAge: number }> } | null;
  if (src) {
    const lagging = Object.entries(src.desyncs).filter(([, d]) => d.desyncAge > 0).map(([n, d]) => `${n} ${d.revision.slice(0, 12)} (lag ${d.desyncAge})`);
    lines.push(`running system built from nixpkgs ${src.nixpkgs.revision.slice(0, 12)}${lagging.length ? '; desynced: ' + lagging.join(', ') : ''}`);
  } else if (doc.system.toplevel) {
    lines.push('running system: not built by nixos-desync (no recorded sources)');
  }
  for (const r of s.rebootReasons) lines.push(`  reboot required by ${describeReason(r)}`);
  if (s.rebootRequired && s.rebootReasons.length === 0) lines.push('  reboot required: the booted kernel, initrd or kernel modules differ from the running system\'s');
  const rb = doc.reboot;
  if (s.rebootRequired) {
    const how = rb.enabled ? `reboots in the window (${rb.window}${rb.nextWindow ? `, next ${rb.nextWindow}` : ''})` : 'reboot.enable is false: reboot by hand';
    lines.push(`reboot: ${how}${rb.lastDecision?.blocked ? `; last decision ${rb.lastDecision.at}: ${rb.lastDecision.message}` : ''}`);
  }
  if (rb.pending) lines.push(`boot pending: ${rb.pending.toplevel} is the boot default, not yet booted and verified (${rb.pending.why})`);
  if (rb.lastBoot) lines.push(`last boot check: ${rb.lastBoot.success ? 'healthy' : 'UNHEALTHY'} at ${rb.lastBoot.at}${rb.lastBoot.error ? ' — ' + rb.lastBoot.error.split('\n')[0] : ''}`);
  if (doc.rollback) {
    lines.push(`last rollback: ${doc.rollback.at} (${doc.rollback.reason}) — ${doc.rollback.error.split('\n')[0]}`);
  }
  for (const r of doc.rejected) {
    lines.push(`rejected candidate: ${r.revision} ${r.path} (rolled back by run ${r.runId}); skipped until upgrade --retry`);
  }
  const r = doc.lastRun;
  lines.push(r ? `last run: ${r.result}, started ${r.at}, ended ${r.finishedAt} (${formatSeconds(r.durationSeconds)})${r.error ? ' — ' + r.error.split('\n')[0] : ''}` : 'last run: never');
  lines.push(`last successful run: ${doc.lastSuccessfulRunAt ? `ended ${doc.lastSuccessfulRunAt}` : 'never'}`);
  for (const p of doc.stateProblems) lines.push(`warning: ${p.file}: ${p.message}`);
  return lines.join('\n') + '\n';
}
