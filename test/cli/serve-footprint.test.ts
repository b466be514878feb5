// What `nixos-desync serve` loads: the exporter runs on every host, so it must not hold the
// upgrade path (the loop, Nix adapter, execa), nor express until a page other than /metrics
// is asked for, nor bcryptjs and the YAML parser without a web config (docs/benchmarks.md, "Memory").
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';
import { buildFixtureHost, type FixtureHost } from '../fixtures/exporter/build.js';

const RECORD = fileURLToPath(new URL('../fixtures/loader/record-imports.mjs', import.meta.url));

describe('serve: modules loaded', () => {
  let host: FixtureHost;
  let stderr = '';
  let base = '';
  let stop: () => Promise<void>;
  const imports = (): string[] => [...stderr.matchAll(/^IMPORT (\S+)$/gm)].map((m) => m[1]!);

  beforeAll(async () => {
    host = await buildFixtureHost();
    const configFile = join(host.dir, 'config.json');
    await writeFile(configFile, JSON.stringify(host.config));
    const child = spawn(process.execPath, ['--import', RECORD, CLI, 'serve', '--config', configFile, '--web.listen-address', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    stop = async () => {
      child.kill('SIGTERM');
      await exited;
    };
    for (let i = 0; i < 600 && !base; i++) {
      const m = /"msg":"listening".*?"url":"(http:\/\/[^"]+?)\/?"/.exec(stderr);
      if (m) base = m[1]!;
      else await new Promise((r) => setTimeout(r, 50));
    }
    expect(base, stderr).not.toBe('');
  });
  afterAll(async () => {
    await stop?.();
    await host?.cleanup();
  });

  it('scraping /metrics loads neither the upgrade path, nor execa, express, bcryptjs or yaml (no web config)', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^nixos_desync_system_generations 3$/m);
    const loaded = imports();
    expect(loaded.some((u) => u.endsWith('/http/serve.js'))).toBe(true); // the hook sees our modules
    for (const unwanted of [/\/upgrade\/run\.js$/, /\/wire\.js$/, /\/node_modules\/execa\//, /\/node_modules\/express\//, /\/node_modules\/bcryptjs\//, /\/node_modules\/yaml\//]) {
      expect(loaded.filter((u) => unwanted.test(u)), String(unwanted)).toEqual([]);
    }
  });

  it('the landing page still works: express loads with the first request for it', async () => {
    const res = await fetch(`${base}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect(imports().some((u) => /\/node_modules\/express\//.test(u))).toBe(true);
  });
});
