/**
 * The one HTTP client every service client of the agent uses, on node:http:
 * timeouts, a `nova-docker/<version>` User-Agent, no proxies (the agent talks
 * to its control plane directly), no redirects (a redirect would have to
 * replay a streamed request body), bodies streamed both ways without limits
 * (image streams), and, for a named service, every failure turned into the
 * shared HttpError taxonomy.
 *
 * Not axios: importing axios (and its form-data / proxy / redirect
 * dependencies) alone cost the agent ~25 MB of resident memory, more than a
 * third of its idle footprint, for the handful of features used here.
 *
 * Errors never carry request headers: a failure names only the method, the
 * path (never the query) and the code, so no X-Auth-Token can leak.
 */
import { readFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
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

/**
 * How the answer's body is handed over: `json` parses it when it is JSON (and
 * leaves other text as a string), `text` is the string, `buffer` the bytes,
 * `stream` the response itself (the caller must consume or destroy it).
 */
export type ResponseType = 'json' | 'text' | 'buffer' | 'stream';

export interface RequestOptions {
  headers?: Record<string, string | undefined> | undefined;
  responseType?: ResponseType | undefined;
  /** Which statuses are answers rather than failures (default: 2xx). */
  validateStatus?: ((status: number) => boolean) | undefined;
  /** Socket idle timeout in ms for this call (0: none); default the client's. */
  timeout?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface HttpRequest extends RequestOptions {
  method: string;
  /** A path joined to the client's base URL, or an absolute URL. */
  url: string;
  /** A stream or bytes are sent as they are; a string as UTF-8; anything else as JSON. */
  data?: unknown;
}

export interface HttpResponse<T = unknown> {
  status: number;
  headers: IncomingHttpHeaders;
  data: T;
}

/**
 * A call that got no acceptable answer: `code` is Node's (ECONNREFUSED, …),
 * ETIMEDOUT, ERR_CANCELED, or ERR_BAD_RESPONSE when `response` holds a status
 * the call refused.
 */
export class HttpRequestError extends Error {
  readonly code: string;
  readonly method: string;
  /** The path of the call, without its query string (queries may carry secrets). */
  readonly path: string;
  readonly response: HttpResponse | undefined;

  constructor(
    message: string,
    d: { code: string; method: string; path: string; response?: HttpResponse; cause?: unknown },
  ) {
    super(message, d.cause === undefined ? undefined : { cause: d.cause });
    this.name = 'HttpRequestError';
    this.code = d.code;
    this.method = d.method;
    this.path = d.path;
    this.response = d.response;
  }
}

export interface HttpClientOptions {
  /** With a service, failures are HttpErrors of it; without, HttpRequestErrors. */
  service?: ServiceName | undefined;
  baseURL?: string | undefined;
  /**
   * Socket idle timeout in ms: a connect that does not complete, or a response
   * (including a streamed body) that stalls this long, fails. Default 60 s; 0: none.
   */
  timeoutMs?: number | undefined;
  /** Unix socket (the Docker Engine). */
  socketPath?: string | undefined;
  /** For https: TLS settings (CA, client certificate, verification). */
  httpsAgent?: https.Agent | undefined;
  headers?: Record<string, string> | undefined;
  /** Fields to put on every error (e.g. image_id is per call: use withErrorFields instead). */
  fields?: ErrorFields | undefined;
}

const BODY_SNIPPET = 512;
const ABSOLUTE_URL = /^[a-z][a-z\d+.-]*:\/\//i;

function isReadable(v: unknown): v is Readable {
  return v !== null && typeof v === 'object' && typeof (v as Readable).pipe === 'function';
}

const is2xx = (s: number): boolean => s >= 200 && s < 300;

/** Header names are case-insensitive: the last of each name wins, undefined values drop it. */
function mergeHeaders(...sets: (Record<string, string | undefined> | undefined)[]): Record<string, string> {
  const byLower = new Map<string, [string, string]>();
  for (const set of sets) {
    for (const [k, v] of Object.entries(set ?? {})) {
      if (v === undefined) byLower.delete(k.toLowerCase());
      else byLower.set(k.toLowerCase(), [k, v]);
    }
  }
  return Object.fromEntries(byLower.values());
}

function parseJsonish(text: string): unknown {
  if (text === '') return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export class HttpClient {
  readonly #opts: HttpClientOptions;
  readonly #base: string;

  constructor(opts: HttpClientOptions) {
    this.#opts = opts;
    this.#base = (opts.baseURL ?? (opts.socketPath ? 'http://localhost' : '')).replace(/\/+$/, '');
  }

  get<T = unknown>(url: string, o: RequestOptions = {}): Promise<HttpResponse<T>> {
    return this.request<T>({ ...o, method: 'GET', url });
  }
  head(url: string, o: RequestOptions = {}): Promise<HttpResponse<string>> {
    return this.request<string>({ ...o, method: 'HEAD', url });
  }
  delete<T = unknown>(url: string, o: RequestOptions = {}): Promise<HttpResponse<T>> {
    return this.request<T>({ ...o, method: 'DELETE', url });
  }
  post<T = unknown>(url: string, data: unknown, o: RequestOptions = {}): Promise<HttpResponse<T>> {
    return this.request<T>({ ...o, method: 'POST', url, data });
  }
  put<T = unknown>(url: string, data: unknown, o: RequestOptions = {}): Promise<HttpResponse<T>> {
    return this.request<T>({ ...o, method: 'PUT', url, data });
  }
  patch<T = unknown>(url: string, data: unknown, o: RequestOptions = {}): Promise<HttpResponse<T>> {
    return this.request<T>({ ...o, method: 'PATCH', url, data });
  }

  /** `T` is what the caller expects the body to be; it is not checked. */
  async request<T = unknown>(req: HttpRequest): Promise<HttpResponse<T>> {
    const service = this.#opts.service;
    try {
      return (await this.#send(req)) as HttpResponse<T>;
    } catch (err) {
      throw service ? await toHttpError(service, err, this.#opts.fields) : err;
    }
  }

  #send(req: HttpRequest): Promise<HttpResponse> {
    const method = req.method.toUpperCase();
    const url = new URL(ABSOLUTE_URL.test(req.url) ? req.url : `${this.#base}/${req.url.replace(/^\/+/, '')}`);
    const path = url.pathname;
    const fail = (message: string, code: string, more: { response?: HttpResponse; cause?: unknown } = {}) =>
      new HttpRequestError(message, { code, method, path, ...more });

    let body: Buffer | Readable | undefined;
    let contentType: string | undefined;
    const d = req.data;
    if (d === undefined || d === null) body = undefined;
    else if (isReadable(d)) body = d;
    else if (Buffer.isBuffer(d)) body = d;
    else if (typeof d === 'string') body = Buffer.from(d);
    else {
      body = Buffer.from(JSON.stringify(d));
      contentType = 'application/json';
    }
    const headers = mergeHeaders(
      { Accept: 'application/json, text/plain, */*', 'User-Agent': USER_AGENT },
      contentType ? { 'Content-Type': contentType } : undefined,
      Buffer.isBuffer(body) ? { 'Content-Length': String(body.length) } : undefined,
      this.#opts.headers,
      req.headers,
    );
    const timeout = req.timeout ?? this.#opts.timeoutMs ?? 60_000;
    const signal = req.signal;
    const responseType = req.responseType ?? 'json';
    const accept = req.validateStatus ?? is2xx;

    return new Promise<HttpResponse>((resolve, reject) => {
      if (signal?.aborted) {
        reject(fail('canceled', 'ERR_CANCELED', { cause: signal.reason }));
        return;
      }
      const secure = url.protocol === 'https:';
      const request = (secure ? https : http).request({
        method,
        headers,
        path: `${url.pathname}${url.search}`,
        ...(this.#opts.socketPath
          ? { socketPath: this.#opts.socketPath }
          : { protocol: url.protocol, hostname: url.hostname, port: url.port || undefined }),
        ...(secure && this.#opts.httpsAgent ? { agent: this.#opts.httpsAgent } : {}),
      });
      let response: IncomingMessage | undefined;
      const abort = (err: Error): void => {
        request.destroy(err);
        response?.destroy(err);
      };
      const onAbort = (): void => abort(fail('canceled', 'ERR_CANCELED', { cause: signal?.reason }));
      signal?.addEventListener('abort', onAbort, { once: true });
      const release = (): void => signal?.removeEventListener('abort', onAbort);
      const onTimeout = (): void => abort(fail(`timeout of ${timeout}ms exceeded`, 'ETIMEDOUT'));
      // Until the answer's head arrives a wall clock (a connect may stall before
      // there is a socket to time); from then on the socket's idle time.
      const headTimer = timeout > 0 ? setTimeout(onTimeout, timeout) : undefined;
      if (timeout > 0) request.setTimeout(timeout, onTimeout);
      const asError = (err: Error & { code?: unknown }): HttpRequestError =>
        err instanceof HttpRequestError
          ? err
          : fail(err.message, typeof err.code === 'string' ? err.code : 'ERR_NETWORK', { cause: err });
      request.on('error', (err) => {
        clearTimeout(headTimer);
        release();
        reject(asError(err));
      });
      request.on('response', (res) => {
        clearTimeout(headTimer);
        response = res;
        const status = res.statusCode ?? 0;
        const settle = (data: unknown): void => {
          const answer: HttpResponse = { status, headers: res.headers, data };
          if (accept(status)) resolve(answer);
          else reject(fail(`Request failed with status code ${status}`, 'ERR_BAD_RESPONSE', { response: answer }));
        };
        if (responseType === 'stream') {
          res.once('close', release);
          settle(res);
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.once('error', (err) => {
          release();
          reject(asError(err));
        });
        res.once('end', () => {
          release();
          const buf = Buffer.concat(chunks);
          if (responseType === 'buffer') settle(buf);
          else if (responseType === 'text') settle(buf.toString('utf8'));
          else settle(parseJsonish(buf.toString('utf8')));
        });
      });
      if (isReadable(body)) {
        body.once('error', (err) => request.destroy(err));
        body.pipe(request);
      } else {
        request.end(body);
      }
    });
  }
}

/** Builds the client of `service`: its failures are HttpErrors of that service. */
export function createHttpClient(opts: HttpClientOptions & { service: ServiceName }): HttpClient {
  return new HttpClient(opts);
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

async function bodySnippet(data: unknown): Promise<string | undefined> {
  if (data === undefined || data === null || data === '') return undefined;
  let text: string;
  if (isReadable(data)) text = await readSnippet(data);
  else if (typeof data === 'string') text = data;
  else if (Buffer.isBuffer(data)) text = data.toString('utf8', 0, BODY_SNIPPET);
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

/** Converts an HttpRequestError into an HttpError (or AgentError for a cancel), without secrets. */
export async function toHttpError(service: ServiceName, err: unknown, fields?: ErrorFields): Promise<Error> {
  if (!(err instanceof HttpRequestError)) return err instanceof Error ? err : new Error(String(err));
  const { method, path } = err;
  if (err.code === 'ERR_CANCELED') {
    return new AgentError(`${service} ${method} ${path}: canceled`, { fields: { ...fields, service } });
  }
  const cause = new Error(`${err.code}: ${err.message}`);
  const res = err.response;
  if (!res) {
    return httpErrorFor({ service, method, path, body: `${err.code}: ${err.message}`, cause, fields });
  }
  const rid = res.headers['x-openstack-request-id'];
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
