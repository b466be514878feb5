// The demo's story: which fake nixpkgs revisions the channel moves through, the demo host's
// desyncs, and the runs with what each shows. main.ts prints it; test/demo/story.test.ts runs
// the same story with real Nix and checks every run's outcome.
import { main } from '../cli/main.js';
import { collectStatus } from '../cli/status.js';
import { loadConfig } from '../config/load.js';
import type { DemoHost, DemoHostOptions } from './host.js';

/** health.retryAfter on the demo host (24h by default): short, so the demo can wait for it. */
export const DEMO_RETRY_AFTER = '20s';

export function demoHostOptions(): DemoHostOptions {
  return {
    revisions: [
      { label: 'rev1' },
      { label: 'rev2', broken: ['home-manager'] },
      { label: 'rev3', broken: ['home-manager'] },
      { label: 'rev4', broken: ['matrix-synapse'] },
      { label: 'rev5', broken: ['matrix-synapse'] },
      { label: 'rev6', crashes: ['matrix-synapse'] },
      // hello comes from the main nixpkgs: its service is no desync's.
      { label: 'rev7', crashes: ['hello'] },
      { label: 'rev8' },
    ],
    desyncs: {
      'home-manager': { requireBuilds: ['home-manager'], maxLagRebuilds: 14, maxBehind: '14d' },
      synapse: {
        requireBuilds: ['matrix-synapse', 'python3Packages.requests'],
        checks: [['/bin/sh', '-c', 'test -n "$NIXOS_DESYNC_OUT_PATHS"']],
        maxLagRebuilds: 1,
        // What of the running system is synapse's: its failure holds back synapse, not the host.
        units: ['matrix-synapse.service'],
      },
    },
    systemPackages: { 'home-manager': 'home-manager', synapse: 'matrix-synapse' },
    extraConfig: { onBreach: 'continue', health: { settle: '0s', retryAfter: DEMO_RETRY_AFTER } },
  };
}

export interface StoryRun {
  rev: string;
  what: string;
  /** Also print `generations` after this run. */
  generations?: boolean;
  /** Wait first until the runtime hold-back's health.retryAfter has passed. */
  afterRetry?: boolean;
}

export const STORY: StoryRun[] = [
  { rev: 'rev1', what: 'everything builds: both desyncs follow the channel' },
  { rev: 'rev2', what: 'home-manager breaks on the channel: its desync stays on rev1 while the system upgrades' },
  { rev: 'rev3', what: 'still broken: lag 2 of 14, the rest of the system keeps getting fixes' },
  { rev: 'rev4', what: 'home-manager is fixed (back in sync); matrix-synapse breaks (budget: 1 rebuild)' },
  { rev: 'rev5', what: 'matrix-synapse still broken at its budget: a BREACH (onBreach "continue": exit 1, system still upgraded)' },
  {
    rev: 'rev6',
    what: 'everything builds, but matrix-synapse.service fails once the new system is activated. It is one of the synapse desync\'s `units`: the loop rolls back, HOLDS BACK synapse on its pin (a runtime hold-back), builds and activates again — the host is upgraded to rev6 (exit 1 only because synapse is still over its budget)',
    generations: true,
  },
  {
    rev: 'rev7',
    what: 'hello.service (from the main nixpkgs) fails once activated: no desync claims it, so the whole revision is ROLLED BACK and rejected (exit 1); synapse stays held back until health.retryAfter has passed',
    generations: true,
  },
  { rev: 'rev7', what: 'the channel has not moved: the rejected revision is skipped at once (exit 1) until it moves, or `upgrade --retry`' },
  {
    rev: 'rev8',
    what: 'the channel moves on and synapse\'s health.retryAfter has passed: synapse is tried again at rev8, runs, and follows the channel; everything is in sync (exit 0)',
    generations: true,
    afterRetry: true,
  },
];

export interface StoryIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

/** The moment the last runtime hold-back may be retried (its retryAt), or null. */
async function retryAt(host: DemoHost): Promise<number | null> {
  const doc = await collectStatus(await loadConfig(host.configPath));
  const at = doc.desyncs.map((d) => (d.heldBack?.stage === 'health' && d.heldBack.retryAt ? Date.parse(d.heldBack.retryAt) : 0));
  const latest = Math.max(0, ...at);
  return latest > 0 ? latest : null;
}

/** Runs the story on `host`, printing each run as a user would type it; `afterRun` sees each run's exit code. */
export async function runStory(host: DemoHost, io: StoryIo, afterRun?: (index: number, code: number) => Promise<void>): Promise<number[]> {
  const out = io.stdout;
  const codes: number[] = [];
  for (const [i, run] of STORY.entries()) {
    if (run.afterRetry) {
      const due = await retryAt(host);
      // The retry time is the hold-back run's start + retryAfter; a moment later it is due.
      if (due !== null && due >= Date.now()) {
        const ms = due - Date.now() + 1000;
        out(`\n(waiting ${Math.ceil(ms / 1000)}s for synapse's health.retryAfter: ${DEMO_RETRY_AFTER} on this demo host, 24h by default)\n`);
        await new Promise<void>((r) => setTimeout(r, ms));
      }
    }
    await host.useRevision(run.rev);
    out(`\n=== run ${i + 1}: channel moves to ${run.rev} — ${run.what}\n`);
    out(`$ nixos-desync upgrade --config ${host.configPath}\n`);
    const code = await main(['upgrade', '--config', host.configPath], io);
    codes.push(code);
    await afterRun?.(i, code);
    out(`(exit code ${code})\n\n$ nixos-desync status --config ${host.configPath}\n`);
    await main(['status', '--config', host.configPath], io);
    if (run.generations) {
      out(`\n$ nixos-desync generations --config ${host.configPath}\n`);
      await main(['generations', '--config', host.configPath], io);
    }
  }
  return codes;
}
