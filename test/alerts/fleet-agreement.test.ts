// The fleet counts (alerts/nixos-desync-fleet.rules.yml) say "the hosts this alert fires for":
// each count holds its alert's expression verbatim (whitespace aside), so a threshold changed in
// one file and not the other fails here. alerts/tests/fleet-recording.yml checks the same by
// evaluation (stale count = firing NixosDesyncUpgradeStale).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
type Rule = { alert?: string; record?: string; expr: string };
const load = (f: string): Rule[] =>
  (parseYaml(readFileSync(path.join(ROOT, f), 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const alerts = new Map(load('alerts/nixos-desync.rules.yml').filter((r) => r.alert).map((r) => [r.alert!, r.expr]));
const records = new Map(load('alerts/nixos-desync-fleet.rules.yml').filter((r) => r.record).map((r) => [r.record!, r.expr]));
const squash = (s: string): string => s.replace(/\s+/g, '');

/** Fleet count → the alert whose firing hosts it counts. */
const COUNTS: Record<string, string> = {
  'job:nixos_desync_hosts_stale:count': 'NixosDesyncUpgradeStale',
  'job:nixos_desync_hosts_failing:count': 'NixosDesyncUpgradeFailing',
  'job:nixos_desync_hosts_out_of_date:count': 'NixosDesyncNixpkgsOutOfDate',
  'job:nixos_desync_hosts_reboot_required:count': 'NixosDesyncRebootRequired',
  'instance:nixos_desync_desyncs_breached:count': 'NixosDesyncMaxAgeBreached',
};

describe('fleet counts use their alert\'s expression', () => {
  it.each(Object.entries(COUNTS))('%s counts what %s fires for', (record, alert) => {
    const r = records.get(record);
    const a = alerts.get(alert);
    expect(r, record).toBeDefined();
    expect(a, alert).toBeDefined();
    expect(squash(r!), `${record} must contain ${alert}'s expression`).toContain(squash(a!));
  });
});
