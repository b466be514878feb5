// The words of the `reboot` config keys (weekdays, HH:MM, time zones, trigger names): here, below
// config/schema.ts, so the schema validates them without importing the reboot room above it.

export const WEEKDAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export const HHMM_RE = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;

/** True when `tz` is a time zone this runtime knows (Intl throws a RangeError otherwise). */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Toplevel parts a reboot applies; `switch-inhibitors` is the system's own declaration (nixpkgs). */
export const REBOOT_TRIGGERS = ['kernel', 'initrd', 'kernel-modules', 'firmware', 'kernel-params', 'switch-inhibitors'] as const;
export type RebootTrigger = (typeof REBOOT_TRIGGERS)[number];
/** The contract's default `reboot.triggers`. */
export const DEFAULT_REBOOT_TRIGGERS: RebootTrigger[] = ['kernel', 'initrd', 'kernel-modules', 'firmware', 'kernel-params'];
