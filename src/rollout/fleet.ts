// Step 9d's question to Prometheus, as one PromQL query per run, and what its answer means:
// did at least `minHosts` hosts of ring r−1 run this revision healthy for `soak`, and did any
// host of the fleet reject it? Across hosts a candidate is its nixpkgs revision (the label the
// hosts export): the same channel revision can have another store path on another host
// (another channel name, another Nix), its revision cannot.
import type { Config } from '../config/schema.js';
import type { HoldReason } from '../state/model.js';
import type { Sample } from '../prometheus/client.js';
import { formatSeconds, parseDuration } from '../util/duration.js';

export type RolloutConfig = NonNullable<Config['rollout']>;

/** A PromQL string literal (double-quoted, Go escapes); a value that cannot be one is refused. */
export function promqlString(s: string): string {
  // JSON escapes are Go escapes, except a lone surrogate (\udXXX), which Go refuses.
  if (/[\ud800-\udfff]/u.test(s) || s.length > 1024) throw new Error(`not usable as a PromQL label value: ${JSON.stringify(s).slice(0, 80)}`);
  return JSON.stringify(s);
}

export function soakSeconds(r: Pick<RolloutConfig, 'soak'>): number {
  return r.soak === '0s' ? 0 : parseDuration(r.soak)! / 1000;
}

/**
 * Seconds each host of `ring` has run `revision` healthy, per host: what the recording rule
 * `nixos_desync:rollout_healthy_seconds` records for every ring and revision (alerts/).
 */
export function healthySecondsExpr(ring: number, revision: string): string {
  return `((time() - nixos_desync_rollout_healthy_since_timestamp_seconds{revision=${promqlString(revision)}})` +
    ` * on (job, instance) group_left (ring) nixos_desync_rollout_info{ring=${promqlString(String(ring))}}` +
    ' unless on (job, instance) (nixos_desync_system_unverified == 1))';
}

/** The one query of a run: ring r−1's hosts and soak (r > 0), and the fleet's rejections of `revision`. */
export function rolloutQuery(r: Pick<RolloutConfig, 'ring' | 'soak'>, revision: string): string {
  const rejected = `label_replace(nixos_desync_rejected_candidate_info{source="nixpkgs", revision=${promqlString(revision)}}, "rollout", "rejected", "", "")`;
  if (r.ring === 0) return rejected;
  const up = r.ring - 1;
  const h = healthySecondsExpr(up, revision);
  const tag = (expr: string, what: string): string => `label_replace(${expr}, "rollout", "${what}", "", "")`;
  return [
    tag(`count(nixos_desync_rollout_info{ring=${promqlString(String(up))}})`, 'upstream'),
    tag(`count(${h})`, 'running'),
    tag(`count(${h} >= ${soakSeconds(r)})`, 'qualified'),
    tag(`max(${h})`, 'longest'),
    rejected,
  ].join('\nor ');
}

export interface Rejection {
  instance: string;
  job: string;
}

export type FleetVerdict =
  | { kind: 'adopt'; message: string; rejectedBy: Rejection[] }
  | { kind: 'hold'; reason: HoldReason; message: string; rejectedBy: Rejection[] }
  | { kind: 'rejected'; message: string; rejectedBy: Rejection[] };

/** What the answer of `rolloutQuery` means for this host. */
export function interpretAnswer(r: Pick<RolloutConfig, 'ring' | 'soak' | 'minHosts'>, revision: string, samples: Sample[]): FleetVerdict {
  const one = (what: string): number => samples.find((s) => s.labels.rollout === what)?.value ?? 0;
  const rejectedBy = samples
    .filter((s) => s.labels.rollout === 'rejected')
    .map((s) => ({ instance: s.labels.instance ?? '?', job: s.labels.job ?? '?' }))
    .sort((a, b) => a.instance.localeCompare(b.instance) || a.job.localeCompare(b.job));
  if (rejectedBy.length > 0) {
    const names = rejectedBy.map((x) => `${x.instance} (job ${x.job})`).join(', ');
    return { kind: 'rejected', rejectedBy, message: `candidate ${revision} was rejected by ${names}: a rollback there found it unhealthy` };
  }
  if (r.ring === 0) return { kind: 'adopt', rejectedBy, message: `ring 0: no host of the fleet rejected ${revision}` };
  const up = r.ring - 1;
  const upstream = one('upstream');
  const running = one('running');
  const qualified = one('qualified');
  const longest = one('longest');
  const need = `${r.minHosts} host${r.minHosts === 1 ? '' : 's'} of ring ${up} healthy on ${revision} for ${r.soak}`;
  if (upstream === 0) {
    return { kind: 'hold', reason: 'no_data', rejectedBy, message: `Prometheus knows no host of ring ${up} (no nixos_desync_rollout_info{ring="${up}"}): waiting for ${need}` };
  }
  if (qualified >= r.minHosts) {
    return { kind: 'adopt', rejectedBy, message: `ring ${up} qualified ${revision}: ${qualified} of ${upstream} hosts ran it healthy for ${r.soak} or longer (${r.minHosts} needed)` };
  }
  const progress = running === 0
    ? `none of the ${upstream} hosts of ring ${up} runs it healthy yet`
    : `${running} of the ${upstream} hosts of ring ${up} run it healthy, the longest for ${formatSeconds(longest)}; ${qualified} for ${r.soak} or longer`;
  return { kind: 'hold', reason: 'soak', rejectedBy, message: `waiting for ${need}: ${progress}` };
}
