/** The logging surface the runtime uses. Lines are for people: say what happened and what to do. */
export interface NodeLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
/** Every level, least severe first. */
export const LOG_LEVELS = Object.keys(ORDER) as readonly LogLevel[];

export interface ConsoleLoggerOptions {
  level?: LogLevel;
  /** Prefix after the timestamp, e.g. the node name. */
  prefix?: string;
  /** Where lines go. Default: stdout for debug/info, stderr for warn/error. */
  write?: (level: LogLevel, line: string) => void;
}

/** Timestamped single-line logs: `2025-01-01T12:00:00.000Z [name] WARN message`. */
export function createConsoleLogger(options: ConsoleLoggerOptions = {}): NodeLogger {
  const min = ORDER[options.level ?? 'info'];
  const prefix = options.prefix ? `[${options.prefix}] ` : '';
  const write =
    options.write ??
    ((level: LogLevel, line: string) => (level === 'warn' || level === 'error' ? process.stderr : process.stdout).write(line + '\n'));
  const log = (level: LogLevel) => (message: string) => {
    if (ORDER[level] < min) return;
    const tag = level === 'info' ? '' : `${level.toUpperCase()} `;
    write(level, `${new Date().toISOString()} ${prefix}${tag}${message}`);
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/** A logger that drops everything (tests, library use). */
export const silentLogger: NodeLogger = { debug() {}, info() {}, warn() {}, error() {} };
