// The one tiny interface every collector group implements (node_exporter style): at scrape
// time it emits samples read from the in-memory model into a buffer. A collector that throws
// emits nothing; one whose source is unreadable reports an error but may still emit what it
// knows from intact sources. Either way collector_success is 0 and the others are unaffected.
import type { Config } from '../config/schema.js';
import type { HostModel } from '../watch/model.js';
import type { MetricName } from './catalog.js';

export type CollectorName = 'desyncs' | 'runs' | 'system' | 'pr_compat' | 'upgrade_unit' | 'flake';

export interface CollectContext {
  config: Config;
  model: HostModel;
  now: Date;
}

export type Labels = Record<string, string>;
export type Emit = (name: MetricName, labels: Labels, value: number) => void;

export interface Collector {
  readonly name: CollectorName;
  /** Refreshes a polled source before `collect` (cached by the collector; must not reject). */
  prepare?(): Promise<void>;
  /** Emits this collector's samples; returns why its source could not be fully read, or null. */
  collect(ctx: CollectContext, emit: Emit): string | null;
}

/** ISO time → Unix seconds (0 when the event never happened). */
export function unixSeconds(iso: string | null | undefined): number {
  if (!iso) return 0;
  const t = Date.parse(iso);
  return Number.isFinite(t) ? t / 1000 : 0;
}

export const bool = (b: boolean): number => (b ? 1 : 0);
