// Which flake inputs get a flake_input_last_modified_timestamp_seconds series (#18.9: one per
// input without bound gave 148 samples for 40 inputs): the followed input, then the oldest.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { exportedInputs, flakeCollector, FLAKE_INPUT_SERIES_MAX, followedInput } from '../../src/metrics/flake.js';
import type { LockedInput } from '../../src/watch/flake-lock.js';

const input = (name: string, lastModified: number): LockedInput => ({ input: name, lastModified, rev: null });

describe('flake input series', () => {
  const inputs = [input('nixpkgs', 1_800_000_000), ...Array.from({ length: 39 }, (_, i) => input(`in-${String(i).padStart(2, '0')}`, 1_700_000_000 + i))];

  it('40 inputs: the followed one and the oldest others, FLAKE_INPUT_SERIES_MAX in all', () => {
    const out = exportedInputs(inputs, 'nixpkgs', new Set());
    expect(out).toHaveLength(FLAKE_INPUT_SERIES_MAX);
    expect(out.map((i) => i.input)).toEqual(['in-00', 'in-01', 'in-02', 'in-03', 'nixpkgs'].slice(-FLAKE_INPUT_SERIES_MAX));
  });

  it('flake mode: the followed input is flake.input; the desyncs\' own inputs are left out (their per-desync series say it)', () => {
    const config = parseConfig({ flake: { path: '/etc/nixos', input: 'main' }, desyncs: { syn: {} } });
    expect(followedInput(config)).toBe('main');
    expect(followedInput(parseConfig({}))).toBe('nixpkgs');
    const emitted: string[] = [];
    const flake = { file: '/etc/nixos/flake.lock', error: null, inputs: [input('nixpkgs-syn', 1), input('main', 5), input('old', 2), input('older', 1)] };
    flakeCollector().collect({ config, model: { flake } } as never, (_name: string, labels: Record<string, string>) => void emitted.push(labels.input!));
    expect(emitted).toEqual(['main', 'old', 'older']);
  });
});
