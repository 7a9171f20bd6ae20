// Structured logs (pino, JSON lines on stderr). Everything that logs takes
// a Logger, so tests can pass a silent one.
import pino from 'pino';

export type Logger = pino.Logger;

/** flannel's -v counts up; 0 = info, 1 = debug, 2+ = trace. */
export function createLogger(verbosity = 0, name = 'weft'): Logger {
  const level = verbosity >= 2 ? 'trace' : verbosity === 1 ? 'debug' : 'info';
  return pino({ name, level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
