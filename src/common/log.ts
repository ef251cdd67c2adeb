/**
 * Logging in oslo.log's shape (its default logging_context_format_string):
 *   2026-11-23 18:40:01.123 4242 INFO nova_docker.rpc.server [None req-… user project - dom dom] [instance: uuid] message
 * and `[-]` in place of the context for lines without a request.
 * Secrets never reach a transport: `redact` masks URL passwords and the values
 * of secret-named keys in both the message and its metadata.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import winston from 'winston';
import TransportStream from 'winston-transport';

export type Logger = winston.Logger;

export interface LogOptions {
  debug?: boolean;
  /** [DEFAULT] log_file: relative to logDir when both are set (oslo's _get_log_file_path). */
  logFile?: string | undefined;
  /** [DEFAULT] log_dir: alone, logs go to `<log_dir>/nova-docker.log`. */
  logDir?: string | undefined;
  /** Silence output entirely (unit tests). */
  silent?: boolean;
}

const SECRET_NAME = 'pass(?:word)?|token|secret|credential|auth_key|private_key';
const SECRET_KEY = new RegExp(`(?:${SECRET_NAME})$`, 'i');
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)([^@\s]+)(@)/gi;
/*
 * Inline secrets only in the forms code writes them, so prose such as
 * "admin password: containers have none" stays readable: an identifier
 * ending in a secret name followed directly by `=` (kwargs, query strings),
 * a quoted key with a quoted value (JSON, Python reprs), and the headers that
 * carry credentials.
 */
const KEY = `[\\w-]*(?:${SECRET_NAME})`;
const INLINE_SECRETS: readonly RegExp[] = [
  new RegExp(`((?<![\\w-])${KEY}=)([^\\s"',;&}\\])]+)`, 'gi'),
  new RegExp(`("${KEY}"\\s*:\\s*")((?:[^"\\\\]|\\\\.)+)`, 'gi'),
  // the same inside a JSON string (an oslo envelope's `oslo.message`)
  new RegExp(`(\\\\"${KEY}\\\\"\\s*:\\s*\\\\")([^"\\\\]+)`, 'gi'),
  new RegExp(`('${KEY}'\\s*:\\s*')((?:[^'\\\\]|\\\\.)+)`, 'gi'),
  /((?<![\w-])(?:x-auth-token|x-subject-token|x-service-token|x-registry-auth)\s*:\s*)([^\s"',}]+)/gi,
  /((?<![\w-])authorization\s*:\s*(?:basic|bearer)\s+)([^\s"',}]+)/gi,
];

export const MASK = '***';

/** Masks secrets in a free-text string. */
export function redactText(text: string): string {
  let out = text.replace(URL_PASSWORD, `$1${MASK}$3`);
  for (const re of INLINE_SECRETS) out = out.replace(re, `$1${MASK}`);
  return out;
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
  // oslo prints a missing global request id as Python's None
  const ctx = f.request_id
    ? `[${f.global_request_id ?? 'None'} ${f.request_id} ${f.user_identity ?? '- - - - -'}]`
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

/** oslo.log's _get_log_file_path: log_file inside log_dir, or `<log_dir>/<binary>.log`, or none (stderr). */
export function logFilePath(logFile: string | undefined, logDir: string | undefined): string | undefined {
  // os.path.join: an absolute log_file (`$log_dir/compute.log`) stands alone
  if (logFile && logDir) return isAbsolute(logFile) ? logFile : join(logDir, logFile);
  if (logFile) return logFile;
  if (logDir) return join(logDir, 'nova-docker.log');
  return undefined;
}

/**
 * Appends lines to a file with synchronous writes (no line is lost when the
 * process dies) and can reopen it, so logrotate's move-then-SIGHUP works.
 */
export class LogFileTransport extends TransportStream {
  private fd: number;

  constructor(readonly path: string) {
    super();
    this.fd = openSync(path, 'a');
  }

  override log(info: winston.Logform.TransformableInfo, next: () => void): void {
    const line = info[Symbol.for('message')];
    writeSync(this.fd, `${typeof line === 'string' ? line : String(info.message)}\n`);
    next();
  }

  /** Opens the path afresh (a rotated file was moved away), then closes the old descriptor. */
  reopen(): void {
    const fd = openSync(this.path, 'a');
    const old = this.fd;
    this.fd = fd;
    closeSync(old);
  }

  override close(): void {
    closeSync(this.fd);
  }
}

/** Reopens every log file of `logger` (SIGHUP); returns their paths. */
export function reopenLogFiles(logger: Logger): string[] {
  const reopened: string[] = [];
  for (const t of logger.transports) {
    if (t instanceof LogFileTransport) {
      t.reopen();
      reopened.push(t.path);
    }
  }
  return reopened;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const file = logFilePath(opts.logFile, opts.logDir);
  const transports: winston.transport[] = file
    ? [new LogFileTransport(file)]
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
