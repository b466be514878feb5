// What the answer of the rollout query means (src/rollout/fleet.ts): hold reasons, the
// qualification threshold, rejections naming the host, and label values that cannot be PromQL.
import { describe, expect, it } from 'vitest';
import type { Sample } from '../../src/prometheus/client.js';
import { interpretAnswer, promqlString, rolloutQuery } from '../../src/rollout/fleet.js';

const s = (labels: Record<string, string>, value: number): Sample => ({ labels, value, timestamp: 0 });
const R = { ring: 2, soak: '6h', minHosts: 2 };

describe('interpretAnswer', () => {
  it('no host of ring r−1 known: held, no_data', () => {
    expect(interpretAnswer(R, 'abc', [])).toMatchObject({ kind: 'hold', reason: 'no_data', message: expect.stringContaining('no nixos_desync_rollout_info{ring="1"}') });
  });

  it('fewer than minHosts qualified: held, soak, with the progress', () => {
    const v = interpretAnswer(R, 'abc', [s({ rollout: 'upstream' }, 4), s({ rollout: 'running' }, 2), s({ rollout: 'qualified' }, 1), s({ rollout: 'longest' }, 7800)]);
    expect(v).toEqual({ kind: 'hold', reason: 'soak', rejectedBy: [], message: 'waiting for 2 hosts of ring 1 healthy on abc for 6h: 2 of the 4 hosts of ring 1 run it healthy, the longest for 2h10m; 1 for 6h or longer' });
    expect(interpretAnswer(R, 'abc', [s({ rollout: 'upstream' }, 3)]).message).toMatch(/none of the 3 hosts of ring 1 runs it healthy yet/);
  });

  it('minHosts qualified: adopt', () => {
    expect(interpretAnswer(R, 'abc', [s({ rollout: 'upstream' }, 4), s({ rollout: 'running' }, 3), s({ rollout: 'qualified' }, 2)]))
      .toMatchObject({ kind: 'adopt', message: 'ring 1 qualified abc: 2 of 4 hosts ran it healthy for 6h or longer (2 needed)' });
  });

  it('a rejection anywhere wins, naming every rejecting host; ring 0 only looks for rejections', () => {
    const rej = (instance: string) => s({ rollout: 'rejected', instance, job: 'nd', source: 'nixpkgs', revision: 'abc' }, 1);
    const v = interpretAnswer(R, 'abc', [s({ rollout: 'upstream' }, 4), s({ rollout: 'qualified' }, 4), rej('web-9:9793'), rej('db-1:9793')]);
    expect(v).toMatchObject({ kind: 'rejected', rejectedBy: [{ instance: 'db-1:9793', job: 'nd' }, { instance: 'web-9:9793', job: 'nd' }] });
    expect(v.message).toBe('candidate abc was rejected by db-1:9793 (job nd), web-9:9793 (job nd): a rollback there found it unhealthy');
    expect(interpretAnswer({ ...R, ring: 0 }, 'abc', [])).toMatchObject({ kind: 'adopt' });
    expect(interpretAnswer({ ...R, ring: 0 }, 'abc', [rej('a:1')])).toMatchObject({ kind: 'rejected' });
  });
});

describe('rolloutQuery', () => {
  it('quotes the revision as a PromQL string and uses the soak in seconds', () => {
    const q = rolloutQuery({ ring: 1, soak: '2d' }, 'a"b\\c');
    expect(q).toContain('revision="a\\"b\\\\c"');
    expect(q).toContain('>= 172800)');
    expect(rolloutQuery({ ring: 1, soak: '0s' }, 'x')).toContain('>= 0)');
  });

  it('refuses a value that cannot be a PromQL string', () => {
    expect(() => promqlString('\ud800')).toThrow(/not usable as a PromQL label value/);
  });
});
