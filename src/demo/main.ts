// The built-in demo host: runs the loop across fake nixpkgs revisions with real Nix so a
// newcomer sees a desync lag, recover, breach and be held back at runtime (src/demo/story.ts),
// then leaves the state for `serve`.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execaSync } from 'execa';
import { createDemoHost } from './host.js';
import { demoHostOptions, runStory } from './story.js';
import { rebootExplainer, runItYourself } from './explain.js';

const out = (s: string): void => void process.stdout.write(s);
const io = { stdout: out, stderr: (s: string) => void process.stderr.write(s), env: process.env };

if (execaSync('nix-build', ['--version'], { stdio: 'ignore', reject: false }).exitCode !== 0) {
  process.stderr.write('The demo needs real Nix: install it with `apt-get install -y nix-bin` (Debian) and run again.\n');
  process.exit(1);
}
// Offline-friendly defaults for a machine without a daemon or binary cache access.
process.env.NIX_CONFIG ??= 'sandbox = false\nsubstituters =';

const dir = process.argv[2] ?? (await mkdtemp(join(tmpdir(), 'nixos-desync-demo-')));
const host = await createDemoHost(dir, demoHostOptions());
// The host's stand-in systemctl (it reports the units the fake activation failed) first on
// PATH, as the real one on NixOS: the health gate asks it for failed units.
process.env.PATH = host.path;
out(`nixos-desync demo host in ${dir}\n`);
// A note after the first status that says REBOOT REQUIRED (status prints in one piece).
const explainReboot = rebootExplainer(out);
await runStory(host, { ...io, stdout: (s: string) => { out(s); explainReboot(s); } });
out(`\nThe demo state is in ${dir}. Look at it with:\n` +
  `  npx nixos-desync status --config ${host.configPath} --json\n` +
  `  npx nixos-desync serve --config ${host.configPath}     # then open http://127.0.0.1:9793/\n` +
  `  nix-instantiate --eval --strict --json ${host.stateDir}/pins/home-manager.nix\n\n` +
  runItYourself(host, process.env.NIX_CONFIG));
