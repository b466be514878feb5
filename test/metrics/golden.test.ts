// Golden /metrics output for the fixture host: desyncs in sync, lagging, breached, unpinned
// and retired; a corrupt history.json (runs collector 0, its values intact); a state file
// moved aside; 3 generations with a pending activation and a reboot required; PR files
// with one broken; a rollout host (ring 1, held, a rejected candidate). Regenerate with UPDATE_GOLDEN=1 after an intended change.
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { METRIC_NAMES } from '../alerts/metric-names.js';
import { buildFixtureHost, FIXTURE_NOW, type FixtureHost } from '../fixtures/exporter/build.js';
import { normalizeExposition, startTestExporter, type StartedExporter } from '../fixtures/exporter/start.js';

const GOLDEN = fileURLToPath(new URL('../fixtures/exporter/golden.prom', import.meta.url));

describe('/metrics golden output', () => {
  let host: FixtureHost;
  let exp: StartedExporter;
  let text: string;

  beforeAll(async () => {
    host = await buildFixtureHost({ pr: true, monitor: true, rollout: true });
    exp = await startTestExporter(host.config, { now: () => FIXTURE_NOW, systemctl: host.systemctl });
    const res = await request(exp.server).get('/metrics');
    expect(res.status).toBe(200);
    text = res.text;
  });
  afterAll(async () => {
    await exp?.close();
    await host?.cleanup();
  });

  it('matches the golden file (volatile values normalised)', async () => {
    const got = normalizeExposition(text);
    if (process.env.UPDATE_GOLDEN) await writeFile(GOLDEN, got);
    expect(got).toBe(await readFile(GOLDEN, 'utf8'));
  });

  it('serves every metric name of the contract', () => {
    const names = new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0]));
    const missing = METRIC_NAMES.filter((n) => !names.has(n));
    expect(missing).toEqual([]);
  });

  it('keeps the runtime series a person reads (CPU, memory, fds, start time, event-loop lag) and drops the rest', () => {
    const runtime = [...new Set(text.split('\n').filter((l) => /^(process|nodejs)_/.test(l)).map((l) => /^[a-z0-9_]+/.exec(l)![0]))].sort();
    expect(runtime).toEqual([
      'nodejs_eventloop_lag_p99_seconds', 'process_cpu_seconds_total',
      'process_max_fds', 'process_open_fds', 'process_resident_memory_bytes', 'process_start_time_seconds',
    ]);
    expect(Number(/^process_cpu_seconds_total (\S+)$/m.exec(text)![1])).toBeGreaterThan(0);
    expect(text).toMatch(/^# TYPE process_cpu_seconds_total counter$/m);
  });
});
