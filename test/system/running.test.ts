// The running system's nixpkgs, from the label NixOS writes to <toplevel>/nixos-version.
import { describe, expect, it } from 'vitest';
import { parseNixosVersion } from '../../src/system/running.js';

describe('parseNixosVersion', () => {
  it.each([
    ['25.05.20250612.abc1234', { version: '25.05', revision: 'abc1234', date: '2025-06-12' }],
    ['24.11.20241231.0123456789abcdef0123456789abcdef01234567', { version: '24.11', revision: '0123456789abcdef0123456789abcdef01234567', date: '2024-12-31' }],
    // system.nixos.tags come first, joined with "-".
    ['prod-web-25.05.20250612.abc1234', { version: '25.05', revision: 'abc1234', date: '2025-06-12' }],
    // A flake without a revision (dirty tree).
    ['25.05.20250612.dirty', { version: '25.05', revision: 'dirty', date: '2025-06-12' }],
    // Old channels: pre-release number, no date.
    ['21.11pre334934.8e8b5f5', { version: '21.11', revision: '8e8b5f5', date: null }],
    // A git checkout: no revision, no date.
    ['25.11pre-git', { version: '25.11', revision: '', date: null }],
  ])('%s', (label, want) => {
    const got = parseNixosVersion(label)!;
    expect({ ...got, date: got.date?.toISOString().slice(0, 10) ?? null }).toEqual(want);
  });

  it.each(['', 'finix', 'fixture', '25.05.20251345.abc1234'])('%j gives no date it cannot vouch for', (label) => {
    expect(parseNixosVersion(label)?.date ?? null).toBeNull();
  });
});
