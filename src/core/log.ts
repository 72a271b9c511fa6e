// Structured logging (pino). Fastify attaches the request id to every request-scoped line.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level = process.env.STRATUS_LOG_LEVEL ?? 'info', name = 'stratus'): Logger {
  return pino({ level, name, base: { pid: process.pid } });
}
