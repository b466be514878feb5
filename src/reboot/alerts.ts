// reboot.blockOnAlerts (kured's rule): no reboot while an alert whose name matches the filter
// fires in the fleet's Prometheus (`/api/v1/alerts`); an error asking blocks too (unreachable).
import type { Config } from '../config/schema.js';
import { createPrometheusClient, type PrometheusAlert, type PrometheusClient } from '../prometheus/client.js';
import { errorMessage } from '../util/errors.js';
import type { AlertsCheck } from './decide.js';

/** Our own reboot alerts fire because of the very reboot they would block: never blocking. */
export const OWN_REBOOT_ALERTS: ReadonlySet<string> = new Set(['NixosDesyncRebootRequired', 'NixosDesyncRebootOverdue']);

type Filter = NonNullable<Config['reboot']['blockOnAlerts']>;

/** The whole-name matcher of `alertFilter` (as Prometheus anchors its regex matchers). */
export function alertNameMatcher(filter: string): (name: string) => boolean {
  const re = new RegExp(`^(?:${filter})$`);
  return (name) => re.test(name);
}

/** Names (sorted, once each) of the alerts in `alerts` that block a reboot under `b`. */
export function blockingAlerts(alerts: readonly PrometheusAlert[], b: Pick<Filter, 'alertFilter' | 'firingOnly'>): string[] {
  const matches = alertNameMatcher(b.alertFilter);
  const names = alerts
    .filter((a) => a.state === 'firing' || (!b.firingOnly && a.state === 'pending'))
    .map((a) => a.labels.alertname ?? '')
    .filter((name) => name !== '' && !OWN_REBOOT_ALERTS.has(name) && matches(name));
  return [...new Set(names)].sort();
}

/** The check `decideReboot` asks, or null without `reboot.blockOnAlerts`. `client` for tests. */
export function alertsCheck(config: Config, client?: PrometheusClient): AlertsCheck | null {
  const b = config.reboot.blockOnAlerts;
  if (b === null) return null;
  const prom = client ?? createPrometheusClient(b.prometheus);
  return async () => {
    try {
      return { ok: true, matching: blockingAlerts(await prom.alerts(), b) };
    } catch (err) {
      return { ok: false, error: errorMessage(err).split('\n')[0]! };
    }
  };
}
