import { describe, it, expect } from 'vitest';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStateStore } from '../../src/state/store.js';
import { emptyState, type Pin } from '../../src/state/model.js';

const pin: Pin = { path: '/nix/store/aaaa-nixos/nixos', storePath: '/nix/store/aaaa-nixos', revision: 'abc', desyncAge: 2, pinnedAt: '2026-01-01T00:00:00.000Z' };

async function storeWithSet() {
  const dir = join(await mkdtemp(join(tmpdir(), 'desync-store-')), 'state');
  const store = createStateStore(dir);
  await store.ensureLayout();
  const id = '20260101T000000Z-abcd';
  await store.createSet(id);
  await store.writeSetPins(id, { hm: pin });
  await store.pointPinsAt(id);
  const s = emptyState();
  s.committed = { setId: id, at: '2026-01-01T00:00:00.000Z', pins: { hm: pin } };
  s.runs.total.success = 7;
  await store.writeState(s);
  return { dir, store, id };
}

describe('state store', () => {
  it('a version 1 state.json (before activation and rollback) is migrated on read: nothing lost, new fields empty', async () => {
    const { dir, store, id } = await storeWithSet();
    const v1 = {
      version: 1,
      committed: { setId: id, at: '2026-01-01T00:00:00.000Z', pins: { hm: pin } },
      desyncs: {},
      runs: { total: { success: 7, failure: 2, breach: 1 }, last: null, lastSuccessAt: '2026-01-01T00:00:00.000Z' },
    };
    await writeFile(join(dir, 'state.json'), JSON.stringify(v1));
    const r = await store.readState({ repair: true });
    expect(r.problems).toEqual([]);
    expect(r.value.version).toBe(3);
    expect(r.value.committed.pins.hm).toEqual(pin);
    expect(r.value.runs.total).toEqual({ success: 7, failure: 2, breach: 1, rolled_back: 0, rollback_failed: 0, held: 0 });
    expect(r.value).toMatchObject({ rollbacks: { total: { activation: 0, health: 0 }, last: null }, health: { lastSuccess: null }, rejected: [], systems: {} });
    // Read-only: the file on disk changes only when the loop writes its next state.
    expect(JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')).version).toBe(1);
  });

  it('a version 2 state.json (one rejected candidate, by revision) is migrated on read: a rejected set of one, matched by path and revision', async () => {
    const { dir, store } = await storeWithSet();
    const v2 = { ...emptyState(), version: 2, rejected: { revision: 'abc', path: '/nix/store/aaaa-nixos/nixos', runId: 'r', at: '2026-01-01T00:00:00.000Z', reason: 'health' } } as Record<string, unknown>;
    await writeFile(join(dir, 'state.json'), JSON.stringify(v2));
    const r = await store.readState({ repair: true });
    expect(r.problems).toEqual([]);
    expect(r.value.version).toBe(3);
    expect(r.value.rejected).toEqual([{ id: null, revision: 'abc', path: '/nix/store/aaaa-nixos/nixos', runId: 'r', at: '2026-01-01T00:00:00.000Z', reason: 'health' }]);
    await writeFile(join(dir, 'state.json'), JSON.stringify({ ...v2, rejected: null }));
    expect((await store.readState({ repair: true })).value.rejected).toEqual([]);
    // Validated: a set beyond its bound is not a state this version writes.
    await writeFile(join(dir, 'state.json'), JSON.stringify({ ...emptyState(), rejected: Array.from({ length: 99 }, () => ({ id: 'x', revision: 'r', path: '/p', runId: 'r', at: '2026-01-01T00:00:00.000Z', reason: 'health' })) }));
    expect((await store.readState({ repair: false })).problems).toHaveLength(1);
  });

  it('round-trips state through a validated, atomically written file', async () => {
    const { dir, store } = await storeWithSet();
    const r = await store.readState({ repair: true });
    expect(r.problems).toEqual([]);
    expect(r.value.runs.total.success).toBe(7);
    expect((await readdir(dir)).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it.each([
    ['truncated JSON', '{"version": 1, "committed": {'],
    ['garbage', '\u0000\u0001garbage'],
    ['wrong types', JSON.stringify({ ...emptyState(), runs: { total: { success: 'many' } } })],
    ['a future schema version', JSON.stringify({ ...emptyState(), version: 9 })],
  ])('corrupt state.json (%s) is moved aside and reported; pins stay usable', async (_what, content) => {
    const { dir, store, id } = await storeWithSet();
    await writeFile(join(dir, 'state.json'), content);
    const ro = await store.readState({ repair: false });
    expect(ro.problems).toHaveLength(1);
    expect(await readFile(join(dir, 'state.json'), 'utf8')).toBe(content); // read-only readers never move it
    const r = await store.readState({ repair: true });
    expect(r.problems[0]!.message).toMatch(_what === 'a future schema version' ? /newer nixos-desync \(schema version 9\)/ : /not valid JSON|invalid content/);
    expect(r.problems[0]!.movedTo).toMatch(/state\.json\.corrupt-/);
    expect(await readFile(r.problems[0]!.movedTo!, 'utf8')).toBe(content);
    // The committed pins are rebuilt from the pin files.
    expect(r.value.committed).toMatchObject({ setId: id, pins: { hm: { revision: 'abc', desyncAge: 2, path: pin.path } } });
    expect(await store.corruptFiles()).toHaveLength(1);
  });

  it('refuses a group/world-writable state dir, a symlinked state dir, and a foreign pins symlink', async () => {
    const { dir, store } = await storeWithSet();
    await chmod(dir, 0o777);
    await expect(store.ensureLayout()).rejects.toMatchObject({ code: 'E_UNSAFE_PATH', message: expect.stringMatching(/group- or world-writable \(mode 777\)/) });
    await chmod(dir, 0o755);
    const link = `${dir}-link`;
    await symlink(dir, link);
    await expect(createStateStore(link).ensureLayout()).rejects.toMatchObject({ code: 'E_UNSAFE_PATH', message: expect.stringMatching(/is a symlink/) });
    await rm(join(dir, 'pins'));
    await symlink('/etc', join(dir, 'pins'));
    await expect(store.pinsTarget()).rejects.toMatchObject({ code: 'E_UNSAFE_PATH', message: expect.stringMatching(/points to \/etc/) });
    await rm(join(dir, 'pins'));
    await mkdir(join(dir, 'pins'));
    await expect(store.pinsTarget()).rejects.toMatchObject({ code: 'E_UNSAFE_PATH', message: expect.stringMatching(/not a symlink/) });
  });

  it('bounds the history', async () => {
    const { store } = await storeWithSet();
    const rec = { id: 'r', at: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:00:01.000Z', result: 'success' as const, durationSeconds: 1, stages: {}, error: null, exitCode: 0, candidate: null, desyncs: [], evaluations: 1 };
    for (let i = 0; i < 12; i++) await store.appendHistory({ ...rec, id: `r${i}` }, 5);
    const h = (await store.readHistory({ repair: false })).value.runs;
    expect(h.map((r) => r.id)).toEqual(['r7', 'r8', 'r9', 'r10', 'r11']);
  });
});
