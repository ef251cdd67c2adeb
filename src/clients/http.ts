/**
 * The one axios factory every HTTP client of the agent uses: timeouts, a
 * `nova-docker/<version>` User-Agent, no proxies (the agent talks to its
 * control plane directly), no redirects (they would make follow-redirects
 * buffer streamed request bodies), unlimited body sizes (image streams), and
 * every failure turned into the shared HttpError taxonomy.
 *
 * Errors never carry request headers: the axios error (whose config holds the
 * X-Auth-Token) is replaced by a plain Error naming only the code and message.
 */
import { readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import axios, { AxiosError, type AxiosInstance, type AxiosRequestConfig, type RawAxiosRequestHeaders } from 'axios';
import { AgentError, type ErrorFields } from '../common/errors.js';
import { redactText } from '../common/log.js';
import { httpErrorFor, type ServiceName } from './errors.js';

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export const USER_AGENT = `nova-docker/${readVersion()}`;

/** What an outgoing call needs from the request it serves. */
export interface CallContext {
  /** The Keystone token of the request's user (RPC context `auth_token`): a secret. */
  authToken?: string | undefined;
  /** The request id; sent as X-OpenStack-Request-ID unless a global one is given. */
  requestId?: string | undefined;
  /** Nova's global_request_id: takes precedence for X-OpenStack-Request-ID. */
  globalRequestId?: string | undefined;
}

export const REQUEST_ID_HEADER = 'X-OpenStack-Request-ID';

/** Headers that tie a call to the request it serves (never the token). */
export function contextHeaders(ctx: CallContext | undefined): Record<string, string> {
  const id = ctx?.globalRequestId ?? ctx?.requestId;
  return id ? { [REQUEST_ID_HEADER]: id } : {};
}

export interface HttpClientOptions {
  service: ServiceName;
  baseURL?: string | undefined;
  /**
   * Socket idle timeout in ms: a connect that does not complete, or a response
   * (including a streamed body) that stalls this long, fails. Default 60 s.
   */
  timeoutMs?: number | undefined;
  /** Unix socket (the Docker Engine). */
  socketPath?: string | undefined;
  headers?: RawAxiosRequestHeaders | undefined;
  /** Fields to put on every error (e.g. image_id is per call: use withErrorFields instead). */
  fields?: ErrorFields | undefined;
}

const BODY_SNIPPET = 512;

function pathOf(config: AxiosRequestConfig | undefined): string {
  const url = config?.url ?? '';
  try {
    return new URL(url, config?.baseURL ?? 'http://localhost').pathname;
  } catch {
    return url.split('?')[0] ?? '';
  }
}

async function readSnippet(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        stream.removeListener('data', onData);
        resolve();
      };
      const onData = (c: Buffer | string): void => {
        const b = typeof c === 'string' ? Buffer.from(c) : c;
        chunks.push(b);
        size += b.length;
        if (size >= BODY_SNIPPET) done();
      };
      const timer = setTimeout(done, 2000);
      stream.on('data', onData);
      stream.once('end', done);
      stream.once('error', done);
    });
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).toString('utf8', 0, Math.min(size, BODY_SNIPPET));
}

function isReadable(v: unknown): v is Readable {
  return v !== null && typeof v === 'object' && typeof (v as Readable).pipe === 'function';
}

async function bodySnippet(data: unknown): Promise<string | undefined> {
  if (data === undefined || data === null || data === '') return undefined;
  let text: string;
  if (isReadable(data)) text = await readSnippet(data);
  else if (typeof data === 'string') text = data;
  else if (Buffer.isBuffer(data)) text = data.toString('utf8', 0, BODY_SNIPPET);
  else if (data instanceof ArrayBuffer) text = Buffer.from(data).toString('utf8', 0, BODY_SNIPPET);
  else {
    try {
      text = JSON.stringify(data) ?? '';
    } catch {
      text = '(unprintable body)';
    }
  }
  const t = redactText(text.slice(0, BODY_SNIPPET).trim());
  return t === '' ? undefined : t;
}

/** Converts whatever axios threw into an HttpError (or AgentError for a cancel), without secrets. */
export async function toHttpError(service: ServiceName, err: unknown, fields?: ErrorFields): Promise<Error> {
  if (!(err instanceof AxiosError)) return err instanceof Error ? err : new Error(String(err));
  const method = (err.config?.method ?? 'get').toUpperCase();
  const path = pathOf(err.config);
  if (err.code === AxiosError.ERR_CANCELED) {
    return new AgentError(`${service} ${method} ${path}: canceled`, { fields: { ...fields, service } });
  }
  const cause = new Error(`${err.code ?? 'ERROR'}: ${err.message}`);
  const res = err.response;
  if (!res) {
    return httpErrorFor({ service, method, path, body: `${err.code ?? 'error'}: ${err.message}`, cause, fields });
  }
  const rid = res.headers['x-openstack-request-id'] as unknown;
  return httpErrorFor({
    service,
    method,
    path,
    status: res.status,
    body: await bodySnippet(res.data),
    ...(typeof rid === 'string' ? { remoteRequestId: rid } : {}),
    cause,
    fields,
  });
}

/** Builds an axios instance whose errors are HttpErrors of `service`. */
export function createHttpClient(opts: HttpClientOptions): AxiosInstance {
  const instance = axios.create({
    ...(opts.baseURL ? { baseURL: opts.baseURL } : {}),
    ...(opts.socketPath ? { socketPath: opts.socketPath } : {}),
    timeout: opts.timeoutMs ?? 60_000,
    proxy: false,
    maxRedirects: 0,
    maxBodyLength: Infinity,
    maxContentLength: Infinity,
    headers: { 'User-Agent': USER_AGENT, ...opts.headers },
  });
  instance.interceptors.response.use(undefined, async (err: unknown) => {
    throw await toHttpError(opts.service, err, opts.fields);
  });
  return instance;
}
