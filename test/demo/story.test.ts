// The demo's story (src/demo/story.ts) with real Nix, as `./scripts/demo.sh` runs it: every run's
// exit code, what it activated, what the running system was built from and what `status` says —
// in particular run 6 (matrix-synapse fails once activated: a runtime hold-back that still
// upgrades the host) and run 7 (a failure no desync claims: the revision is rejected whole) —
// and what the exporter serves of it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { collectStatus } from '../../src/cli/status.js';
import { loadConfig } from '../../src/config/load.js';
import { createDemoHost, type DemoHost } from '../../src/demo/host.js';
import { demoHostOptions, runStory, STORY } from '../../src/demo/story.js';
import type { StatusDoc } from '../../src/views/status.js';
import { NIX_ENV } from '../helpers/cli.js';
import { requireTools } from '../helpers/tools.js';
import { sample, startTestExporter, waitFor, type StartedExporter } from '../fixtures/exporter/start.js';

interface RunSeen {
  code: number;
  output: string;
  /** switch-to-configuration calls of this run ("test" or "boot"). */
  activations: string[];
  /** Packages of the running system after the run (name-revision). */
  running: string[];
  status: StatusDoc;
  /** The exporter's /metrics once it has seen this run. */
  metrics: string;
}

/** Runs counted by the exporter (every result). */
function runsTotal(text: string): number {
  return text.split('\n').filter((l) => l.startsWith('nixos_desync_runs_total{')).reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

describe.skipIf(!requireTools('nix-build', 'nix-instantiate', 'nix-store', 'nix-env'))('the demo story with real Nix', () => {
  let dir: string;
  let host: DemoHost;
  let exp: StartedExporter | undefined;
  const runs: RunSeen[] = [];

  beforeAll(async () => {
    process.env.NIX_CONFIG ??= NIX_ENV.NIX_CONFIG;
    dir = await mkdtemp(join(tmpdir(), 'nixos-desync-demo-story-'));
    host = await createDemoHost(dir, demoHostOptions());
    let output = '';
    let seenActivations = 0;
    const io = { stdout: (s: string) => void (output += s), stderr: (s: string) => void (output += s), env: { ...process.env, ...NIX_ENV, PATH: host.path } };
    const lines = async (file: string): Promise<string[]> => (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');
    await runStory(host, io, async (i, code) => {
      // The exporter, as `serve` on the demo host, from the first run's state on.
      exp ??= await startTestExporter(await loadConfig(host.configPath));
      const scrape = async (): Promise<string> => (await fetch(`${exp!.url}metrics`)).text();
      const { value: metrics } = await waitFor(scrape, (t) => runsTotal(t) === i + 1, 5000);
      const all = await lines(join(host.runDir, 'activations'));
      const packages = await lines(join(host.runDir, 'current-system', 'packages'));
      runs.push({
        code,
        output,
        activations: all.slice(seenActivations).map((l) => l.split(' ')[0]!),
        running: packages.map((p) => p.replace(/^\/nix\/store\/[a-z0-9]{32}-/, '')),
        status: await collectStatus(await loadConfig(host.configPath)),
        metrics,
      });
      seenActivations = all.length;
      output = '';
    });
  }, 240_000);
  afterAll(async () => {
    await exp?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const desync = (r: RunSeen, name: string) => r.status.desyncs.find((d) => d.name === name)!;

  it('runs the story through: every run ends as its line says', () => {
    expect(runs.length).toBe(STORY.length);
    expect(runs.map((r) => r.code)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 0]);
    expect(runs.map((r) => r.status.lastRun?.result)).toEqual(['success', 'success', 'success', 'success', 'breach', 'breach', 'rolled_back', 'failure', 'success']);
  });

  it('run 6: matrix-synapse.service fails once activated — synapse is held back on its pin and the host is upgraded to rev6', () => {
    const r = runs[5]!;
    expect(r.output).toMatch(/holdback\s+synapse: held back at its pin — unit matrix-synapse\.service \(failed after the activation\)/);
    expect(r.output).toMatch(/holdback\s+healthy with synapse held back: the host is upgraded/);
    // The candidate's system, the rollback, the system with synapse held back, its boot entry.
    expect(r.activations).toEqual(['test', 'test', 'test', 'boot']);
    expect(r.running).toEqual(expect.arrayContaining(['hello-rev6', 'home-manager-rev6', 'matrix-synapse-rev3']));
    const s = desync(r, 'synapse');
    expect(s.heldBack).toMatchObject({ stage: 'health', reason: expect.stringContaining('matrix-synapse.service') });
    expect(s.heldBack!.retryAt).not.toBeNull();
    expect(s.runtimeFailures).toBe(1);
    // Held back at runtime counts like a failed gate: lag 3 over a budget of 1 is still a breach.
    expect(s).toMatchObject({ lagRebuilds: 3, breached: true });
    expect(desync(r, 'home-manager')).toMatchObject({ lagRebuilds: 0, heldBack: null });
    expect(r.status.system.generation).toBe(runs[4]!.status.system.generation! + 1);
    // What the host dashboard and the alerts read.
    expect(sample(r.metrics, 'nixos_desync_desync_held_back{desync="synapse",stage="health"}')).toBe(1);
    expect(sample(r.metrics, 'nixos_desync_desync_runtime_failures_total{desync="synapse"}')).toBe(1);
    expect(sample(r.metrics, 'nixos_desync_lag_rebuilds{desync="synapse"}')).toBe(3);
    expect(sample(r.metrics, 'nixos_desync_breached{desync="synapse"}')).toBe(1);
    expect(sample(r.metrics, 'nixos_desync_desync_held_back{desync="home-manager",stage="none"}')).toBe(0);
    // Before, synapse was held back by its own gate.
    expect(sample(runs[4]!.metrics, 'nixos_desync_desync_held_back{desync="synapse",stage="gate"}')).toBe(1);
  });

  it('run 7: hello.service fails and no desync claims it — the revision is rolled back and rejected whole; synapse stays held until retryAfter', () => {
    const r = runs[6]!;
    expect(r.output).toMatch(/holdback\s+not applicable \(no desync that moved claims the failures\): the candidate is rolled back whole/);
    expect(desync(r, 'synapse').lastAttempt?.error).toMatch(/^held back at runtime until \S+ \(health\.retryAfter\): health: unit matrix-synapse\.service/);
    expect(r.activations).toEqual(['test', 'test']);
    expect(r.running).toEqual(runs[5]!.running);
    expect(r.status.system.generation).toBe(runs[5]!.status.system.generation);
    expect(desync(r, 'synapse').heldBack).toMatchObject({ stage: 'health' });
    // Run 8: the rejected revision is skipped without activating anything.
    expect(runs[7]!.activations).toEqual([]);
    expect(runs[7]!.output).toMatch(/was rejected: .* it is skipped/);
  });

  it('run 9: after retryAfter synapse is tried again at rev8 and follows; everything is in sync', () => {
    const r = runs[8]!;
    expect(r.activations).toEqual(['test', 'boot']);
    expect(r.running).toEqual(expect.arrayContaining(['hello-rev8', 'home-manager-rev8', 'matrix-synapse-rev8']));
    expect(desync(r, 'synapse')).toMatchObject({ lagRebuilds: 0, breached: false, heldBack: null, runtimeFailures: 1 });
    expect(desync(r, 'home-manager')).toMatchObject({ lagRebuilds: 0, heldBack: null });
    expect(sample(r.metrics, 'nixos_desync_desync_held_back{desync="synapse",stage="none"}')).toBe(0);
    expect(sample(r.metrics, 'nixos_desync_desync_held_back{desync="synapse",stage="health"}')).toBeUndefined();
  });
});
