/**
 * Logging in oslo.log's shape:
 *   2026-11-23 18:40:01.123 4242 INFO nova_docker.rpc.server [req-… user project] [instance: uuid] message
 * Secrets never reach a transport: `redact` masks URL passwords and the values
 * of secret-named keys in both the message and its metadata.
 */
import winston from 'winston';

export type Logger = winston.Logger;

export interface LogOptions {
  debug?: boolean;
  logFile?: string | undefined;
  /** Silence output entirely (unit tests). */
  silent?: boolean;
}

const SECRET_KEY = /(pass(word)?|token|secret|credential|auth_key|private_key)$/i;
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)([^@\s]+)(@)/gi;
const INLINE_SECRET =
  /((?:"|')?(?:[a-z_]*pass(?:word)?|[a-z_]*token|x-auth-token|x-subject-token)(?:"|')?\s*[:=]\s*(?:"|')?)([^"',\s}]+)/gi;

export const MASK = '***';

/** Masks secrets in a free-text string. */
export function redactText(text: string): string {
  return text.replace(URL_PASSWORD, `$1${MASK}$3`).replace(INLINE_SECRET, `$1${MASK}`);
}

/** Deep copy of `value` with secret-named keys masked and URL passwords hidden. */
export function redact(value: unknown, depth = 0): unknown {
  if (depth > 8) return value;
  if (typeof value === 'string') return redactText(value);
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1));
  if (value !== null && typeof value === 'object' && !(value instanceof Error)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = SECRET_KEY.test(k) && v !== null && v !== undefined && v !== '' ? MASK : redact(v, depth + 1);
    }
    return out;
  }
  return value;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

function osloTimestamp(d: Date): string {
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

const LEVELS: Record<string, string> = {
  error: 'ERROR',
  warn: 'WARNING',
  info: 'INFO',
  debug: 'DEBUG',
};

/** Fields a log call may carry that the line format knows about. */
export interface LogContextFields {
  logger?: string;
  request_id?: string;
  global_request_id?: string;
  user_identity?: string;
  instance_uuid?: string;
}

const KNOWN = new Set([
  'level',
  'message',
  'logger',
  'request_id',
  'global_request_id',
  'user_identity',
  'instance_uuid',
]);

export const osloFormat = winston.format.printf((info) => {
  const f = info as winston.Logform.TransformableInfo & LogContextFields;
  const ctx = f.request_id
    ? `[${f.global_request_id ?? '-'} ${f.request_id} ${f.user_identity ?? '- - - - -'}]`
    : '[-]';
  const instance = f.instance_uuid ? `[instance: ${f.instance_uuid}] ` : '';
  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(f)) if (!KNOWN.has(k) && typeof k === 'string') extra[k] = v;
  const tail = Object.keys(extra).length ? ` ${JSON.stringify(redact(extra))}` : '';
  const stack =
    typeof info.stack === 'string' && (info.level === 'error' || info.level === 'debug') ? `\n${info.stack}` : '';
  const level = LEVELS[info.level] ?? info.level.toUpperCase();
  return `${osloTimestamp(new Date())} ${process.pid} ${level} ${f.logger ?? 'nova_docker'} ${ctx} ${instance}${redactText(String(info.message))}${tail}${redactText(stack)}`;
});

export function createLogger(opts: LogOptions = {}): Logger {
  const transports: winston.transport[] = opts.logFile
    ? [new winston.transports.File({ filename: opts.logFile })]
    : [new winston.transports.Stream({ stream: process.stderr })];
  return winston.createLogger({
    level: opts.debug ? 'debug' : 'info',
    silent: opts.silent ?? false,
    format: osloFormat,
    transports,
  });
}

/** A logger that drops everything: the default for library code under unit test. */
export function nullLogger(): Logger {
  return createLogger({ silent: true });
}
