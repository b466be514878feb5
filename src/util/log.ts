// The one structured logger: each event has a message and fields; `text` renders the
// message for people (progress lines), `json` renders one object per line for journald/Loki.
export type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  write: (line: string) => void;
  format?: 'text' | 'json';
  level?: Level;
  now?: () => Date;
  base?: Record<string, unknown>;
}

export function createLogger(opts: LoggerOptions): Logger {
  const format = opts.format ?? 'text';
  const min = ORDER[opts.level ?? 'info'];
  const now = opts.now ?? (() => new Date());
  const base = opts.base ?? {};
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>): void => {
    if (ORDER[level] < min) return;
    if (format === 'json') {
      opts.write(JSON.stringify({ time: now().toISOString(), level, msg, ...base, ...fields }) + '\n');
    } else {
      const prefix = level === 'warn' ? 'warning: ' : level === 'error' ? 'error: ' : '';
      opts.write(prefix + msg + '\n');
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger({ ...opts, base: { ...base, ...fields } }),
  };
}

export const silentLogger: Logger = createLogger({ write: () => undefined });
