// A phase that no signal may cut short (a rollback): the CLI's second SIGTERM/SIGINT, which
// otherwise exits at once, waits while one runs. One per process, created by the CLI entry.
export interface Shield {
  /** True while a shielded phase runs. */
  readonly active: boolean;
  /** Runs `fn` as a shielded phase. */
  hold<T>(fn: () => Promise<T>): Promise<T>;
}

export function createShield(): Shield {
  let depth = 0;
  return {
    get active() {
      return depth > 0;
    },
    async hold(fn) {
      depth += 1;
      try {
        return await fn();
      } finally {
        depth -= 1;
      }
    },
  };
}

/** Runs `fn` as a shielded phase of `shield` (as is, without one: a library caller with no CLI signals). */
export function shielded<T>(shield: Shield | undefined, fn: () => Promise<T>): Promise<T> {
  return shield ? shield.hold(fn) : fn();
}
