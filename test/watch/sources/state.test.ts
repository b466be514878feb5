// The state source alone: a read publishes nothing until committed, an untrusted directory is
// read as untrusted (nothing from it), and stale() notices what no file event reports (a chmod)
// until a read of the new verdict is published.
import { chmod } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createStateSource } from '../../../src/watch/sources/state.js';
import { buildFixtureHost, type FixtureHost } from '../../fixtures/exporter/build.js';

let host: FixtureHost | undefined;
afterEach(async () => {
  await host?.cleanup();
  host = undefined;
});

describe('state source', () => {
  it('stale() is true after a chmod of the state directory, until the new verdict is read and published', async () => {
    host = await buildFixtureHost();
    const source = createStateSource(host.config, 10);
    // Before the first published read there is nothing to compare with.
    expect(await source.stale()).toBe(false);
    const first = (await source.read(true))();
    expect(first.snapshot.untrusted).toBeNull();
    expect(first.snapshot.lastGood).not.toBeNull();
    expect(await source.stale()).toBe(false);

    await chmod(host.stateDir, 0o775);
    expect(await source.stale()).toBe(true);
    const commit = await source.read(false);
    // Read but not published (the model may drop it): still stale.
    expect(await source.stale()).toBe(true);
    const untrusted = commit();
    expect(untrusted.snapshot.untrusted).toMatch(/group- or world-writable \(mode 775\)/);
    expect(untrusted.error).toBe(untrusted.snapshot.untrusted);
    // Nothing read from an untrusted directory, except the breaches last read from a trusted one.
    expect(Object.keys(first.snapshot.state.desyncs).length).toBeGreaterThan(0);
    expect(untrusted.snapshot.state.desyncs).toEqual({});
    expect(untrusted.snapshot.lastGood).toBe(first.snapshot.lastGood);
    expect(await source.stale()).toBe(false);

    await chmod(host.stateDir, 0o755);
    expect(await source.stale()).toBe(true);
    expect((await source.read(false))().snapshot.untrusted).toBeNull();
    expect(await source.stale()).toBe(false);
  });
});
