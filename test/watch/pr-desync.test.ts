// The proposal's state files are parsed, never evaluated: only a flat set of literals with
// desyncAge and path is accepted; anything else is reported, never crashes the exporter.
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePrDesyncText, PR_FILE_MAX_BYTES, readPrDesyncFile } from '../../src/watch/pr-desync.js';
import { buildFixtureHost, type FixtureHost } from '../fixtures/exporter/build.js';
import { sample, startTestExporter, waitFor, type StartedExporter } from '../fixtures/exporter/start.js';

describe('parsePrDesyncText', () => {
  it.each([
    ['{ desyncAge = 3; path = /nix/store/abc-source; }', 3, '/nix/store/abc-source'],
    ['# comment\n{\n  path = "/nix/store/x y";\n  desyncAge = 0; /* c */\n}\n', 0, '/nix/store/x y'],
    ['{ desyncAge = 14; path = /nix/store/abc; revision = "deadbeef"; keep = true; }', 14, '/nix/store/abc'],
  ])('accepts %j', (text, age, path) => {
    expect(parsePrDesyncText(text)).toEqual({ desyncAge: age, path });
  });

  it.each([
    ['import <nixpkgs> {}', /unexpected "<"|expected "\{"/],
    ['{ desyncAge = 1; path = "/nix/store/${builtins.currentTime}"; }', /interpolation/],
    ['let x = 1; in { desyncAge = x; path = /nix/store/a; }', /expected "\{"/],
    ['{ desyncAge = x; path = /nix/store/a; }', /literal/],
    ['{ desyncAge = -1; path = /nix/store/a; }', /unexpected/],
    ['{ path = /nix/store/a; }', /desyncAge/],
    ['{ desyncAge = 1; }', /path/],
    ['{ desyncAge = 1; path = "relative"; }', /absolute/],
    ['{ desyncAge = 1; path = /nix/store/../etc; }', /absolute/],
    ['{ desyncAge = 1; desyncAge = 2; path = /a; }', /twice/],
    ['{ desyncAge = 1; path = /a; } // { desyncAge = 0; }', /trailing/],
    ['{ desyncAge = 1; path = /a; ', /expected "\}"/],
    ['{ desyncAge = 1; path = "/a', /unterminated/],
    ['', /expected "\{"/],
  ])('rejects %j', (text, why) => {
    expect(() => parsePrDesyncText(text)).toThrow(why);
  });

  it('agrees with nix-instantiate on the accepted shapes (when Nix is installed)', () => {
    let nix = true;
    try {
      execFileSync('nix-instantiate', ['--version'], { stdio: 'ignore' });
    } catch {
      nix = false;
    }
    if (!nix) return;
    const text = '# c\n{ path = "/nix/store/abc-source"; desyncAge = 7; revision = "r"; }';
    const out = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', '--expr', text], { encoding: 'utf8' })) as Record<string, unknown>;
    expect(parsePrDesyncText(text)).toEqual({ desyncAge: out.desyncAge, path: out.path });
  });
});

describe('readPrDesyncFile', () => {
  let dir: string;
  afterEach(async () => void (dir && (await rm(dir, { recursive: true, force: true }))));

  it('follows a symlink into the store, refuses FIFOs, huge files and bad names', async () => {
    dir = await mkdtemp(join(tmpdir(), 'pr-desync-'));
    await writeFile(join(dir, 'store-file'), '{ desyncAge = 2; path = /nix/store/q1w2e3-source; }');
    await symlink(join(dir, 'store-file'), join(dir, 'hm.nix'));
    expect(await readPrDesyncFile(join(dir, 'hm.nix'), 'hm')).toEqual({ name: 'hm', desyncAge: 2, path: '/nix/store/q1w2e3-source', revision: 'q1w2e3' });
    execFileSync('mkfifo', [join(dir, 'fifo.nix')]);
    await expect(readPrDesyncFile(join(dir, 'fifo.nix'), 'fifo')).rejects.toThrow(/regular file/);
    await writeFile(join(dir, 'big.nix'), ' '.repeat(PR_FILE_MAX_BYTES + 1));
    await expect(readPrDesyncFile(join(dir, 'big.nix'), 'big')).rejects.toThrow(/larger/);
    await expect(readPrDesyncFile(join(dir, 'hm.nix'), 'Bad Name')).rejects.toThrow(/desync name/);
    await symlink(join(dir, 'missing'), join(dir, 'dangling.nix'));
    await expect(readPrDesyncFile(join(dir, 'dangling.nix'), 'dangling')).rejects.toThrow(/ENOENT/);
  });
});

describe('pr_compat collector on a live directory', () => {
  let host: FixtureHost | undefined;
  let exp: StartedExporter | undefined;
  afterEach(async () => {
    await exp?.close();
    await host?.cleanup();
  });

  it("the proposal's desyncs get the loop's series (budget, breach) once: a name the loop also has is not doubled", async () => {
    host = await buildFixtureHost({ pr: true });
    // The same file under a loop desync's name (e.g. prDesyncDir pointed at the loop's pins),
    // and one for "nopin", which the loop is configured for but has not pinned yet (migration).
    await cp(join(host.prDir, 'synapse.nix'), join(host.prDir, 'lagging.nix'));
    await cp(join(host.prDir, 'synapse.nix'), join(host.prDir, 'nopin.nix'));
    exp = await startTestExporter({ ...host.config, exporter: { ...host.config.exporter, prMaxDesyncAge: 5 } });
    const text = (await request(exp.server).get('/metrics')).text;
    // synapse (desyncAge 5) has used up the proposal's budget of 5: breached, like a loop desync.
    expect(sample(text, 'nixos_desync_lag_rebuilds{desync="synapse"}')).toBe(5);
    expect(sample(text, 'nixos_desync_max_lag_rebuilds{desync="synapse"}')).toBe(5);
    expect(sample(text, 'nixos_desync_breached{desync="synapse"}')).toBe(1);
    expect(sample(text, 'nixos_desync_in_sync{desync="synapse"}')).toBe(0);
    expect(sample(text, 'nixos_desync_breached{desync="hm"}')).toBe(0);
    expect(text).toMatch(/^nixos_desync_pin_info\{desync="synapse",revision="[^"]+",path="[^"]+",source="pr"\} 1$/m);
    // No value series carries an extra label that would split one desync in two.
    expect(text).not.toMatch(/^nixos_desync_(lag_rebuilds|in_sync|breached|max_lag_rebuilds)\{[^}]*source=/m);
    // The loop's own "lagging" wins; the proposal file of the same name adds no second series.
    expect(text.match(/^nixos_desync_lag_rebuilds\{desync="lagging"\} /gm)).toHaveLength(1);
    expect(sample(text, 'nixos_desync_lag_rebuilds{desync="lagging"}')).toBe(2);
    expect(text.match(/^nixos_desync_pin_info\{desync="lagging",/gm)).toHaveLength(1);
    expect(text).not.toMatch(/^nixos_desync_pin_info\{desync="lagging",.*source="pr"/m);
    // Not pinned by the loop yet: the proposal's pin and age are what the host uses, shown once.
    expect(text.match(/^nixos_desync_lag_rebuilds\{desync="nopin"\} /gm)).toHaveLength(1);
    expect(sample(text, 'nixos_desync_lag_rebuilds{desync="nopin"}')).toBe(5);
    expect(sample(text, 'nixos_desync_breached{desync="nopin"}')).toBe(1);
    expect(text.match(/^nixos_desync_pin_info\{desync="nopin",/gm)).toHaveLength(1);
    // With an unlimited budget (null): no budget series, never breached.
    await exp.close();
    exp = await startTestExporter({ ...host.config, exporter: { ...host.config.exporter, prMaxDesyncAge: null } });
    const t2 = (await request(exp.server).get('/metrics')).text;
    expect(sample(t2, 'nixos_desync_max_lag_rebuilds{desync="synapse"}')).toBeUndefined();
    expect(sample(t2, 'nixos_desync_breached{desync="synapse"}')).toBe(0);
  });

  it('exports good files, reports the broken one, and follows changes', async () => {
    host = await buildFixtureHost({ pr: true });
    exp = await startTestExporter(host.config);
    const m = async (s: string): Promise<number | undefined> => sample((await request(exp!.server).get('/metrics')).text, s);
    expect(await m('nixos_desync_collector_success{collector="pr_compat"}')).toBe(0);
    expect(await m('nixos_desync_lag_rebuilds{desync="synapse"}')).toBe(5);
    expect(await m('nixos_desync_collector_success{collector="desyncs"}')).toBe(1);
    // Fixing the broken file restores success; a symlink swap to a new store file is seen.
    await writeFile(join(host.prDir, 'broken.nix'), '{ desyncAge = 1; path = /nix/store/zz9-source; }');
    await waitFor(() => m('nixos_desync_collector_success{collector="pr_compat"}'), (v) => v === 1);
    expect(await m('nixos_desync_lag_rebuilds{desync="broken"}')).toBe(1);
    await writeFile(join(host.storeDir, 'def-desync-hm.nix'), '{ desyncAge = 4; path = /nix/store/aa1-source; }');
    await symlink(join(host.storeDir, 'def-desync-hm.nix'), join(host.prDir, '.hm.tmp'));
    const { rename } = await import('node:fs/promises');
    await rename(join(host.prDir, '.hm.tmp'), join(host.prDir, 'hm.nix'));
    await waitFor(() => m('nixos_desync_lag_rebuilds{desync="hm"}'), (v) => v === 4);
    await rm(join(host.prDir, 'synapse.nix'));
    await waitFor(() => m('nixos_desync_lag_rebuilds{desync="synapse"}'), (v) => v === undefined);
  });
});
