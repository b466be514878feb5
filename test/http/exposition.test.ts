// Which format and encoding a scraper gets, and the OpenMetrics conversion of the text format.
import { describe, expect, it } from 'vitest';
import { acceptsGzip, negotiateFormat, toOpenMetrics } from '../../src/http/exposition.js';

// What Prometheus 2.42 sends with every scrape (scrape/scrape.go, acceptHeader).
const PROMETHEUS_ACCEPT = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

describe('negotiateFormat', () => {
  it.each([
    [undefined, 'text'],
    ['', 'text'],
    ['*/*', 'text'],
    ['text/plain', 'text'],
    ['text/plain;version=0.0.4', 'text'],
    [PROMETHEUS_ACCEPT, 'openmetrics'],
    ['application/openmetrics-text', 'openmetrics'],
    ['application/openmetrics-text; version=0.0.1', 'openmetrics'],
    // Asked for, but less than the text format: text.
    ['text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5', 'text'],
    // An OpenMetrics version this exporter does not write, or refused with q=0: text.
    ['application/openmetrics-text;version=2.0.0', 'text'],
    ['application/openmetrics-text;q=0', 'text'],
    ['application/json', 'text'],
  ] as const)('Accept %j → %s', (accept, format) => {
    expect(negotiateFormat(accept)).toBe(format);
  });
});

describe('acceptsGzip', () => {
  it.each([
    [undefined, false],
    ['', false],
    ['identity', false],
    ['gzip', true],
    ['deflate, gzip;q=0.8', true],
    ['gzip;q=0', false],
    ['*', true],
    ['*;q=0.5, gzip;q=0', false],
    ['br', false],
  ] as const)('Accept-Encoding %j → %s', (header, gzip) => {
    expect(acceptsGzip(header)).toBe(gzip);
  });
});

describe('toOpenMetrics', () => {
  const text = [
    '# HELP nixos_desync_runs_total Upgrade runs by result (persisted, survives restarts).',
    '# TYPE nixos_desync_runs_total counter',
    'nixos_desync_runs_total{result="success"} 3',
    'nixos_desync_runs_total{result="failure"} 1',
    '',
    '# HELP nixos_desync_lag_rebuilds Rebuilds since the "pin" followed.',
    '# TYPE nixos_desync_lag_rebuilds gauge',
    'nixos_desync_lag_rebuilds{desync="a\\"b"} 2',
    '',
    '# HELP odd_counter A counter without the suffix.',
    '# TYPE odd_counter counter',
    'odd_counter 5',
    '',
    '# HELP legacy Untyped.',
    '# TYPE legacy untyped',
    'legacy NaN',
    '',
  ].join('\n');

  it('names counter families without _total (samples keep it), escapes " in HELP, ends with # EOF', () => {
    expect(toOpenMetrics(text)).toBe([
      '# HELP nixos_desync_runs Upgrade runs by result (persisted, survives restarts).',
      '# TYPE nixos_desync_runs counter',
      'nixos_desync_runs_total{result="success"} 3',
      'nixos_desync_runs_total{result="failure"} 1',
      '# HELP nixos_desync_lag_rebuilds Rebuilds since the \\"pin\\" followed.',
      '# TYPE nixos_desync_lag_rebuilds gauge',
      'nixos_desync_lag_rebuilds{desync="a\\"b"} 2',
      '# HELP odd_counter A counter without the suffix.',
      '# TYPE odd_counter counter',
      'odd_counter_total 5',
      '# HELP legacy Untyped.',
      '# TYPE legacy unknown',
      'legacy NaN',
      '# EOF',
      '',
    ].join('\n'));
  });

  it('an empty exposition is just # EOF', () => {
    expect(toOpenMetrics('')).toBe('# EOF\n');
  });
});
