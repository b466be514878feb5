// docs/exporter.md's `--web.config.file` example is a file people copy: promtool must accept it
// as it is, and so must the exporter; the newer-toolkit keys shown apart are accepted by the
// exporter and (as the page says) refused by Debian 12's promtool.
import { spawnSync } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { loadWebConfig } from '../../src/http/web-config.js';
import { requireTools } from '../helpers/tools.js';
import { CORPUS } from '../http/client.js';

async function yamlBlocks(): Promise<string[]> {
  const md = await readFile(new URL('../../docs/exporter.md', import.meta.url), 'utf8');
  const section = md.slice(md.indexOf('## `--web.config.file`'), md.indexOf('## Limits'));
  return [...section.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'docs-web-config-'));
  // The files the example names, next to it (relative paths are relative to the file).
  await copyFile(join(CORPUS, 'server.crt'), join(dir, 'server.crt'));
  await copyFile(join(CORPUS, 'server.key'), join(dir, 'server.key'));
  await copyFile(join(CORPUS, 'tls-ca-chain.pem'), join(dir, 'clients-ca.pem'));
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

async function example(): Promise<{ main: string; newer: string }> {
  const blocks = await yamlBlocks();
  expect(blocks).toHaveLength(2);
  const base = parse(blocks[0]!) as Record<string, Record<string, unknown>>;
  const extra = parse(blocks[1]!) as Record<string, Record<string, unknown>>;
  const merged = { ...base, ...extra, tls_server_config: { ...base.tls_server_config, ...extra.tls_server_config } };
  const main = join(dir, 'web.yml');
  const newer = join(dir, 'web-newer.yml');
  await writeFile(main, blocks[0]!);
  await writeFile(newer, stringify(merged));
  return { main, newer };
}

describe('docs/exporter.md web config example', () => {
  it('is accepted by the exporter, with and without the newer keys', async () => {
    const { main, newer } = await example();
    const cfg = await loadWebConfig(main);
    expect([...cfg.users.keys()]).toEqual(['prometheus']);
    expect(cfg.tls).not.toBeNull();
    const withNewer = await loadWebConfig(newer);
    expect(withNewer.rateLimit).toEqual({ intervalMs: 100, burst: 20 });
  });

  describe.skipIf(!requireTools('promtool'))('promtool check web-config', () => {
    it('accepts the example as printed', async () => {
      const { main } = await example();
      const r = spawnSync('promtool', ['check', 'web-config', main], { encoding: 'utf8' });
      expect(`${r.stdout}${r.stderr}`).toContain('SUCCESS');
      expect(r.status).toBe(0);
    });
    it('refuses the newer keys, as the page says (a newer promtool makes this test say so)', async () => {
      const { newer } = await example();
      const r = spawnSync('promtool', ['check', 'web-config', newer], { encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stdout + r.stderr).toMatch(/client_allowed_sans|rate_limit/);
    });
  });
});
