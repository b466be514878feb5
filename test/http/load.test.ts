// Load: 200 concurrent keep-alive scrapers against the exporter (its own process, loopback)
// for 10 s (the first 2 s are warm-up) while a writer rewrites state.json, swaps the `pins` symlink and adds/removes a
// system generation in a loop, so the watchers re-read all the while. Every response must be
// a complete, well-formed exposition; no errors at all (the in-flight cap is set above the
// client count, and 503s are counted to prove it); memory after the run stays within a bound
// of memory after warm-up. The figures are printed (and quoted in docs/security.md).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { buildFixtureHost, type FixtureHost } from '../fixtures/exporter/build.js';

const CLIENTS = 200;
const WARMUP_MS = 2_000;
const LOAD_MS = 10_000;
/**
 * Live heap after a full GC, end vs warm-up: a leak of 100 bytes per request over the ~4·10^4
 * requests here is 4 MiB. RSS is allowed more (V8 keeps freed pages, sockets' buffers), but a
 * leak of a body per request (~20 KiB) would blow through it hundreds of times over.
 */
const HEAP_GROWTH_BOUND = 4 * 1024 * 1024;
const RSS_GROWTH_BOUND = 64 * 1024 * 1024;
// Values as Prometheus parses them (Go's ParseFloat: NaN/Inf in any case; prom-client prints `Nan`).
const SAMPLE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? (?:[-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?|(?:nan|[-+]?inf))$/i;

let host: FixtureHost | undefined;
let child: ChildProcess | undefined;
afterAll(async () => {
  child?.kill('SIGKILL');
  await host?.cleanup();
});

/** The exporter's memory after a full GC (it answers SIGUSR2 with one JSON line). */
async function memoryOf(proc: ChildProcess, out: { text: string }): Promise<{ rss: number; heapUsed: number }> {
  const before = out.text.split('\n').length;
  proc.kill('SIGUSR2');
  for (;;) {
    const lines = out.text.split('\n');
    for (const l of lines.slice(before - 1)) if (l.startsWith('{"mem"') && l.endsWith('}')) return (JSON.parse(l) as { mem: { rss: number; heapUsed: number } }).mem;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Why a body is not a complete exposition, or null. */
function malformed(body: string): string | null {
  if (!body.endsWith('\n')) return 'no trailing newline';
  const lines = body.slice(0, -1).split('\n');
  const last = lines[lines.length - 1]!;
  if (!SAMPLE.test(last)) return `last line is not a sample: ${JSON.stringify(last.slice(0, 80))}`;
  if (!/^nixos_desync_build_info\{version="[^"]+"\} 1$/m.test(body)) return 'no nixos_desync_build_info';
  for (const l of lines) {
    if (l === '' || l.startsWith('# HELP ') || l.startsWith('# TYPE ')) continue;
    if (!SAMPLE.test(l)) return `bad line ${JSON.stringify(l.slice(0, 80))}`;
  }
  return null;
}

it(`${CLIENTS} concurrent scrapers for ${LOAD_MS / 1000} s with the watchers firing: every response complete, no errors, memory stable`, async () => {
  host = await buildFixtureHost();
  const h = host;
  const script = fileURLToPath(new URL('./load-exporter.mjs', import.meta.url));
  const proc = spawn(process.execPath, ['--expose-gc', script, JSON.stringify({ config: h.config, limits: { maxInFlight: 256 } })], { stdio: ['ignore', 'pipe', 'pipe'] });
  child = proc;
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)));
  const out = { text: '' };
  proc.stdout!.on('data', (d: Buffer) => void (out.text += d.toString()));
  while (!out.text.includes('\n')) {
    if (proc.exitCode !== null) throw new Error(`exporter exited ${proc.exitCode}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const url = new URL('metrics', out.text.split('\n')[0]!);

  // The writer: state.json (atomic rename, as the loop writes it), the pins symlink, a generation.
  const state = JSON.parse(await readFile(join(h.stateDir, 'state.json'), 'utf8')) as { desyncs: { insync: { attempts: { passed: number } } } };
  const pinsTarget = `sets/${JSON.parse(await readFile(join(h.stateDir, 'state.json'), 'utf8')).committed.setId}/pins`;
  let writing = true;
  let writes = 0;
  const writer = (async () => {
    while (writing) {
      writes += 1;
      state.desyncs.insync.attempts.passed = 1000 + writes;
      await writeFile(join(h.stateDir, 'state.json.tmp'), JSON.stringify(state));
      await rename(join(h.stateDir, 'state.json.tmp'), join(h.stateDir, 'state.json'));
      await symlink(pinsTarget, join(h.stateDir, 'pins.tmp'));
      await rename(join(h.stateDir, 'pins.tmp'), join(h.stateDir, 'pins'));
      const gen = join(h.profilesDir, 'system-4-link');
      if (writes % 2) await symlink(join(h.storeDir, 'sys3'), gen);
      else await rm(gen);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();

  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const t0 = Date.now();
  const end = t0 + LOAD_MS;
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  const errors: string[] = [];
  const badBodies: string[] = [];
  const seenPassed = new Set<number>();
  let warmMem = { rss: 0, heapUsed: 0 };
  const scrape = (): Promise<void> => new Promise((resolve) => {
    const s = performance.now();
    const req = request(url, { agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        latencies.push(performance.now() - s);
        statuses.set(res.statusCode!, (statuses.get(res.statusCode!) ?? 0) + 1);
        if (res.statusCode === 200) {
          const body = Buffer.concat(chunks).toString('utf8');
          const why = malformed(body);
          if (why && badBodies.length < 5) badBodies.push(why);
          const m = /^nixos_desync_attempts_total\{desync="insync",result="passed"\} (\d+)$/m.exec(body);
          if (m) seenPassed.add(Number(m[1]));
        }
        resolve();
      });
      res.on('error', (e) => (errors.push(`response: ${e.message}`), resolve()));
    });
    req.on('error', (e) => (errors.push(`request: ${e.message}`), resolve()));
    req.end();
  });
  const warm = new Promise<void>((r) => setTimeout(() => void memoryOf(proc, out).then((m) => ((warmMem = m), r())), WARMUP_MS));
  await Promise.all(Array.from({ length: CLIENTS }, async () => {
    while (Date.now() < end) await scrape();
  }));
  await warm;
  const elapsed = (Date.now() - t0) / 1000;
  writing = false;
  await writer;
  agent.destroy();
  await new Promise((r) => setTimeout(r, 100));
  const endMem = await memoryOf(proc, out);

  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
  const final = JSON.parse(out.text.trim().split('\n').at(-1) ?? '{}') as { guard?: { rejected: Record<string, number>; peakInFlight: number }; scrapes?: number };

  latencies.sort((a, b) => a - b);
  const pct = (p: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]! * 10) / 10;
  const total = latencies.length + errors.length;
  const figures = {
    clients: CLIENTS,
    seconds: Math.round(elapsed * 10) / 10,
    requests: total,
    perSecond: Math.round(total / elapsed),
    statuses: Object.fromEntries(statuses),
    errors: errors.length,
    rejected503: statuses.get(503) ?? 0,
    latencyMs: { p50: pct(0.5), p99: pct(0.99), max: pct(1) },
    writes,
    distinctStatesSeen: seenPassed.size,
    collections: final.scrapes,
    peakInFlight: final.guard?.peakInFlight,
    rssWarmMiB: Math.round(warmMem.rss / 2 ** 20),
    rssEndMiB: Math.round(endMem.rss / 2 ** 20),
    heapWarmMiB: Math.round(warmMem.heapUsed / 2 ** 18) / 4,
    heapEndMiB: Math.round(endMem.heapUsed / 2 ** 18) / 4,
  };
  console.log(`load figures: ${JSON.stringify(figures)}`);

  expect(errors.slice(0, 5)).toEqual([]);
  expect(badBodies).toEqual([]);
  expect(Object.fromEntries(statuses)).toEqual({ 200: latencies.length });
  expect(final.guard?.rejected.in_flight).toBe(0);
  expect(total).toBeGreaterThan(CLIENTS * 10); // it really was under load
  // The watchers kept up: the scrapes saw many of the states the writer wrote.
  expect(writes).toBeGreaterThan(10);
  expect(seenPassed.size).toBeGreaterThan(3);
  expect(endMem.heapUsed - warmMem.heapUsed).toBeLessThan(HEAP_GROWTH_BOUND);
  expect(endMem.rss - warmMem.rss).toBeLessThan(RSS_GROWTH_BOUND);
}, 30_000);
