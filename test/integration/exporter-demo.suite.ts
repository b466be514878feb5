// End to end on the demo host with real Nix: `upgrade` runs, then the exporter shows every
// contract metric with the values `status --json` reports, live changes included.
// Imported by real-nix.test.ts (all store-touching tests share one file; see there).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { collectStatus } from '../../src/cli/status.js';
import { loadConfig } from '../../src/config/load.js';
import { createDemoHost, type DemoHost } from '../../src/demo/host.js';
import { requireTools } from '../helpers/tools.js';
import { METRIC_NAMES } from '../alerts/metric-names.js';
import { sample, startTestExporter, waitFor, type StartedExporter } from '../fixtures/exporter/start.js';

const io = { stdout: () => undefined, stderr: () => undefined, env: { ...process.env, NIX_CONFIG: process.env.NIX_CONFIG ?? 'sandbox = false\nsubstituters =' } };

export function defineExporterDemoSuite(): void {
describe.skipIf(!requireTools('nix-build', 'promtool'))('demo host: upgrade, then serve', () => {
  let dir: string;
  let host: DemoHost;
  let exp: StartedExporter;

  beforeAll(async () => {
    process.env.NIX_CONFIG ??= io.env.NIX_CONFIG;
    dir = await mkdtemp(join(tmpdir(), 'nixos-desync-demo-exporter-'));
    host = await createDemoHost(dir, {
      revisions: [{ label: 'rev1' }, { label: 'rev2', broken: ['matrix-synapse'] }],
      desyncs: { synapse: { requireBuilds: ['matrix-synapse'], maxLagRebuilds: 3, maxBehind: '14d' } },
      systemPackages: { synapse: 'matrix-synapse' },
    });
    expect(await main(['upgrade', '--config', host.configPath], io)).toBe(0);
    exp = await startTestExporter(await loadConfig(host.configPath));
  });
  afterAll(async () => {
    await exp?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('agrees with status and passes promtool, then follows a second run live', async () => {
    const scrape = async (): Promise<string> => (await fetch(`${exp.url}metrics`)).text();
    let text = await scrape();
    for (const name of METRIC_NAMES) {
      if (name === 'nixos_desync_last_run_stage_duration_seconds' || name === 'nixos_desync_max_lag_rebuilds') continue;
      expect(text, name).toMatch(new RegExp(`^${name}[{ ]`, 'm'));
    }
    const status = await collectStatus(await loadConfig(host.configPath));
    expect(sample(text, 'nixos_desync_lag_rebuilds{desync="synapse"}')).toBe(status.desyncs[0]!.lagRebuilds);
    expect(sample(text, 'nixos_desync_system_generation')).toBe(status.system.generation);
    expect(sample(text, 'nixos_desync_runs_total{result="success"}')).toBe(1);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.stdout + r.stderr).toBe('');

    await host.useRevision('rev2');
    expect(await main(['upgrade', '--config', host.configPath], io)).toBe(0);
    ({ value: text } = await waitFor(scrape, (t) => sample(t, 'nixos_desync_runs_total{result="success"}') === 2, 2000));
    await exp.model.settled();
    text = await scrape();
    expect(sample(text, 'nixos_desync_lag_rebuilds{desync="synapse"}')).toBe(1);
    expect(sample(text, 'nixos_desync_in_sync{desync="synapse"}')).toBe(0);
    expect(sample(text, 'nixos_desync_attempts_total{desync="synapse",result="failed"}')).toBe(1);
    expect(sample(text, 'nixos_desync_system_generation')).toBe(2);
    expect(sample(text, 'nixos_desync_system_generations')).toBe(2);
    expect(sample(text, 'nixos_desync_system_activation_pending')).toBe(0);
    expect(sample(text, 'nixos_desync_run_in_progress')).toBe(0);
  });
});
}
