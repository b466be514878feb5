import { describe, it, expect } from 'vitest';
import { parseFailedUnits, unitMatcher } from '../../src/system/units.js';

describe('failed systemd units', () => {
  it('reads `systemctl list-units --failed --plain --no-legend` output (padded columns, no legend)', () => {
    // As systemd 252 prints it: UNIT LOAD ACTIVE SUB DESCRIPTION, padded with spaces.
    const out = [
      'dev-disk-by\\x2duuid-1234.device loaded failed failed  Some Disk',
      'matrix-synapse.service           loaded failed failed  Synapse Matrix homeserver',
      'nginx.service                    loaded failed failed  Nginx Web Server',
      '',
    ].join('\n');
    expect(parseFailedUnits(out)).toEqual(['dev-disk-by\\x2duuid-1234.device', 'matrix-synapse.service', 'nginx.service']);
  });

  it('skips a status glyph (printed without --plain) and an empty answer', () => {
    expect(parseFailedUnits('● nginx.service loaded failed failed Nginx\n')).toEqual(['nginx.service']);
    expect(parseFailedUnits('')).toEqual([]);
    expect(parseFailedUnits('0 loaded units listed.\n')).toEqual([]);
  });

  it('ignoreUnits: exact names and * wildcards, nothing else', () => {
    const ignored = unitMatcher(['flaky.service', 'user@*.service']);
    expect(ignored('flaky.service')).toBe(true);
    expect(ignored('user@1000.service')).toBe(true);
    expect(ignored('flakyXservice')).toBe(false);
    expect(ignored('nginx.service')).toBe(false);
  });
});

describe('activation through the NixOS module\'s unconfined unit', () => {
  it('escapes a toplevel as `systemd-escape --path` does, for the unit instance', async () => {
    const { systemdEscapePath } = await import('../../src/system/nixos.js');
    // systemd-escape --path /nix/store/0123abcd-nixos-system-host-25.11.20260101.abc1234
    expect(systemdEscapePath('/nix/store/0123abcd-nixos-system-host-25.11.20260101.abc1234'))
      .toBe('nix-store-0123abcd\\x2dnixos\\x2dsystem\\x2dhost\\x2d25.11.20260101.abc1234');
    expect(systemdEscapePath('/a//b/')).toBe('a-b');
    expect(systemdEscapePath('/.hidden/x y')).toBe('\\x2ehidden-x\\x20y');
  });
});
