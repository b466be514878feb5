// The exporter for the load test, in its own process (so its memory and event loop are its
// own): the real startExporter from dist/ (built by the test's global setup), with the config
// and HTTP limits given as JSON in argv[2]. Prints the URL on stdout; stops on SIGTERM.
import { startExporter } from '../../dist/src/http/serve.js';

const { config, limits } = JSON.parse(process.argv[2]);
const running = await startExporter(config, {
  io: { stdout: () => undefined, stderr: (s) => process.stderr.write(s), env: {} },
  listenAddress: '127.0.0.1:0',
  limits,
  model: { debounceMs: 20, maxWaitMs: 100, rescanIntervalMs: 0, retryMs: 50 },
});
process.stdout.write(`${running.url}\n`);
// SIGUSR2: collect garbage (node --expose-gc), then report memory as one JSON line.
process.on('SIGUSR2', () => {
  globalThis.gc?.();
  const m = process.memoryUsage();
  process.stdout.write(`${JSON.stringify({ mem: { rss: m.rss, heapUsed: m.heapUsed } })}\n`);
});
process.on('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify({ guard: running.guard, scrapes: running.exporter.scrapes })}\n`);
  void running.close().then(() => process.exit(0));
});
