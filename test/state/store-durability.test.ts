// Item #11.7: a pin set's directories are on disk before `pins` points at them (power loss).
import { describe, it, expect, vi } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Records every directory fsync and every symlink swap, in order (the real functions still run).
const events: string[] = [];
vi.mock('../../src/util/fsatomic.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/util/fsatomic.js')>();
  return {
    ...real,
    fsyncDir: async (dir: string) => {
      events.push(`fsync ${dir}`);
      return real.fsyncDir(dir);
    },
    replaceSymlink: async (target: string, link: string) => {
      events.push(`swap ${link} -> ${target}`);
      return real.replaceSymlink(target, link);
    },
  };
});

const { createStateStore } = await import('../../src/state/store.js');

describe('state store durability', () => {
  it('fsyncs a new set directory, its pins/ and roots/, and sets/ before the pins symlink is switched to it', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'desync-durable-')), 'state');
    const store = createStateStore(dir);
    await store.ensureLayout();
    const id = '20260101T000000Z-abcd';
    await store.createSet(id);
    await store.writeSetPins(id, { hm: { path: '/nix/store/aaaa-nixos', storePath: '/nix/store/aaaa-nixos', revision: 'abc', desyncAge: 0, pinnedAt: '2026-01-01T00:00:00.000Z' } });
    events.length = 0;
    await store.pointPinsAt(id);
    const swap = events.findIndex((e) => e.startsWith(`swap ${join(dir, 'pins')}`));
    expect(swap).toBeGreaterThan(0);
    const before = events.slice(0, swap);
    for (const d of [join(dir, 'sets', id, 'pins'), join(dir, 'sets', id, 'roots'), join(dir, 'sets', id), join(dir, 'sets')]) {
      expect(before, d).toContain(`fsync ${d}`);
    }
    // The parent of the set is synced after the set itself (its entry names a synced directory).
    expect(before.lastIndexOf(`fsync ${join(dir, 'sets')}`)).toBeGreaterThan(before.indexOf(`fsync ${join(dir, 'sets', id)}`));
  });

  it('createSet makes the new set directory and its entry in sets/ durable at once', async () => {
    const dir = join(await mkdtemp(join(tmpdir(), 'desync-durable-')), 'state');
    const store = createStateStore(dir);
    await store.ensureLayout();
    events.length = 0;
    await store.createSet('20260101T000000Z-beef');
    expect(events).toEqual([`fsync ${join(dir, 'sets', '20260101T000000Z-beef')}`, `fsync ${join(dir, 'sets')}`]);
  });
});
