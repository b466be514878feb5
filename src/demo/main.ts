// The built-in demo host: runs the loop across fake nixpkgs revisions with real Nix so a
// newcomer sees a desync lag, recover and breach, then leaves the state for `serve`.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execaSync } from 'execa';
import { main } from '../cli/main.js';
import { createDemoHost } from './host.js';

const out = (s: string): void => void process.stdout.write(s);
const io = { stdout: out, stderr: (s: string) => void process.stderr.write(s), env: process.env };

if (execaSync('nix-build', ['--version'], { stdio: 'ignore', reject: false }).exitCode !== 0) {
  process.stderr.write('The demo needs real Nix: install it with `apt-get install -y nix-bin` (Debian) and run again.\n');
  process.exit(1);
}
// Offline-friendly defaults for a machine without a daemon or binary cache access.
process.env.NIX_CONFIG ??= 'sandbox = false\nsubstituters =';

const dir = process.argv[2] ?? (await mkdtemp(join(tmpdir(), 'nixos-desync-demo-')));
const host = await createDemoHost(dir, {
  revisions: [
    { label: 'rev1' },
    { label: 'rev2', broken: ['home-manager'] },
    { label: 'rev3', broken: ['home-manager'] },
    { label: 'rev4', broken: ['matrix-synapse'] },
    { label: 'rev5', broken: ['matrix-synapse'] },
    { label: 'rev6', crashes: ['matrix-synapse'] },
    { label: 'rev7' },
  ],
  desyncs: {
    'home-manager': { requireBuilds: ['home-manager'], maxLagRebuilds: 14, maxBehind: '14d' },
    synapse: {
      requireBuilds: ['matrix-synapse', 'python3Packages.requests'],
      checks: [['/bin/sh', '-c', 'test -n "$NIXOS_DESYNC_OUT_PATHS"']],
      maxLagRebuilds: 1,
    },
  },
  systemPackages: { 'home-manager': 'home-manager', synapse: 'matrix-synapse' },
  extraConfig: { onBreach: 'continue' },
});

const story: Array<[string, string]> = [
  ['rev1', 'everything builds: both desyncs follow the channel'],
  ['rev2', 'home-manager breaks on the channel: its desync stays on rev1 while the system upgrades'],
  ['rev3', 'still broken: lag 2 of 14, the rest of the system keeps getting fixes'],
  ['rev4', 'home-manager is fixed (back in sync); matrix-synapse breaks (budget: 1 rebuild)'],
  ['rev5', 'matrix-synapse still broken at its budget: a BREACH (onBreach "continue": exit 1, system still upgraded)'],
  ['rev6', 'everything builds, but matrix-synapse.service fails once the new system is activated: the health gate fails and the loop ROLLS BACK by itself (exit 1)'],
  ['rev6', 'the channel has not moved: the rejected revision is skipped at once (exit 1) until it moves, or `upgrade --retry`'],
  ['rev7', 'the channel moves on: the new revision is healthy and goes live'],
];
// The host's stand-in systemctl (it reports the units the fake activation failed) first on
// PATH, as the real one on NixOS: the health gate asks it for failed units.
process.env.PATH = host.path;
out(`nixos-desync demo host in ${dir}\n`);
for (const [i, [rev, what]] of story.entries()) {
  await host.useRevision(rev);
  out(`\n=== run ${i + 1}: channel moves to ${rev} — ${what}\n`);
  out(`$ nixos-desync upgrade --config ${host.configPath}\n`);
  const code = await main(['upgrade', '--config', host.configPath], io);
  out(`(exit code ${code})\n\n$ nixos-desync status --config ${host.configPath}\n`);
  await main(['status', '--config', host.configPath], io);
  if (rev === 'rev6' || rev === 'rev7') {
    out(`\n$ nixos-desync generations --config ${host.configPath}\n`);
    await main(['generations', '--config', host.configPath], io);
  }
}
out(`\nThe demo state is in ${dir}. Look at it with:\n` +
  `  npx nixos-desync status --config ${host.configPath} --json\n` +
  `  npx nixos-desync serve --config ${host.configPath}     # then open http://127.0.0.1:9793/\n` +
  `  nix-instantiate --eval --strict --json ${host.stateDir}/pins/home-manager.nix\n`);
