import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { emitReboot } from '../../src/metrics/reboot.js';
import { emptyState } from '../../src/state/model.js';
import type { RebootReason } from '../../src/reboot/triggers.js';
import type { HostModel } from '../../src/watch/model.js';

const kernel: RebootReason = { trigger: 'kernel', booted: '/nix/store/a', next: '/nix/store/b' };

function scrape(raw: unknown, opts: { reasons?: RebootReason[]; now: string; generationAt?: string; state?: ReturnType<typeof emptyState> }): Map<string, number> {
  const config = parseConfig(raw);
  const model = {
    state: { state: opts.state ?? emptyState() },
    system: { generationTimestamp: new Date(opts.generationAt ?? '2026-01-01T00:00:00Z'), reboot: { booted: null, running: null, next: null, reasons: opts.reasons ?? [] } },
  } as unknown as HostModel;
  const out = new Map<string, number>();
  emitReboot({ config, model, now: new Date(opts.now) }, (name, labels, value) => {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',');
    out.set(l ? `${name}{${l}}` : name, value);
  });
  return out;
}

describe('reboot metrics', () => {
  it('nothing required: no trigger series, every block 0, no window series without a window', () => {
    const m = scrape({}, { now: '2026-01-05T12:00:00Z' });
    expect([...m.keys()].filter((k) => k.startsWith('nixos_desync_system_reboot_triggers'))).toEqual([]);
    expect([...m.keys()].filter((k) => k.startsWith('nixos_desync_reboot_blocked'))).toEqual([]);
    expect(m.has('nixos_desync_reboot_window_next_timestamp_seconds')).toBe(false);
    expect(m.has('nixos_desync_last_boot_health_success')).toBe(false);
  });

  it('required, enabled, outside the window: blocked by the window; next start exported', () => {
    const m = scrape({ reboot: { enable: true, window: { start: '02:00', end: '05:00', timezone: 'UTC' } } },
      { reasons: [kernel], now: '2026-01-05T12:00:00Z', generationAt: '2026-01-02T12:00:00Z' });
    expect(m.get('nixos_desync_system_reboot_triggers{trigger="kernel"}')).toBe(1);
    expect(m.get('nixos_desync_reboot_blocked{reason="window"}')).toBe(1);
    expect(m.has('nixos_desync_reboot_blocked{reason="disabled"}')).toBe(false);
    expect(m.get('nixos_desync_reboot_window_next_timestamp_seconds')).toBe(Date.parse('2026-01-06T02:00:00Z') / 1000);
  });

  it('disabled; alerts from the last decision only while it is about this boot default; the last boot', () => {
    const state = emptyState();
    state.reboot.lastDecision = { at: '2026-01-03T03:00:00Z', blocked: 'alerts', message: 'NodeDown fires' };
    state.reboot.lastBoot = { at: '2026-01-01T00:00:00Z', booted: '/nix/store/a', success: false, error: 'x' };
    const m = scrape({}, { reasons: [kernel], now: '2026-01-05T12:00:00Z', generationAt: '2026-01-02T12:00:00Z', state });
    expect(m.get('nixos_desync_reboot_blocked{reason="disabled"}')).toBe(1);
    expect(m.get('nixos_desync_last_boot_health_success')).toBe(0);
    // Enabled, inside the window: the alerts of the last decision block it, while it is about this boot default.
    const on = { reboot: { enable: true } };
    expect(scrape(on, { reasons: [kernel], now: '2026-01-05T12:00:00Z', generationAt: '2026-01-02T12:00:00Z', state }).get('nixos_desync_reboot_blocked{reason="alerts"}')).toBe(1);
    const older = scrape(on, { reasons: [kernel], now: '2026-01-05T12:00:00Z', generationAt: '2026-01-04T12:00:00Z', state });
    expect([...older.keys()].filter((k) => k.startsWith('nixos_desync_reboot_blocked'))).toEqual([]);
  });

  it('initrd and kernel-modules are not repeated next to kernel', () => {
    const reasons: RebootReason[] = [kernel, { ...kernel, trigger: 'initrd' }, { ...kernel, trigger: 'kernel-modules' }, { trigger: 'kernel-params', booted: 'a', next: 'b' }];
    const m = scrape({}, { reasons, now: '2026-01-05T12:00:00Z' });
    expect([...m.keys()].filter((k) => k.startsWith('nixos_desync_system_reboot_triggers'))).toEqual(['nixos_desync_system_reboot_triggers{trigger="kernel"}', 'nixos_desync_system_reboot_triggers{trigger="kernel-params"}']);
    expect(scrape({}, { reasons: [{ ...kernel, trigger: 'initrd' }], now: '2026-01-05T12:00:00Z' }).get('nixos_desync_system_reboot_triggers{trigger="initrd"}')).toBe(1);
  });
});
