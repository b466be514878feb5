#!/usr/bin/env node
// Benchmark helper: a `system.activate` that switches to the system `system.build` just built
// (the fake nixos-rebuild's <host>/work/result) instead of evaluating the configuration again
// as `nixos-rebuild switch` does. On a real host the same idea is
//   ["/bin/sh", "-c", "nix-env -p /nix/var/nix/profiles/system --set \"$(readlink -f RESULT)\" && RESULT/bin/switch-to-configuration switch"]
// Usage: activate-built.mjs --host DIR
import { execFileSync } from 'node:child_process';
import { existsSync, realpathSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

const i = process.argv.indexOf('--host');
const host = i > 0 ? process.argv[i + 1] : undefined;
if (!host) {
  process.stderr.write('usage: activate-built.mjs --host DIR\n');
  process.exit(64);
}
const out = realpathSync(join(host, 'work', 'result'));
execFileSync('nix-env', ['-p', join(host, 'profiles', 'system'), '--set', out], { stdio: 'inherit' });
const link = (target, path) => {
  const tmp = `${path}.tmp-${process.pid}`;
  symlinkSync(target, tmp);
  renameSync(tmp, path);
};
link(out, join(host, 'run', 'current-system'));
if (!existsSync(join(host, 'run', 'booted-system'))) link(out, join(host, 'run', 'booted-system'));
