// A real Prometheus (Debian's 2.42) or Alertmanager for tests: started from an argv array on a
// free loopback port with its own data dir, waited for on /-/ready, stopped by its PID (SIGTERM,
// then SIGKILL).
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import path from 'node:path';

const LOG_LIMIT = 64 * 1024;

export interface Proc {
  name: string;
  child: ChildProcess;
  log(): string;
  exited: Promise<void>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  stop(): Promise<void>;
}

export function startProc(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const chunks: string[] = [];
  let size = 0;
  const keep = (chunk: Buffer): void => {
    chunks.push(chunk.toString('utf8'));
    size += chunk.length;
    while (size > LOG_LIMIT && chunks.length > 1) size -= Buffer.byteLength(chunks.shift()!);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const p: Proc = {
    name,
    child,
    log: () => chunks.join(''),
    exit: null,
    exited: Promise.resolve(),
    async stop() {
      if (p.exit || child.pid === undefined) return;
      try {
        process.kill(child.pid, 'SIGTERM');
      } catch {
        return; // already gone
      }
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 5_000).unref());
      if ((await Promise.race([p.exited.then(() => 'exited' as const), timer])) === 'timeout') {
        try {
          process.kill(child.pid, 'SIGKILL');
        } catch {
          /* exited meanwhile */
        }
        await p.exited;
      }
    },
  };
  p.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      p.exit = { code, signal };
      resolve();
    });
    child.once('error', (err) => {
      keep(Buffer.from(`spawn error: ${err.message}\n`));
      p.exit = { code: null, signal: null };
      resolve();
    });
  });
  return p;
}

/** A loopback port that was free a moment ago (callers retry when it is taken meanwhile). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A Prometheus-project server (Prometheus, Alertmanager) listening and ready. */
export interface StartedServer {
  proc: Proc;
  /** Base URL, with the route prefix when one was given. */
  url: string;
  port: number;
}

/**
 * Starts `cmd` with `argsFor(port, url, attempt)` on a free loopback port and waits for its
 * `/-/ready` (Prometheus and Alertmanager both serve it); another try on a port race.
 */
export async function startReady(
  name: string,
  cmd: string,
  argsFor: (port: number, url: string, attempt: number) => string[],
  opts: { prefix?: string; timeoutMs?: number } = {},
): Promise<StartedServer> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}${opts.prefix ?? ''}`;
    const proc = startProc(name, cmd, argsFor(port, url, attempt));
    const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
    let ready = false;
    while (!ready && !proc.exit && Date.now() < deadline) {
      try {
        ready = (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) })).ok;
      } catch {
        /* not listening yet */
      }
      if (!ready) await sleep(50);
    }
    if (ready) return { proc, url, port };
    const taken = /address already in use/i.test(proc.log());
    await proc.stop();
    if (!taken || attempt >= 3) throw new Error(`${name} did not become ready on ${url}:\n${proc.log().slice(-4000)}`);
  }
}

export interface StartedPrometheus extends StartedServer {
  configFile: string;
  /** Rewrites the config and reloads it (SIGHUP), e.g. to add scrape targets. */
  reload(config: string): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts Prometheus with `config` (prometheus.yml text) in `dir`. `prefix` (e.g. "/prom") serves
 * everything under that path, as behind a reverse proxy.
 */
export async function startPrometheus(dir: string, config: string, opts: { prefix?: string; timeoutMs?: number } = {}): Promise<StartedPrometheus> {
  const configFile = path.join(dir, 'prometheus.yml');
  await writeFile(configFile, config);
  const { proc, url, port } = await startReady('prometheus', 'prometheus', (p, u, attempt) => [
    `--config.file=${configFile}`,
    `--storage.tsdb.path=${path.join(dir, `data-${attempt}`)}`,
    `--web.listen-address=127.0.0.1:${p}`,
    ...(opts.prefix ? [`--web.external-url=${u}`] : []),
    '--log.level=warn',
  ], opts);
  return {
    proc, url, port, configFile,
    async reload(text: string) {
      await writeFile(configFile, text);
      process.kill(proc.child.pid!, 'SIGHUP');
    },
    stop: () => proc.stop(),
  };
}
