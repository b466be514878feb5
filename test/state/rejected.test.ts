import { describe, expect, it } from 'vitest';
import { REJECTED_MAX, type RejectedCandidate } from '../../src/state/model.js';
import { findRejected, withRejected, withoutRejected } from '../../src/state/rejected.js';

const entry = (id: string, revision = '25.11'): RejectedCandidate & { id: string } =>
  ({ id, revision, path: id, runId: `run-${id}`, at: '2026-01-01T00:00:00.000Z', reason: 'health' });
const cand = (id: string, revision = '25.11') => ({ id, path: id, revision });

describe('rejected candidates', () => {
  it('match by identity, never by the revision label alone', () => {
    const set = withRejected([], entry('/nix/store/a-nixpkgs'));
    expect(findRejected(set, cand('/nix/store/a-nixpkgs'))).not.toBeNull();
    expect(findRejected(set, cand('/nix/store/b-nixpkgs'))).toBeNull();
  });

  it('are a set: r2, r3, then r2 again is still rejected; bounded, oldest forgotten first', () => {
    let set = withRejected([], entry('r2'));
    set = withRejected(set, entry('r3'));
    expect(findRejected(set, cand('r2'))?.runId).toBe('run-r2');
    set = withRejected(set, { ...entry('r2'), runId: 'again' });
    expect(set.map((e) => e.runId)).toEqual(['run-r3', 'again']);
    for (let i = 0; i < REJECTED_MAX + 3; i++) set = withRejected(set, entry(`x${i}`));
    expect(set).toHaveLength(REJECTED_MAX);
    expect(findRejected(set, cand('r3'))).toBeNull();
    expect(findRejected(set, cand(`x${REJECTED_MAX + 2}`))).not.toBeNull();
    expect(withoutRejected(set, cand(`x${REJECTED_MAX + 2}`))).toHaveLength(REJECTED_MAX - 1);
  });

  it('a rejection migrated from state version 2 (no identity) matches path and revision together', () => {
    const old: RejectedCandidate = { ...entry('x'), id: null, path: '/nix/store/a-nixpkgs', revision: 'abc' };
    expect(findRejected([old], cand('/nix/store/a-nixpkgs', 'abc'))).not.toBeNull();
    expect(findRejected([old], { id: 'q', path: '/nix/store/b-nixpkgs', revision: 'abc' })).toBeNull();
  });
});
