// `promtool check metrics` on the live, unfiltered output of a running exporter.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireTools } from '../helpers/tools.js';
import { buildFixtureHost, type FixtureHost } from '../fixtures/exporter/build.js';
import { startTestExporter, type StartedExporter } from '../fixtures/exporter/start.js';

describe.skipIf(!requireTools('promtool'))('promtool check metrics', () => {
  let host: FixtureHost;
  let exp: StartedExporter;
  beforeAll(async () => {
    host = await buildFixtureHost({ pr: true });
    exp = await startTestExporter(host.config);
  });
  afterAll(async () => {
    await exp?.close();
    await host?.cleanup();
  });

  it('passes on the live /metrics output, process metrics included', async () => {
    const text = await (await fetch(`${exp.url}metrics`)).text();
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8', timeout: 20_000 });
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
