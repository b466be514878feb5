// The exporter's own runtime series. "minimal" (default) keeps what a person reads — CPU,
// memory, fds, start time, event-loop lag: 6 samples — out of prom-client's ~60, so a host
// stays within the series budget (70 + 14 per desync) and a fleet of 10,000 hosts fits one
// Prometheus. "all" keeps prom-client's full set (minus the gauges that fail promtool's lint).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { collectDefaultMetrics, type Metric, type Registry } from 'prom-client';

export type RuntimeMetrics = 'minimal' | 'all';

/** prom-client's series kept in minimal mode (each one computes itself alone). */
const KEPT_DEFAULTS = ['process_resident_memory_bytes', 'process_open_fds', 'process_max_fds', 'process_start_time_seconds'];

// These default Node.js gauges end in _total and fail `promtool check metrics`; the
// same numbers stay available per type in nodejs_active_{handles,requests,resources}.
const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Every runtime family name the minimal set exposes (docs and tests). */
export const MINIMAL_RUNTIME_METRICS = [...KEPT_DEFAULTS, 'process_cpu_seconds_total', 'nodejs_eventloop_lag_p99_seconds'].sort();

/** A single-sample family computed at render time. */
function computed(name: string, help: string, type: 'gauge' | 'counter', value: () => number): Metric {
  return {
    name,
    help,
    type,
    aggregator: 'sum',
    get: () => ({ name, help, type, aggregator: 'sum', values: [{ labels: {}, value: value() }] }),
  } as unknown as Metric;
}

export function registerRuntimeMetrics(registry: Registry, mode: RuntimeMetrics): void {
  collectDefaultMetrics({ register: registry });
  for (const n of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(n);
  if (mode === 'all') return;
  const keep = new Set(KEPT_DEFAULTS);
  for (const m of registry.getMetricsAsArray()) if (!keep.has(m.name)) registry.removeSingleMetric(m.name);
  // prom-client computes user, system and total CPU in one family's collect: one sample here.
  registry.registerMetric(computed('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', 'counter', () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }));
  // The 99th percentile of event-loop delay since the previous scrape (prom-client computes
  // it inside nodejs_eventloop_lag_seconds's collect, with six more gauges).
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  registry.registerMetric(computed('nodejs_eventloop_lag_p99_seconds', 'The 99th percentile of the recorded event loop delays.', 'gauge', () => {
    const v = h.count > 0 ? h.percentile(99) / 1e9 : 0;
    h.reset();
    return v;
  }));
}
