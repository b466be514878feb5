// The proposal's state files (exporter.prDesyncDir) get the same alerts as the loop's desyncs:
// the exporter's live /metrics output is fed to the shipped rules with promtool, and
// NixosDesyncLagging / NixosDesyncMaxAgeBreached fire for them.
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { requireTools } from '../helpers/tools.js';
import { startTestExporter, type StartedExporter } from '../fixtures/exporter/start.js';

const RULES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../alerts/nixos-desync.rules.yml');
const RUNBOOK = 'https://nixos-desync.invalid/docs/runbooks.md';

/** `name{labels} value` lines of an exposition → promtool input series (constant for an hour). */
function inputSeries(text: string): Array<{ series: string; values: string }> {
  const out: Array<{ series: string; values: string }> = [];
  for (const line of text.split('\n')) {
    const m = /^(nixos_desync_[a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) continue;
    const labels = [m[2], 'job="nixos-desync"', 'instance="pr-host:9793"'].filter(Boolean).join(',');
    out.push({ series: `${m[1]}{${labels}}`, values: `${Number(m[3])}x60` });
  }
  return out;
}

describe.skipIf(!requireTools('promtool'))("proposal-format desyncs get the loop's alerts (live exposition → promtool)", () => {
  let dir: string;
  let exp: StartedExporter;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nixos-desync-pr-alerts-'));
    const pr = join(dir, 'desyncs');
    await mkdir(pr);
    // The proposal's format: { desyncAge = N; path = ...; }. Budget (maxDesyncAge) 8.
    await writeFile(join(pr, 'synapse.nix'), '{ desyncAge = 5; path = /nix/store/5b5q4dqwz6mbd4w5fn2kq9rl2b7l4s1f-nixpkgs; }\n');
    await writeFile(join(pr, 'hass.nix'), '{ desyncAge = 9; path = /nix/store/6c6q4dqwz6mbd4w5fn2kq9rl2b7l4s1g-nixpkgs; }\n');
    await writeFile(join(pr, 'hm.nix'), '{ desyncAge = 0; path = /nix/store/4a4q4dqwz6mbd4w5fn2kq9rl2b7l4s1e-source; }\n');
    const config = parseConfig({
      stateDir: join(dir, 'state'), profilesDir: join(dir, 'profiles'), runDir: join(dir, 'run'),
      exporter: { listenAddress: '127.0.0.1:0', prDesyncDir: pr, prMaxDesyncAge: 8 },
    });
    exp = await startTestExporter(config);
  });
  afterAll(async () => {
    await exp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('NixosDesyncLagging fires at half the budget and NixosDesyncMaxAgeBreached at the budget, with the same labels as for the loop', async () => {
    const text = await exp.exporter.metrics();
    const labels = (desync: string, extra: Record<string, string> = {}): Record<string, string> => ({ job: 'nixos-desync', instance: 'pr-host:9793', desync, ...extra });
    const test = {
      rule_files: [RULES],
      evaluation_interval: '1m',
      tests: [{
        interval: '1m',
        input_series: inputSeries(text),
        alert_rule_test: [
          { eval_time: '10m', alertname: 'NixosDesyncLagging', exp_alerts: [] }, // for: 15m
          {
            eval_time: '20m', alertname: 'NixosDesyncLagging', exp_alerts: [{
              exp_labels: labels('synapse', { severity: 'warning', budget: 'rebuilds' }),
              exp_annotations: {
                summary: 'Desync synapse on pr-host:9793 has used 62.5% of its rebuilds budget',
                description: 'Desync synapse on pr-host:9793 keeps failing its gate and stays on its pinned nixpkgs revision: it has used 62.5% of its rebuilds budget. When the budget is used up, its next failed gate is a breach (NixosDesyncMaxAgeBreached).',
                runbook_url: `${RUNBOOK}#nixosdesynclagging`,
              },
            }],
          },
          {
            eval_time: '20m', alertname: 'NixosDesyncMaxAgeBreached', exp_alerts: [{
              exp_labels: labels('hass', { severity: 'critical' }),
              exp_annotations: {
                summary: 'Desync hass on pr-host:9793 breached its budget',
                description: 'Desync hass on pr-host:9793 failed its gate after using up its budget, so it is still pinned to an old nixpkgs revision and misses security fixes. Lag: 9 rebuilds (budget 8).',
                runbook_url: `${RUNBOOK}#nixosdesyncmaxagebreached`,
              },
            }],
          },
        ],
      }],
    };
    const file = join(dir, 'pr-alerts.test.yml');
    await writeFile(file, stringify(test));
    const r = spawnSync('promtool', ['test', 'rules', file], { encoding: 'utf8', timeout: 30_000 });
    expect(r.status, `${r.stdout}${r.stderr}`).toBe(0);
    // Each desync is one series per metric: nothing doubled by a second label set.
    expect(text.match(/^nixos_desync_lag_rebuilds\{/gm)).toHaveLength(3);
  });
});
