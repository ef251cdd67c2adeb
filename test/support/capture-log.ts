/** A winston logger whose lines (`LEVEL message`) a test reads. */
import { Writable } from 'node:stream';
import winston from 'winston';

export function capturingLogger(level = 'debug'): { logger: winston.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString().trimEnd());
      cb();
    },
  });
  const logger = winston.createLogger({
    level,
    format: winston.format.printf((info) => `${info.level.toUpperCase()} ${String(info.message)}`),
    transports: [new winston.transports.Stream({ stream: sink })],
  });
  return { logger, lines };
}
