// `./scripts/demo.sh --flake`: the loop on a flake host (real Nix flakes, offline): a fake
// nixpkgs git repository whose commits are the revisions, and a host flake with two desync
// inputs whose flake.lock the loop rewrites (and commits) run by run. The system is activated
// as on a real host by default (switch-to-configuration test, health gate, then profile + boot
// entry), and a revision whose service fails once activated is rolled back.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../cli/main.js';
import { createFlakeHost, lockedRevs } from './fake-flake.js';
import { runItYourself } from './explain.js';

const out = (s: string): void => void process.stdout.write(s);
const io = { stdout: out, stderr: (s: string) => void process.stderr.write(s), env: process.env };
process.env.NIX_CONFIG ??= 'sandbox = false\nsubstituters =';

const dir = process.argv[2] ?? (await mkdtemp(join(tmpdir(), 'nixos-desync-flake-demo-')));
const host = await createFlakeHost(dir, {
  revisions: [
    { label: 'rev1' },
    { label: 'rev2', broken: ['home-manager'] },
    { label: 'rev3', broken: ['home-manager'] },
    { label: 'rev4' },
    { label: 'rev5', crashes: ['matrix-synapse'] },
  ],
  desyncs: {
    'home-manager': { requireBuilds: ['home-manager'], maxLagRebuilds: 14 },
    synapse: { requireBuilds: ['matrix-synapse', 'python3Packages.requests'] },
  },
  systemPackages: { 'home-manager': 'home-manager', synapse: 'matrix-synapse' },
  switchable: true,
});
// The default activation (system.activate "switch") and health gate, as on a real host.
await host.writeConfig({
  flake: { ...(host.config.flake as object), commitLockFile: true },
  system: { build: (host.config.system as { build: string[] }).build },
  health: { settle: '0s' },
});
// The stand-in systemctl first on PATH, as the real one on NixOS: the health gate asks it for failed units.
process.env.PATH = host.path;

const story: Array<[string, string]> = [
  ['rev1', 'the flake is locked at rev1 and everything builds: nothing moves'],
  ['rev2', 'nixos-unstable moves; home-manager breaks: its input stays on rev1 while nixpkgs and nixpkgs-synapse move'],
  ['rev3', 'still broken: lag 2, the rest of the system keeps getting fixes'],
  ['rev4', 'home-manager is fixed: its input catches up (lag 0)'],
  ['rev5', 'everything builds, but matrix-synapse.service fails once the new system is activated: the health gate fails, the loop ROLLS BACK and flake.lock stays as it was (exit 1)'],
];
out(`nixos-desync flake demo in ${dir}\nhost flake: ${host.flakeDir} (inputs nixpkgs, nixpkgs-home-manager, nixpkgs-synapse)\n` +
  'activation: switch-to-configuration test, the health gate, then the profile and boot entry (system.activate "switch")\n');
const label = new Map<string, string>();
const activations = async (): Promise<string[]> =>
  (await readFile(join(host.runDir, 'activations'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
for (const [i, [rev, what]] of story.entries()) {
  if (i > 0) await host.useRevision(rev);
  label.set(host.revOf(rev), rev);
  out(`\n=== run ${i + 1}: nixpkgs repository at ${rev} — ${what}\n$ nixos-desync upgrade --config ${host.configPath}\n`);
  const before = (await activations()).length;
  const code = await main(['upgrade', '--config', host.configPath], io);
  out(`(exit code ${code})\n\nflake.lock now locks:\n`);
  for (const [input, r] of Object.entries(await lockedRevs(host.lockFile))) out(`  ${input.padEnd(22)} ${label.get(r ?? '') ?? r}\n`);
  const steps = (await activations()).slice(before).map((l) => l.split(' ')[0]);
  out(`switch-to-configuration this run: ${steps.length ? steps.join(', ') : 'not run (nothing new to activate)'}\n`);
  out(`system packages: ${(await readFile(join(host.profilesDir, 'system', 'packages'), 'utf8')).split('\n').filter(Boolean).map((p) => p.replace(/^\/nix\/store\/[0-9a-z]{32}-/, '')).join(', ')}\n`);
}
out(`\n$ git -C ${host.flakeDir} log --format='%h %s%n%b'\n${host.git('log', '--format=%h %s%n%b')}\n`);
out(`\nThe build reads only the flake (pure evaluation): nix build ${host.flakeDir}#nixosConfigurations.${host.hostName}.config.system.build.toplevel\n\n` +
  runItYourself(host, process.env.NIX_CONFIG));
