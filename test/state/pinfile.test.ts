import { describe, it, expect } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nixString, parsePinFile, renderPinFile } from '../../src/state/pinfile.js';
import { requireTools } from '../helpers/tools.js';
import { NIX_ENV } from '../helpers/cli.js';

const HOSTILE = ['plain', 'with "quotes"', 'dollar ${builtins.abort "x"}', 'back\\slash', 'new\nline', "''${x}", '$${y}'];

describe('pin files', () => {
  it('render and parse back', () => {
    const pin = { path: '/nix/store/aaaa-nixos/nixos', storePath: '/nix/store/aaaa-nixos', revision: 'r"${x}', desyncAge: 4, pinnedAt: '2026-01-01T00:00:00.000Z' };
    expect(parsePinFile(renderPinFile('hm', pin, 'set'))).toEqual(pin);
  });

  it.skipIf(!requireTools('nix-instantiate'))('real Nix reads desyncAge, path and revision, and no value becomes Nix code', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-pinfile-'));
    for (const [i, revision] of HOSTILE.entries()) {
      const f = join(dir, `p${i}.nix`);
      await writeFile(f, renderPinFile('hm', { path: '/nix/store/aaaa-nixos', storePath: '/nix/store/aaaa-nixos', revision, desyncAge: 3, pinnedAt: '2026-01-01T00:00:00.000Z' }, 'set'));
      const out = JSON.parse(execFileSync('nix-instantiate', ['--eval', '--strict', '--json', f], { env: { ...process.env, ...NIX_ENV }, encoding: 'utf8' }));
      expect(out).toMatchObject({ desyncAge: 3, path: '/nix/store/aaaa-nixos', revision });
    }
    expect(nixString('a${b}')).toBe('"a\\${b}"');
  });
});
