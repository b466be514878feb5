// The one place the parts are wired (src/wire.ts): every command of a run reports progress.
import { describe, expect, it } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../src/config/load.js';
import { createLogger } from '../src/util/log.js';
import { upgradeDeps } from '../src/wire.js';

const SLOW_TALKER = fileURLToPath(new URL('./fixtures/bin/slow-talker.sh', import.meta.url));

describe('upgradeDeps', () => {
  it('wraps the runner with the heartbeat: a slow command is reported while it runs, and on a terminal a live line is drawn and cleared', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'desync-wire-'));
    const lines: string[] = [];
    const tty: string[] = [];
    const deps = upgradeDeps(parseConfig({ stateDir: join(dir, 'state') }), createLogger({ write: (l) => lines.push(l) }), process.env, undefined,
      { intervalMs: 200, live: { write: (s) => tty.push(s), intervalMs: 100 } });
    const r = await deps.run([SLOW_TALKER, '2', '0.5'], { timeoutMs: 30_000 });
    expect(r.exitCode).toBe(0);
    expect(lines.some((l) => /^running    .*slow-talker\.sh 2 0\.5 \([0-9.]+s\) — building step [12] of 2\n$/.test(l))).toBe(true);
    expect(tty.some((s) => s.startsWith('\r\x1b[K… ') && s.includes('slow-talker.sh'))).toBe(true);
    expect(tty.at(-1)).toBe('\r\x1b[K');
  });
});
