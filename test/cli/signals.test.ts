import { describe, expect, it } from 'vitest';
import { createSignalHandler } from '../../src/cli/signals.js';
import { createShield } from '../../src/util/shield.js';

function handler() {
  const seen = { aborts: 0, exits: [] as number[], err: '' };
  const shield = createShield();
  const on = createSignalHandler({ abort: () => void (seen.aborts += 1), exit: (c) => void seen.exits.push(c), stderr: (s) => void (seen.err += s), shield });
  return { seen, shield, on };
}

describe('the CLI\'s SIGTERM/SIGINT', () => {
  it('the first signal aborts the run; a second one exits at once when no rollback runs', () => {
    const { seen, on } = handler();
    on('SIGTERM');
    expect(seen).toMatchObject({ aborts: 1, exits: [] });
    expect(seen.err).toMatch(/received SIGTERM, stopping/);
    on('SIGINT');
    expect(seen.exits).toEqual([1]);
  });

  it('a second (and third) signal during a rollback does not exit: the rollback finishes; after it, one more exits', async () => {
    const { seen, shield, on } = handler();
    on('SIGTERM');
    let release!: () => void;
    const rollback = shield.hold(() => new Promise<string>((res) => { release = () => res('activated again'); }));
    expect(shield.active).toBe(true);
    on('SIGTERM');
    on('SIGINT');
    expect(seen.exits).toEqual([]);
    expect(seen.err).toMatch(/received SIGTERM again during a rollback: it finishes first/);
    release();
    expect(await rollback).toBe('activated again');
    expect(shield.active).toBe(false);
    on('SIGTERM');
    expect(seen.exits).toEqual([1]);
    expect(seen.aborts).toBe(1);
  });

  it('the shield is released when the rollback throws', async () => {
    const shield = createShield();
    await expect(shield.hold(async () => { throw new Error('boom'); })).rejects.toThrow('boom');
    expect(shield.active).toBe(false);
  });
});
