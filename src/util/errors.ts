// Errors carry a stable `code` (for exit codes and tests) and the `cause` that led to them.
export type ErrorCode =
  | 'E_USAGE'
  | 'E_CONFIG'
  | 'E_LOCKED'
  | 'E_LOCK'
  | 'E_STATE'
  | 'E_STATE_CORRUPT'
  | 'E_UNSAFE_PATH'
  | 'E_COMMAND'
  | 'E_TIMEOUT'
  | 'E_FETCH'
  | 'E_FLAKE_LOCK'
  | 'E_CANDIDATE'
  | 'E_GATE'
  | 'E_NO_PIN'
  | 'E_BREACH'
  | 'E_SYSTEM_BUILD'
  | 'E_ACTIVATE'
  | 'E_HEALTH'
  | 'E_ROLLBACK'
  | 'E_BOOT_PENDING'
  | 'E_REJECTED'
  | 'E_INTERRUPTED'
  | 'E_LISTEN'
  | 'E_NIX'
  | 'E_WEB_CONFIG'
  | 'E_PROMETHEUS_UNREACHABLE'
  | 'E_PROMETHEUS_HTTP'
  | 'E_PROMETHEUS_RESPONSE'
  | 'E_PROMETHEUS_QUERY'
  | 'E_PROMETHEUS_CREDENTIALS'
  | 'E_HELD'
  | 'E_FLAKE_LOCK';

export class DesyncError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;
  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DesyncError';
    this.code = code;
    this.details = options.details ?? {};
  }
}

export function isDesyncError(err: unknown, code?: ErrorCode): err is DesyncError {
  return err instanceof DesyncError && (code === undefined || err.code === code);
}

/** Message of any thrown value, without a stack trace. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
