// The catalog, the contract list and docs/metrics.md stay in step.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CATALOG } from '../../src/metrics/catalog.js';
import { ASSUMED_LABELS, METRIC_NAMES } from '../alerts/metric-names.js';

const docs = readFileSync(new URL('../../docs/metrics.md', import.meta.url), 'utf8');

describe('metric catalog', () => {
  it('contains every contract metric with the labels the rules and dashboards assume', () => {
    for (const name of METRIC_NAMES) {
      const def = (CATALOG as Record<string, { labels: readonly string[] }>)[name];
      expect(def, name).toBeDefined();
      for (const label of Object.keys(ASSUMED_LABELS[name] ?? {})) expect(def!.labels, `${name} label ${label}`).toContain(label);
    }
  });

  it('documents every metric in docs/metrics.md', () => {
    for (const name of Object.keys(CATALOG)) expect(docs, name).toContain(`\`${name}\``);
  });

  it('uses counter names ending in _total only for counters', () => {
    for (const [name, def] of Object.entries(CATALOG)) expect(name.endsWith('_total'), name).toBe(def.type === 'counter');
  });

  // #11.15: the loop stores the finish time of a successful run (runs.lastSuccessAt = finishedAt).
  it('documents last_successful_run_timestamp_seconds as the finish time of the run, as the loop records it', () => {
    expect(CATALOG.nixos_desync_last_successful_run_timestamp_seconds.help).toMatch(/^Finish time/);
    const row = docs.split('\n').find((l) => l.startsWith('| `nixos_desync_last_successful_run_timestamp_seconds`'))!;
    expect(row).toMatch(/finished/);
    expect(row).not.toMatch(/Start of/);
  });
});
