// reboot.blockOnAlerts: the name filter (whole name, firing vs pending, our own reboot alerts
// never block), and the check against a real Prometheus with an always-firing rule; a
// Prometheus that does not answer blocks the reboot (reboot_blocked{reason="unreachable"}).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { PrometheusAlert } from '../../src/prometheus/client.js';
import { alertNameMatcher, alertsCheck, blockingAlerts } from '../../src/reboot/alerts.js';
import { decideReboot } from '../../src/reboot/decide.js';
import { freePort, startPrometheus, type StartedPrometheus } from '../helpers/prometheus.js';
import { requireTools } from '../helpers/tools.js';

const alert = (alertname: string, state: PrometheusAlert['state'] = 'firing'): PrometheusAlert => ({ labels: { alertname }, annotations: {}, state, activeAt: null, value: '1' });

describe('the alert filter', () => {
  it('matches the whole alert name, as Prometheus anchors a regex', () => {
    const m = alertNameMatcher('Backup.*|NodeDown');
    expect(m('BackupRunning')).toBe(true);
    expect(m('NodeDown')).toBe(true);
    expect(m('NodeDownSoon')).toBe(false);
    expect(m('LateBackup')).toBe(false);
  });

  it('firing alerts only by default; pending ones with firingOnly false; names once, sorted', () => {
    const alerts = [alert('NodeDown'), alert('BackupRunning', 'pending'), alert('NodeDown'), alert('DiskFull'), alert('Quiet', 'inactive')];
    expect(blockingAlerts(alerts, { alertFilter: '.+', firingOnly: true })).toEqual(['DiskFull', 'NodeDown']);
    expect(blockingAlerts(alerts, { alertFilter: '.+', firingOnly: false })).toEqual(['BackupRunning', 'DiskFull', 'NodeDown']);
    expect(blockingAlerts(alerts, { alertFilter: 'Disk.*', firingOnly: true })).toEqual(['DiskFull']);
  });

  it('our own reboot alerts never block the reboot they ask for; an alert without a name never matches', () => {
    const alerts = [alert('NixosDesyncRebootRequired'), alert('NixosDesyncRebootOverdue'), { ...alert(''), labels: {} }];
    expect(blockingAlerts(alerts, { alertFilter: '.+', firingOnly: true })).toEqual([]);
    expect(blockingAlerts([...alerts, alert('NixosDesyncUpgradeFailing')], { alertFilter: 'NixosDesync.*', firingOnly: true })).toEqual(['NixosDesyncUpgradeFailing']);
  });

  it('without reboot.blockOnAlerts there is no check', () => {
    expect(alertsCheck(parseConfig({}))).toBeNull();
  });
});

const REQUIRED = { booted: '/a', running: '/a', next: '/b', reasons: [{ trigger: 'kernel' as const, booted: '/k1', next: '/k2' }] };

describe.skipIf(!requireTools('prometheus'))('against a real Prometheus (/api/v1/alerts)', () => {
  let dir = '';
  let prom: StartedPrometheus | null = null;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nixos-desync-reboot-alerts-'));
    const rules = join(dir, 'rules.yml');
    await writeFile(rules, ['groups:', '  - name: reboot-test', '    rules:', '      - alert: BackupRunning', '        expr: vector(1)', '      - alert: NixosDesyncRebootRequired', '        expr: vector(1)', ''].join('\n'));
    prom = await startPrometheus(dir, ['global:', '  evaluation_interval: 1s', 'rule_files:', `  - ${JSON.stringify(rules)}`, 'scrape_configs: []', ''].join('\n'));
    // Rules evaluate once a second: wait until the alert fires.
    const check = alertsCheck(parseConfig({ reboot: { blockOnAlerts: { prometheus: prom.url } } }))!;
    for (let i = 0; i < 100; i++) {
      const r = await check();
      if (r.ok && r.matching.length > 0) break;
      await new Promise((res) => setTimeout(res, 100));
    }
  }, 30_000);

  afterAll(async () => {
    await prom?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const config = (blockOnAlerts: Record<string, unknown>) => parseConfig({ reboot: { enable: true, blockOnAlerts: { prometheus: prom!.url, ...blockOnAlerts } } });

  it('a matching alert that fires blocks the reboot (reason alerts), naming it', async () => {
    const c = config({ alertFilter: 'Backup.*' });
    expect(await alertsCheck(c)!()).toEqual({ ok: true, matching: ['BackupRunning'] });
    const d = await decideReboot(c, REQUIRED, new Date(), alertsCheck(c));
    expect(d).toMatchObject({ required: true, blocked: 'alerts', message: expect.stringMatching(/alerts matching reboot.blockOnAlerts.alertFilter fire: BackupRunning$/) });
  });

  it('alerts that do not match (or only our own reboot alert) let it reboot', async () => {
    const c = config({ alertFilter: 'NodeDown|NixosDesyncReboot.*' });
    expect(await alertsCheck(c)!()).toEqual({ ok: true, matching: [] });
    expect(await decideReboot(c, REQUIRED, new Date(), alertsCheck(c))).toMatchObject({ blocked: null, message: expect.stringMatching(/rebooting now$/) });
  });

  it('Prometheus unreachable: blocked (reason unreachable), saying which and why', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const c = parseConfig({ reboot: { enable: true, blockOnAlerts: { prometheus: { url, timeout: '2s' } } } });
    const d = await decideReboot(c, REQUIRED, new Date(), alertsCheck(c));
    expect(d).toMatchObject({ required: true, blocked: 'unreachable' });
    expect(d.message).toContain(`Prometheus (${url}) cannot be asked for alerts (Prometheus ${url}: `);
    expect(d.message).toMatch(/: blocked until it answers$/);
  });
});
