// The registry (never prom-client's global one) and one scrape: every collector emits into
// its own buffer, a throwing collector is dropped alone, then the text is rendered.
// Concurrent scrapes share one in-flight render (single-flight), so collection never overlaps.
import { Registry, type Metric } from 'prom-client';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { HostModel } from '../watch/model.js';
import { CATALOG, type MetricName } from './catalog.js';
import type { Collector, CollectorName, Labels } from './collector.js';
import { desyncsCollector } from './desyncs.js';
import { flakeCollector } from './flake.js';
import { prCompatCollector } from './pr-compat.js';
import { runsCollector } from './runs.js';
import { registerRuntimeMetrics } from './runtime.js';
import { systemCollector } from './system.js';
import { upgradeUnitCollector } from './upgrade-unit.js';
import { VERSION } from '../util/version.js';

export interface ExporterOptions {
  config: Config;
  model: HostModel;
  logger: Logger;
  now?: () => Date;
  version?: string;
  /**
   * prom-client's process/Node.js metrics: `minimal` (default: CPU, memory, fds, start time,
   * event-loop lag), `all`, or false (none).
   */
  processMetrics?: boolean | 'minimal' | 'all';
  /** The systemctl program for exporter.upgradeUnit (default `systemctl` from PATH). */
  systemctl?: string;
  env?: NodeJS.ProcessEnv;
  collectors?: Collector[];
  /**
   * Serve one rendering for up to this many ms while nothing it was rendered from changed
   * (the model's snapshots and the clock's second). 0 = every scrape collects (default).
   */
  cacheMs?: number;
}

export interface MetricsExporter {
  registry: Registry;
  contentType: string;
  /** One scrape, rendered in the Prometheus text format. */
  metrics(): Promise<string>;
  /** Outcome of the last scrape per collector (landing page, healthz). */
  readonly lastOutcome: Partial<Record<CollectorName, string | null>>;
  readonly scrapes: number;
}



export function defaultCollectors(config: Config, opts: { systemctl?: string; env?: NodeJS.ProcessEnv } = {}): Collector[] {
  const list = [desyncsCollector(), runsCollector(), systemCollector()];
  if (config.exporter.prDesyncDir) list.push(prCompatCollector());
  if (config.exporter.upgradeUnit) list.push(upgradeUnitCollector({ unit: config.exporter.upgradeUnit, systemctl: opts.systemctl, env: opts.env }));
  if (config.exporter.flakeLock) list.push(flakeCollector());
  return list;
}

export function createMetricsExporter(opts: ExporterOptions): MetricsExporter {
  const { config, model, logger: log } = opts;
  const now = opts.now ?? (() => new Date());
  const registry = new Registry();
  const runtime = opts.processMetrics === true ? 'all' : opts.processMetrics ?? config.exporter.runtimeMetrics;
  if (runtime) registerRuntimeMetrics(registry, runtime);
  // Each family is a plain object the registry renders: its samples are exactly what the
  // collectors emitted in this scrape (an unset family has no sample, i.e. it is absent).
  const families = new Map<MetricName, Family>();
  for (const [name, def] of Object.entries(CATALOG) as Array<[MetricName, (typeof CATALOG)[MetricName]]>) {
    const fam = new Family(name, def.help, def.type);
    families.set(name, fam);
    registry.registerMetric(fam as unknown as Metric);
  }
  const set = (name: MetricName, labels: Labels, value: number): void => families.get(name)!.set(labels, value);
  const collectors = opts.collectors ?? defaultCollectors(config, { systemctl: opts.systemctl, env: opts.env });
  const version = opts.version ?? VERSION;
  const lastOutcome: Partial<Record<CollectorName, string | null>> = {};
  let inFlight: Promise<string> | null = null;
  let scrapes = 0;
  const cacheMs = opts.cacheMs ?? 0;
  // What the last rendering was made from: any watcher refresh replaces a snapshot object.
  let cache: { state: unknown; system: unknown; pr: unknown; flake: unknown; second: number; at: number; text: string } | null = null;
  const second = (): number => Math.floor(now().getTime() / 1000);

  async function scrape(): Promise<string> {
    // Let every request already waiting in this event-loop turn join this scrape before it
    // collects (the check phase runs after the poll phase): under many concurrent scrapers
    // one collection serves them all, and a scrape that comes after it still collects anew.
    await new Promise<void>((resolve) => setImmediate(resolve));
    scrapes += 1;
    // Polled sources (systemctl) refresh first, each behind its own cache; they never reject.
    await Promise.all(collectors.map((c) => c.prepare?.().catch(() => undefined)));
    for (const f of families.values()) f.reset();
    set('nixos_desync_build_info', { version }, 1);
    const ctx = { config, model, now: now() };
    const from = { state: model.state, system: model.system, pr: model.pr, flake: model.flake, second: Math.floor(ctx.now.getTime() / 1000) };
    for (const c of collectors) {
      const t0 = process.hrtime.bigint();
      const buf: Array<[MetricName, Labels, number]> = [];
      let error: string | null;
      try {
        error = c.collect(ctx, (n, l, v) => void buf.push([n, l, v]));
      } catch (err) {
        buf.length = 0;
        error = `collector failed: ${errorMessage(err)}`;
      }
      for (const [n, l, v] of buf) set(n, l, v);
      if ((lastOutcome[c.name] ?? null) !== error) {
        if (error) log.warn('collector failing', { collector: c.name, error });
        else if (c.name in lastOutcome) log.info('collector recovered', { collector: c.name });
      }
      lastOutcome[c.name] = error;
      set('nixos_desync_collector_success', { collector: c.name }, error === null ? 1 : 0);
      set('nixos_desync_collector_duration_seconds', { collector: c.name }, Number(process.hrtime.bigint() - t0) / 1e9);
    }
    const text = await registry.metrics();
    if (cacheMs > 0) cache = { ...from, at: Date.now(), text };
    return text;
  }

  return {
    registry,
    contentType: registry.contentType,
    async metrics() {
      // Every failure alertable within one scrape, whatever the watchers saw (issue 18 item 10).
      await model.recheck();
      const c = cache;
      if (c && Date.now() - c.at < cacheMs && c.state === model.state && c.system === model.system && c.pr === model.pr && c.flake === model.flake && c.second === second()) {
        return Promise.resolve(c.text);
      }
      inFlight ??= scrape().finally(() => {
        inFlight = null;
      });
      return inFlight;
    },
    lastOutcome,
    get scrapes() {
      return scrapes;
    },
  };
}

/** A metric family as prom-client's registry renders it (name, help, type, values). */
class Family {
  private values: Array<{ labels: Labels; value: number }> = [];
  private readonly index = new Map<string, number>();
  constructor(readonly name: string, readonly help: string, readonly type: 'gauge' | 'counter') {}
  reset(): void {
    this.values = [];
    this.index.clear();
  }
  set(labels: Labels, value: number): void {
    // Label names are identifiers and values are JSON-quoted: the key is unique per label set.
    const names = Object.keys(labels);
    if (names.length > 1) names.sort();
    let key = '';
    for (const n of names) key += `${n}=${JSON.stringify(labels[n])},`;
    const i = this.index.get(key);
    if (i !== undefined) this.values[i] = { labels, value };
    else {
      this.index.set(key, this.values.length);
      this.values.push({ labels, value });
    }
  }
  get(): { name: string; help: string; type: string; aggregator: string; values: Array<{ labels: Labels; value: number }> } {
    return { name: this.name, help: this.help, type: this.type, aggregator: 'sum', values: this.values };
  }
}
