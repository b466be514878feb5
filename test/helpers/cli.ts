// Runs the built CLI (dist/) as a child process, as users and systemd run it.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

export const CLI = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

/** Offline Nix settings for tests: no sandbox, no binary cache lookups. */
export const NIX_ENV = { NIX_CONFIG: 'sandbox = false\nsubstituters =' } as const;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * PATH for a CLI run against a demo host (`--config <host>/config.json`): the host's stand-in
 * systemctl (<host>/bin) comes first, as the real one would be found on a NixOS host.
 */
function hostPath(args: string[], env: NodeJS.ProcessEnv): string | undefined {
  const i = args.indexOf('--config');
  const bin = i >= 0 && args[i + 1] ? join(dirname(args[i + 1]!), 'bin') : undefined;
  const path = env.PATH ?? process.env.PATH ?? '/usr/bin:/bin';
  return bin && existsSync(join(bin, 'systemctl')) ? `${bin}:${path}` : env.PATH;
}

/** `wrap`: argv the CLI runs under (e.g. `unshare … --`), the node + CLI argv appended to it. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}, wrap: string[] = []): { child: ChildProcess; done: Promise<CliResult> } {
  const path = hostPath(args, env);
  const argv = [...wrap, process.execPath, CLI, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...NIX_ENV, ...env, ...(path ? { PATH: path } : {}) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  return { child, done };
}

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, wrap: string[] = []): Promise<CliResult> {
  return startCli(args, env, wrap).done;
}

/** Polls `cond` every 25 ms until it holds (true) or `ms` have passed (false): waiting on a CLI's side effects. */
export async function waitUntil(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

/** `nix-store --gc --print-roots`: every GC root of the machine, so its size depends on the machine (hence the large buffer). */
export function gcRoots(): string {
  return execFileSync('nix-store', ['--gc', '--print-roots'], { env: { ...process.env, ...NIX_ENV }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28 });
}
