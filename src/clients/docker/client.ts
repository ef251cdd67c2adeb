/**
 * Docker Engine API client (unix socket, or tcp with TLS).
 *
 * - The API version is negotiated once (GET /version): every other call goes to
 *   `/v<min(server ApiVersion, maxApiVersion)>/...`.
 * - Each call declares its success statuses and its no-op statuses (e.g. 304
 *   on start of a running container, 404 on delete of a missing one); any
 *   other answer becomes an HttpError family error from `httpErrorFor` with
 *   service 'docker': 404 NotFoundError, 409 ConflictError, 5xx / refused /
 *   missing socket / timeout / broken stream UnavailableError.
 * - Errors that arrive as `{"error": ...}` lines inside a 200 progress stream
 *   (pull, load) are classified by their text: not-found-ish NotFoundError,
 *   auth-ish UnauthorizedError, network-ish UnavailableError, else HttpError.
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { ErrorFields } from '../../common/errors.js';
import {
  HttpError,
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
  httpErrorFor,
  type HttpErrorDetails,
} from '../errors.js';
import { HttpClient, type HttpResponse } from '../http.js';
import {
  FrameDemuxer,
  LogEntryTail,
  TailBuffer,
  TimestampedLines,
  TruncatedStreamError,
  jsonLines,
  looksMultiplexed,
  splitLogTimestamp,
  type LogEntry,
} from './stream.js';
import type {
  CommitContainerOptions,
  ContainerLogsOptions,
  DockerClientOptions,
  DockerContainerCreateBody,
  DockerContainerCreateResponse,
  DockerContainerInspect,
  DockerContainerStats,
  DockerContainerSummary,
  DockerEvent,
  DockerFilters,
  DockerImageInspect,
  DockerImageSummary,
  DockerInfo,
  DockerProgressLine,
  DockerResources,
  DockerVersion,
  DockerWaitResponse,
  EventsOptions,
  ListContainersOptions,
  ListImagesOptions,
  RegistryAuth,
  RemoveContainerOptions,
  RemoveImageOptions,
  WaitCondition,
} from './types.js';

export const DOCKER_MAX_API_VERSION = '1.41';
const DEFAULT_TIMEOUT_MS = 60_000;
const ERROR_BODY_BYTES = 4096;

type Method = 'GET' | 'POST' | 'DELETE' | 'PUT' | 'HEAD';
type Query = Record<string, string | number | boolean | undefined>;

interface CallSpec {
  method: Method;
  /** Path without the version prefix, e.g. `/containers/json`. */
  path: string;
  query?: Query;
  body?: unknown;
  headers?: Record<string, string>;
  /** Statuses that mean success. */
  ok: readonly number[];
  /** Statuses that mean "nothing to do" (also success; `noop` is set in the result). */
  noop?: readonly number[];
  /** Return the body as a stream (only on success; error bodies are read). */
  stream?: boolean;
  /** Per-call timeout in ms; 0 = none (streams). */
  timeoutMs?: number;
  signal?: AbortSignal;
  fields?: ErrorFields;
  /** Do not prefix `/v1.xx` (GET /version itself). */
  unversioned?: boolean;
  /** A 500 whose message matches is a state conflict the Engine reports badly: treat as 409. */
  conflictText?: RegExp;
}

interface CallResult {
  status: number;
  data: unknown;
  noop: boolean;
  /** The error the request body stream failed with, if it did (also after the response began). */
  bodyError: () => Error | undefined;
}

function isReadable(v: unknown): v is Readable {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as Readable).pipe === 'function' &&
    typeof (v as Readable).on === 'function'
  );
}

/** Compares dotted versions numerically: -1, 0, 1. */
export function compareApiVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** Splits `name[:tag]` / `name@digest` into the repository and the tag-or-digest (default 'latest'). */
export function splitImageRef(ref: string): { repo: string; tag: string } {
  const at = ref.indexOf('@');
  if (at >= 0) return { repo: ref.slice(0, at), tag: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(':');
  if (colon > ref.lastIndexOf('/')) return { repo: ref.slice(0, colon), tag: ref.slice(colon + 1) };
  return { repo: ref, tag: 'latest' };
}

/** X-Registry-Auth value: base64url (with padding, as the Engine's decoder expects) of the JSON. */
export function encodeRegistryAuth(auth: RegistryAuth): string {
  return Buffer.from(JSON.stringify(auth), 'utf8').toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

/**
 * Encodes an id or image reference for a path, keeping `/` (the Engine routes
 * `{name:.*}`) and `:` / `@` (valid in a path segment, as the docker CLI sends them).
 */
function seg(s: string): string {
  return s
    .split('/')
    .map((p) => encodeURIComponent(p).replace(/%3A/gi, ':').replace(/%40/g, '@'))
    .join('/');
}

function errorText(data: unknown): string | undefined {
  if (data === undefined || data === null || data === '') return undefined;
  if (typeof data === 'string') {
    try {
      return errorText(JSON.parse(data)) ?? data;
    } catch {
      return data;
    }
  }
  if (Buffer.isBuffer(data)) return errorText(data.toString('utf8'));
  if (typeof data === 'object' && 'message' in data && typeof data.message === 'string') return data.message;
  return JSON.stringify(data);
}

async function readSome(stream: Readable, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of stream) {
      const b = Buffer.isBuffer(c) ? c : Buffer.from(String(c));
      chunks.push(b);
      n += b.length;
      if (n >= max) break;
    }
  } catch {
    // best effort: an error body that breaks off still gives what arrived
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}

const NOT_FOUND_TEXT = /not found|no such|manifest unknown|does not exist|repository .* not found/i;
const AUTH_TEXT = /unauthori[sz]ed|authentication required|access denied|denied:|forbidden/i;
const NET_TEXT = /connection refused|timeout|timed out|no route|i\/o|EOF|reset by peer|TLS|dial tcp|lookup /i;

/** Classifies an `error` line of a 200 progress stream. */
function streamLineError(d: Omit<HttpErrorDetails, 'body'>, message: string): HttpError {
  const what = `${d.service} ${d.method} ${d.path}`;
  const det: HttpErrorDetails = { ...d, body: message };
  if (NOT_FOUND_TEXT.test(message)) return new NotFoundError(`${what}: ${message}`, det);
  if (AUTH_TEXT.test(message)) return new UnauthorizedError(`${what}: ${message}`, det);
  if (NET_TEXT.test(message)) return new UnavailableError(`${what}: ${message}`, det);
  return new HttpError(`${what}: ${message}`, det);
}

export class DockerClient {
  private readonly http: HttpClient;
  private readonly opts: DockerClientOptions;
  private prefix: Promise<string> | undefined;
  private readonly timeoutMs: number;

  constructor(opts: DockerClientOptions) {
    if (!opts.socketPath === !opts.baseURL) {
      throw new TypeError('DockerClient needs exactly one of socketPath or baseURL');
    }
    this.opts = opts;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    let baseURL: string | undefined;
    let httpsAgent: https.Agent | undefined;
    if (!opts.socketPath) {
      let url = opts.baseURL ?? '';
      if (url.startsWith('tcp://')) url = (opts.tls ? 'https://' : 'http://') + url.slice('tcp://'.length);
      baseURL = url.replace(/\/+$/, '');
      if (url.startsWith('https://')) {
        const t = opts.tls ?? {};
        httpsAgent = new https.Agent({
          keepAlive: true,
          rejectUnauthorized: !t.insecure,
          ...(t.ca ? { ca: readFileSync(t.ca) } : {}),
          ...(t.cert ? { cert: readFileSync(t.cert) } : {}),
          ...(t.key ? { key: readFileSync(t.key) } : {}),
        });
      }
    }
    // No service: this client maps its own failures (the Engine's message texts)
    this.http = new HttpClient({ baseURL, socketPath: opts.socketPath, httpsAgent, timeoutMs: this.timeoutMs });
    if (opts.apiVersion) this.prefix = Promise.resolve(`/v${opts.apiVersion}`);
  }

  /** The negotiated `/v1.xx` prefix (performs GET /version the first time; retried after a failure). */
  async apiPrefix(): Promise<string> {
    if (!this.prefix) {
      const p = this.version().then((v) => {
        const max = this.opts.maxApiVersion ?? DOCKER_MAX_API_VERSION;
        const server = v.ApiVersion || max;
        return `/v${compareApiVersions(server, max) < 0 ? server : max}`;
      });
      this.prefix = p;
      p.catch(() => {
        if (this.prefix === p) this.prefix = undefined;
      });
    }
    return this.prefix;
  }

  private async call(spec: CallSpec): Promise<CallResult> {
    // A body stream that fails (e.g. a hash check of the caller) must abort the
    // request and surface as itself, not crash the process as an unhandled 'error'.
    // Listen before the first await: the stream may fail while the version is negotiated.
    let bodyError: Error | undefined;
    let signal = spec.signal;
    if (isReadable(spec.body)) {
      const ctrl = new AbortController();
      spec.body.on('error', (e: unknown) => {
        bodyError ??= e instanceof Error ? e : new Error(String(e));
        ctrl.abort(e);
      });
      signal = spec.signal ? AbortSignal.any([spec.signal, ctrl.signal]) : ctrl.signal;
    }
    const bodyErrorOf = () => bodyError;
    const prefix = spec.unversioned ? '' : await this.apiPrefix();
    const versionedPath = prefix + spec.path;
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(spec.query ?? {})) {
      if (v === undefined) continue;
      qs.set(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
    }
    const url = qs.size ? `${versionedPath}?${qs.toString()}` : versionedPath;
    const base: Omit<HttpErrorDetails, 'status'> = {
      service: 'docker',
      method: spec.method,
      path: versionedPath,
      ...(spec.fields ? { fields: spec.fields } : {}),
    };
    let res: HttpResponse;
    try {
      res = await this.http.request({
        method: spec.method,
        url,
        data: spec.body,
        headers: spec.headers ?? {},
        responseType: spec.stream ? 'stream' : 'text',
        validateStatus: () => true,
        timeout: spec.timeoutMs ?? this.timeoutMs,
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      if (bodyError !== undefined) throw bodyError;
      if (spec.signal?.aborted) throw spec.signal.reason ?? err;
      const code = err instanceof Error && 'code' in err ? String(err.code) : undefined;
      throw httpErrorFor({ ...base, body: [code, errorMessageOf(err)].filter(Boolean).join(' '), cause: err });
    }
    const status = res.status;
    const isOk = spec.ok.includes(status);
    const isNoop = spec.noop?.includes(status) ?? false;
    if (isOk || isNoop) {
      if (spec.stream) {
        if (isNoop) (res.data as Readable).destroy();
        return { status, data: isNoop ? undefined : res.data, noop: isNoop, bodyError: bodyErrorOf };
      }
      return { status, data: parseBody(res.data), noop: isNoop, bodyError: bodyErrorOf };
    }
    if (bodyError !== undefined) {
      if (spec.stream) (res.data as Readable).destroy();
      throw bodyError;
    }
    const raw = spec.stream ? await readSome(res.data as Readable, ERROR_BODY_BYTES) : res.data;
    const text = errorText(raw);
    const effective = status === 500 && text !== undefined && spec.conflictText?.test(text) ? 409 : status;
    throw httpErrorFor({ ...base, status: effective, ...optionalBody(text) });
  }

  // ---- system -------------------------------------------------------------

  /** GET /version (unversioned path). */
  async version(): Promise<DockerVersion> {
    const r = await this.call({ method: 'GET', path: '/version', ok: [200], unversioned: true });
    return r.data as DockerVersion;
  }

  async info(): Promise<DockerInfo> {
    return (await this.call({ method: 'GET', path: '/info', ok: [200] })).data as DockerInfo;
  }

  async ping(): Promise<void> {
    await this.call({ method: 'GET', path: '/_ping', ok: [200], unversioned: true });
  }

  /**
   * GET /events as parsed JSON objects (one per line, as they arrive), until
   * `until`, the signal aborts (rejects with its reason), or the consumer
   * stops iterating (the connection is closed then). `onOpen` runs once the
   * Engine accepted the subscription. A broken stream throws UnavailableError;
   * an Engine that ends the stream (shutdown) just ends the iteration.
   */
  async *events(opts: EventsOptions = {}): AsyncGenerator<DockerEvent> {
    const r = await this.call({
      method: 'GET',
      path: '/events',
      query: {
        filters: opts.filters ? JSON.stringify(opts.filters) : undefined,
        since: opts.since,
        until: opts.until,
      },
      ok: [200],
      stream: true,
      timeoutMs: 0,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const stream = r.data as Readable;
    try {
      opts.onOpen?.();
      for await (const ev of this.lines(stream, 'GET', '/events', opts.signal)) yield ev as DockerEvent;
    } finally {
      stream.destroy();
    }
  }

  // ---- containers ---------------------------------------------------------

  async listContainers(opts: ListContainersOptions = {}): Promise<DockerContainerSummary[]> {
    const r = await this.call({
      method: 'GET',
      path: '/containers/json',
      query: { all: opts.all, filters: filtersParam(opts.filters) },
      ok: [200],
    });
    return r.data as DockerContainerSummary[];
  }

  /** Throws NotFoundError for an unknown id/name. */
  async inspectContainer(id: string): Promise<DockerContainerInspect> {
    const r = await this.call({ method: 'GET', path: `/containers/${seg(id)}/json`, ok: [200] });
    return r.data as DockerContainerInspect;
  }

  /**
   * One stats sample (stream=false: the Engine waits for a second reading so
   * that precpu_stats is filled and a CPU utilisation can be computed).
   */
  async containerStats(id: string): Promise<DockerContainerStats> {
    const r = await this.call({
      method: 'GET',
      path: `/containers/${seg(id)}/stats`,
      query: { stream: 'false' },
      ok: [200],
    });
    return r.data as DockerContainerStats;
  }

  /** 409 (name in use) ConflictError; 404 (no such image) NotFoundError. */
  async createContainer(name: string, body: DockerContainerCreateBody): Promise<DockerContainerCreateResponse> {
    const r = await this.call({
      method: 'POST',
      path: '/containers/create',
      query: { name },
      body,
      headers: { 'Content-Type': 'application/json' },
      ok: [201],
    });
    return r.data as DockerContainerCreateResponse;
  }

  /** Returns false when it was already running (304). */
  async startContainer(id: string): Promise<boolean> {
    const r = await this.call({ method: 'POST', path: `/containers/${seg(id)}/start`, ok: [204], noop: [304] });
    return !r.noop;
  }

  /** SIGTERM (or the image's StopSignal), SIGKILL after `timeoutS`. Returns false when already stopped (304). */
  async stopContainer(id: string, timeoutS?: number): Promise<boolean> {
    const r = await this.call({
      method: 'POST',
      path: `/containers/${seg(id)}/stop`,
      query: { t: timeoutS },
      ok: [204],
      noop: [304],
      timeoutMs: this.timeoutMs + (timeoutS ?? 10) * 1000,
    });
    return !r.noop;
  }

  /** 409 ConflictError when the container is not running. */
  async killContainer(id: string, signal?: string): Promise<void> {
    await this.call({ method: 'POST', path: `/containers/${seg(id)}/kill`, query: { signal }, ok: [204] });
  }

  async restartContainer(id: string, timeoutS?: number): Promise<void> {
    await this.call({
      method: 'POST',
      path: `/containers/${seg(id)}/restart`,
      query: { t: timeoutS },
      ok: [204],
      timeoutMs: this.timeoutMs + (timeoutS ?? 10) * 1000,
    });
  }

  /** 409 ConflictError when not running or already paused. */
  async pauseContainer(id: string): Promise<void> {
    await this.call({ method: 'POST', path: `/containers/${seg(id)}/pause`, ok: [204] });
  }

  /** ConflictError when not paused (the Engine answers 500 "is not paused"; mapped to 409). */
  async unpauseContainer(id: string): Promise<void> {
    await this.call({
      method: 'POST',
      path: `/containers/${seg(id)}/unpause`,
      ok: [204],
      conflictText: /is not paused/i,
    });
  }

  /** Idempotent: returns false when there was no such container (404). 409 while removal is already in progress. */
  async removeContainer(id: string, opts: RemoveContainerOptions = {}): Promise<boolean> {
    const r = await this.call({
      method: 'DELETE',
      path: `/containers/${seg(id)}`,
      query: { force: opts.force, v: opts.v },
      ok: [204],
      noop: [404],
    });
    return !r.noop;
  }

  async updateContainer(id: string, resources: DockerResources): Promise<string[]> {
    const r = await this.call({
      method: 'POST',
      path: `/containers/${seg(id)}/update`,
      body: resources,
      headers: { 'Content-Type': 'application/json' },
      ok: [200],
    });
    const w = (r.data as { Warnings?: string[] | null } | undefined)?.Warnings;
    return w ?? [];
  }

  /**
   * Logs (stdout+stderr by default) as one buffer, demultiplexed when the
   * container has no TTY, bounded to the last `maxBytes` when given. A body
   * that breaks off mid-frame keeps what arrived.
   */
  async containerLogs(id: string, opts: ContainerLogsOptions = {}): Promise<Buffer> {
    const tty = opts.tty ?? (await this.inspectContainer(id)).Config.Tty ?? false;
    const r = await this.call({
      method: 'GET',
      path: `/containers/${seg(id)}/logs`,
      query: {
        stdout: opts.stdout ?? true,
        stderr: opts.stderr ?? true,
        timestamps: opts.timestamps,
        tail: opts.tail ?? 'all',
      },
      ok: [200],
      stream: true,
    });
    const stream = r.data as Readable;
    const out = new TailBuffer(opts.maxBytes ?? Number.MAX_SAFE_INTEGER);
    let demux: FrameDemuxer | undefined;
    let first = true;
    try {
      for await (const c of stream) {
        const b = Buffer.isBuffer(c) ? c : Buffer.from(String(c));
        if (first) {
          // Trust the header over the caller's hint: a raw body never starts with 0-2,0,0,0.
          demux = !tty || looksMultiplexed(b) ? new FrameDemuxer() : undefined;
          first = false;
        }
        if (demux) for (const f of demux.push(b)) out.append(f.payload);
        else out.append(b);
      }
    } catch {
      // truncated body: keep what arrived
    } finally {
      stream.destroy();
    }
    const rest = demux?.flush();
    if (rest) out.append(rest.payload);
    return out.toBuffer();
  }

  /**
   * Logs as the Engine's messages with their timestamps (GET /logs?timestamps=1):
   * each frame of a non-TTY container is one message, its bytes untouched (a
   * line longer than the Engine's 16 KiB buffer comes as several); a TTY
   * container's raw stream is cut at line starts. `tail` counts messages;
   * `maxBytes` bounds the data kept (the newest whole messages). A body that
   * breaks off keeps what arrived.
   */
  async containerLogEntries(
    id: string,
    opts: Pick<ContainerLogsOptions, 'tail' | 'tty' | 'maxBytes'> = {},
  ): Promise<LogEntry[]> {
    const tty = opts.tty ?? (await this.inspectContainer(id)).Config.Tty ?? false;
    const r = await this.call({
      method: 'GET',
      path: `/containers/${seg(id)}/logs`,
      query: { stdout: true, stderr: true, timestamps: true, tail: opts.tail ?? 'all' },
      ok: [200],
      stream: true,
    });
    const stream = r.data as Readable;
    const out = new LogEntryTail(opts.maxBytes ?? Number.MAX_SAFE_INTEGER);
    let demux: FrameDemuxer | undefined;
    let lines: TimestampedLines | undefined;
    try {
      for await (const c of stream) {
        const b = Buffer.isBuffer(c) ? c : Buffer.from(String(c));
        if (!demux && !lines) {
          // as containerLogs: the header decides over the hint
          if (!tty || looksMultiplexed(b)) demux = new FrameDemuxer();
          else lines = new TimestampedLines();
        }
        if (demux) for (const f of demux.push(b)) out.push({ stream: f.stream, ...splitLogTimestamp(f.payload) });
        else if (lines) for (const e of lines.push(b)) out.push(e);
      }
    } catch {
      // truncated body: keep what arrived
    } finally {
      stream.destroy();
    }
    const rest = demux?.flush();
    if (rest) out.push({ stream: rest.stream, ...splitLogTimestamp(rest.payload) });
    for (const e of lines?.flush() ?? []) out.push(e);
    return out.toArray();
  }

  /**
   * POST /containers/{id}/wait: resolves with the exit status once `condition`
   * holds. No timeout of its own; pass a signal to give up (rejects with the
   * signal's reason).
   */
  async waitContainer(
    id: string,
    opts: { condition?: WaitCondition; signal?: AbortSignal } = {},
  ): Promise<DockerWaitResponse> {
    const r = await this.call({
      method: 'POST',
      path: `/containers/${seg(id)}/wait`,
      query: { condition: opts.condition ?? 'not-running' },
      ok: [200],
      timeoutMs: 0,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return r.data as DockerWaitResponse;
  }

  /** POST /commit: a new image from the container's filesystem; returns the image id. */
  async commitContainer(id: string, opts: CommitContainerOptions = {}): Promise<string> {
    const r = await this.call({
      method: 'POST',
      path: '/commit',
      query: {
        container: id,
        repo: opts.repo,
        tag: opts.tag,
        comment: opts.comment,
        author: opts.author,
        pause: opts.pause,
      },
      body: { ...(opts.labels ? { Labels: opts.labels } : {}), ...(opts.env ? { Env: opts.env } : {}) },
      headers: { 'Content-Type': 'application/json' },
      ok: [201],
      timeoutMs: 0,
    });
    return (r.data as { Id: string }).Id;
  }

  // ---- images -------------------------------------------------------------

  /** undefined when the Engine has no such image (404). */
  async inspectImage(ref: string): Promise<DockerImageInspect | undefined> {
    const r = await this.call({ method: 'GET', path: `/images/${seg(ref)}/json`, ok: [200], noop: [404] });
    return r.noop ? undefined : (r.data as DockerImageInspect);
  }

  async listImages(opts: ListImagesOptions = {}): Promise<DockerImageSummary[]> {
    const r = await this.call({
      method: 'GET',
      path: '/images/json',
      query: { all: opts.all, filters: filtersParam(opts.filters) },
      ok: [200],
    });
    return r.data as DockerImageSummary[];
  }

  /**
   * POST /images/load?quiet=1 with a docker-save / OCI tar as the body.
   * Returns what the Engine reports loaded: refs (`busybox:latest`) and/or
   * image ids (`sha256:…`) for untagged images. An `error` line, a body
   * that breaks off, or a load that reports nothing throws. When `tar` itself
   * fails (emits 'error'), the request is aborted and that error is rethrown
   * as is.
   */
  async loadImage(tar: NodeJS.ReadableStream | Readable, opts: { signal?: AbortSignal } = {}): Promise<string[]> {
    const r = await this.call({
      method: 'POST',
      path: '/images/load',
      query: { quiet: true },
      body: tar,
      headers: { 'Content-Type': 'application/x-tar' },
      ok: [200],
      stream: true,
      timeoutMs: 0,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const loaded: string[] = [];
    const path = `${await this.apiPrefix()}/images/load`;
    try {
      for await (const raw of this.lines(r.data as Readable, 'POST', '/images/load', opts.signal)) {
        const line = raw as DockerProgressLine;
        const err = lineError(line);
        if (err !== undefined) throw streamLineError({ service: 'docker', method: 'POST', path }, err);
        const text = typeof line.stream === 'string' ? line.stream : '';
        for (const m of text.matchAll(/Loaded image(?: ID)?: (\S+)/g)) if (m[1]) loaded.push(m[1]);
      }
    } catch (err) {
      throw r.bodyError() ?? err;
    }
    const late = r.bodyError();
    if (late) throw late;
    if (loaded.length === 0) {
      throw new HttpError(`docker POST ${path}: the Engine reported no loaded image`, {
        service: 'docker',
        method: 'POST',
        path,
        status: r.status,
      });
    }
    return loaded;
  }

  /**
   * POST /images/create?fromImage=&tag= (tag may be a digest), consuming the
   * progress stream to its end. Missing image: NotFoundError (404 status, or a
   * not-found `error` line); bad credentials: UnauthorizedError.
   */
  async pullImage(ref: string, auth?: RegistryAuth, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const { repo, tag } = splitImageRef(ref);
    const r = await this.call({
      method: 'POST',
      path: '/images/create',
      query: { fromImage: repo, tag },
      headers: auth ? { 'X-Registry-Auth': encodeRegistryAuth(auth) } : {},
      ok: [200],
      stream: true,
      timeoutMs: 0,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    const path = `${await this.apiPrefix()}/images/create`;
    let lastStatus = '';
    for await (const raw of this.lines(r.data as Readable, 'POST', '/images/create', opts.signal)) {
      const line = raw as DockerProgressLine;
      const err = lineError(line);
      if (err !== undefined) throw streamLineError({ service: 'docker', method: 'POST', path }, err);
      if (typeof line.status === 'string') lastStatus = line.status;
    }
    // A finished pull ends with "Status: Downloaded newer image for …" or "Status: Image is up to date for …".
    if (!/^Status: /.test(lastStatus)) {
      throw new UnavailableError(`docker POST ${path}: pull stream ended before completion (last: ${lastStatus})`, {
        service: 'docker',
        method: 'POST',
        path,
        status: r.status,
      });
    }
  }

  /**
   * POST /images/create?fromSrc=-&repo=&tag= (docker import): a root
   * filesystem tarball as the body becomes a one-layer image tagged
   * repo:tag. Returns the image id the Engine reports. An `error` line or a
   * stream that ends without an id throws.
   */
  async importImage(tar: Buffer | Readable, repo: string, tag: string): Promise<string> {
    const r = await this.call({
      method: 'POST',
      path: '/images/create',
      query: { fromSrc: '-', repo, tag },
      body: tar,
      headers: { 'Content-Type': 'application/x-tar' },
      ok: [200],
      stream: true,
      timeoutMs: 0,
    });
    const path = `${await this.apiPrefix()}/images/create`;
    let id = '';
    for await (const raw of this.lines(r.data as Readable, 'POST', '/images/create', undefined)) {
      const line = raw as DockerProgressLine;
      const err = lineError(line);
      if (err !== undefined) throw streamLineError({ service: 'docker', method: 'POST', path }, err);
      if (typeof line.status === 'string' && /^sha256:[0-9a-f]{64}$/.test(line.status.trim())) id = line.status.trim();
    }
    if (!id) {
      throw new HttpError(`docker POST ${path}: the Engine reported no imported image`, {
        service: 'docker',
        method: 'POST',
        path,
        status: r.status,
      });
    }
    return id;
  }

  /** POST /images/{source}/tag?repo=&tag= (201). */
  async tagImage(source: string, repo: string, tag: string): Promise<void> {
    await this.call({ method: 'POST', path: `/images/${seg(source)}/tag`, query: { repo, tag }, ok: [201] });
  }

  /** DELETE /images/{ref}. Idempotent: false when absent (404). 409 ConflictError when in use (without force). */
  async removeImage(ref: string, opts: RemoveImageOptions = {}): Promise<boolean> {
    const r = await this.call({
      method: 'DELETE',
      path: `/images/${seg(ref)}`,
      query: { force: opts.force, noprune: opts.noprune },
      ok: [200],
      noop: [404],
    });
    return !r.noop;
  }

  /** GET /images/{ref}/get: a docker-save tar stream. 404 NotFoundError. The caller must consume or destroy it. */
  async saveImage(ref: string, opts: { signal?: AbortSignal } = {}): Promise<Readable> {
    const r = await this.call({
      method: 'GET',
      path: `/images/${seg(ref)}/get`,
      ok: [200],
      stream: true,
      timeoutMs: 0,
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return r.data as Readable;
  }

  // ---- internals ----------------------------------------------------------

  /** JSON lines of a response stream, with stream breakage mapped to UnavailableError. */
  private async *lines(
    stream: Readable,
    method: Method,
    path: string,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<unknown> {
    const fullPath = `${await this.apiPrefix()}${path}`;
    try {
      for await (const v of jsonLines(stream as AsyncIterable<Buffer>)) yield v;
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
      const why = err instanceof TruncatedStreamError ? 'response ends inside a line' : 'response broke off';
      throw new UnavailableError(`docker ${method} ${fullPath}: ${why}: ${errorMessageOf(err)}`, {
        service: 'docker',
        method,
        path: fullPath,
        status: 200,
        cause: err,
      });
    } finally {
      stream.destroy();
    }
  }
}

function filtersParam(f: DockerFilters | undefined): string | undefined {
  return f && Object.keys(f).length ? JSON.stringify(f) : undefined;
}

function parseBody(data: unknown): unknown {
  if (typeof data !== 'string') return data;
  if (data === '') return undefined;
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

function optionalBody(body: string | undefined): { body?: string } {
  return body === undefined ? {} : { body };
}

function lineError(line: DockerProgressLine): string | undefined {
  if (line.errorDetail?.message) return line.errorDetail.message;
  if (typeof line.error === 'string' && line.error) return line.error;
  return undefined;
}

function errorMessageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
