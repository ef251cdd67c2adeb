/**
 * Glance v2 image client: show, list, create, update (JSON patch), delete,
 * download as a stream and upload from a stream. Image data is never buffered: downloads hand back the
 * response stream, uploads pipe the caller's stream into the request.
 *
 * Endpoint: the `[glance] api_servers` list when given (idempotent calls fail
 * over to the next server when one does not answer), else the `image` service
 * of the Keystone catalog. Token: the request's own token when the call
 * context carries one, else the service token (renewed once on 401).
 */
import type { Readable } from 'node:stream';
import { AgentError } from '../../common/errors.js';
import { nullLogger, type Logger } from '../../common/log.js';
import { HttpError, UnavailableError } from '../errors.js';
import { contextHeaders, createHttpClient, type CallContext, type HttpClient, type HttpResponse } from '../http.js';
import { withAuth, type AuthProvider } from '../keystone/client.js';
import type { EndpointQuery } from '../keystone/catalog.js';

/** A Glance v2 image record. Extra (custom) properties sit at the top level, as Glance sends them. */
export interface GlanceImage {
  id: string;
  name?: string | null;
  status?: string;
  container_format?: string | null;
  disk_format?: string | null;
  size?: number | null;
  checksum?: string | null;
  os_hash_algo?: string | null;
  os_hash_value?: string | null;
  visibility?: string;
  [property: string]: unknown;
}

/** Keys of a v2 image record that are Glance's own, not image properties. */
export const GLANCE_CORE_KEYS: ReadonlySet<string> = new Set([
  'id',
  'name',
  'status',
  'visibility',
  'protected',
  'checksum',
  'owner',
  'size',
  'virtual_size',
  'container_format',
  'disk_format',
  'created_at',
  'updated_at',
  'tags',
  'min_ram',
  'min_disk',
  'os_hidden',
  'os_hash_algo',
  'os_hash_value',
  'self',
  'file',
  'schema',
  'stores',
  'locations',
  'direct_url',
]);

/** The custom properties of an image record (everything that is not a core key). */
export function imageProperties(img: GlanceImage): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(img)) if (!GLANCE_CORE_KEYS.has(k)) out[k] = v;
  return out;
}

export interface ImageCreate {
  name: string;
  /** Unset, as Nova's API creates a snapshot's record: then set before the data (Glance refuses data without). */
  container_format?: string;
  disk_format?: string;
  visibility?: 'public' | 'private' | 'shared' | 'community';
  id?: string;
  /** Custom properties (strings, as Glance stores them). */
  properties?: Record<string, string>;
}

/** Media type Glance v2 wants for PATCH /v2/images/{id}. */
const JSON_PATCH = 'application/openstack-images-v2.1-json-patch';
const MAX_LIST_PAGES = 10_000;

export interface ImageDownload {
  /** The image data. The caller must consume or destroy it. */
  stream: Readable;
  /** Content-Length, when Glance sent one. */
  contentLength: number | undefined;
  /** Content-MD5 (hex), when Glance sent one. */
  contentMd5: string | undefined;
}

/**
 * One JSON-patch operation of PATCH /v2/images/{id} (media type
 * openstack-images-v2.1-json-patch, where `add` also replaces an existing
 * property and `remove` of a missing one is a 409).
 */
export type ImagePatchOp = { op: 'add' | 'replace'; path: string; value: unknown } | { op: 'remove'; path: string };

/** GET /v2/images query: property filters (exact match) plus sorting. */
export interface ImageListQuery {
  /** Core or custom property filters, e.g. `{ image_type: 'backup', instance_uuid: '…' }`. */
  filters?: Record<string, string>;
  sortKey?: string;
  sortDir?: 'asc' | 'desc';
  /** Page size asked of Glance; every page is fetched. */
  pageSize?: number;
}

/** The image has no data (Glance answered 204: queued, or a location-less record). */
export class ImageDataMissingError extends AgentError {}

/** What the Glance client needs from Keystone (KeystoneClient fits). */
export interface GlanceKeystone {
  authFor(ctx?: CallContext): AuthProvider;
  endpoint(serviceType: string, q?: EndpointQuery, ctx?: CallContext): Promise<string>;
}

export interface GlanceOptions {
  /** `[glance] api_servers`: base URLs such as http://127.0.0.1:9292 (a trailing /v2 is tolerated). */
  apiServers?: readonly string[] | undefined;
  /** Token source and catalog. Without it, calls carry only the request's token, if any. */
  keystone?: GlanceKeystone | undefined;
  /** Catalog lookup of the `image` endpoint (interfaces, region). */
  endpoint?: EndpointQuery | undefined;
  /** Socket idle timeout (also bounds a stalled download). Default 60 s. */
  timeoutMs?: number | undefined;
  logger?: Logger | undefined;
}

function normalizeBase(url: string): string {
  return url.replace(/\/+$/, '').replace(/\/v2(\.\d+)?$/, '');
}

function enc(id: string): string {
  return encodeURIComponent(id);
}

export class GlanceClient {
  readonly #http: HttpClient;
  readonly #servers: string[];
  readonly #keystone: GlanceKeystone | undefined;
  readonly #endpointQuery: EndpointQuery;
  readonly #log: Logger;
  #next = 0;

  constructor(opts: GlanceOptions) {
    this.#servers = (opts.apiServers ?? []).map(normalizeBase).filter((s) => s !== '');
    this.#keystone = opts.keystone;
    this.#endpointQuery = opts.endpoint ?? {};
    if (this.#servers.length === 0 && !this.#keystone) {
      throw new AgentError('glance: neither api_servers nor a keystone catalog to find the image endpoint');
    }
    this.#http = createHttpClient({ service: 'glance', timeoutMs: opts.timeoutMs });
    this.#log = (opts.logger ?? nullLogger()).child({ logger: 'nova_docker.clients.glance' });
  }

  /** GET /v2/images/{id}. A missing image is a NotFoundError. */
  async showImage(ctx: CallContext | undefined, id: string): Promise<GlanceImage> {
    const res = await this.#call(ctx, true, (base, headers) =>
      this.#http.get<GlanceImage>(`${base}/v2/images/${enc(id)}`, { headers }),
    );
    return res.data;
  }

  /** POST /v2/images: a record without data (status queued). */
  async createImage(ctx: CallContext | undefined, req: ImageCreate): Promise<GlanceImage> {
    const { properties, ...core } = req;
    const body: Record<string, unknown> = { ...properties, ...core };
    const res = await this.#call(ctx, false, (base, headers) =>
      this.#http.post<GlanceImage>(`${base}/v2/images`, body, {
        headers: { ...headers, 'Content-Type': 'application/json' },
      }),
    );
    return res.data;
  }

  /**
   * GET /v2/images, every page (Glance's `next` link). `filters` are Glance's
   * query filters (`container_format=docker`, a custom property, …); values
   * holding a `:` need an operator (`eq:a:b`), since Glance reads the part
   * before the first `:` as one.
   */
  async listImages(ctx: CallContext | undefined, q: ImageListQuery = {}): Promise<GlanceImage[]> {
    const params = new URLSearchParams(q.filters ?? {});
    if (q.sortKey) params.set('sort_key', q.sortKey);
    if (q.sortDir) params.set('sort_dir', q.sortDir);
    params.set('limit', String(q.pageSize ?? 200));
    const out: GlanceImage[] = [];
    let path: string | undefined = `/v2/images?${params.toString()}`;
    for (let page = 0; path !== undefined && page < MAX_LIST_PAGES; page++) {
      const current: string = path;
      const res = await this.#call(ctx, true, (base, headers) =>
        this.#http.get<{ images?: unknown; next?: unknown }>(`${base}${current}`, { headers }),
      );
      const images = res.data?.images;
      if (!Array.isArray(images)) throw new AgentError('glance: GET /v2/images answered no image list');
      for (const img of images as unknown[]) {
        if (img !== null && typeof img === 'object' && typeof (img as GlanceImage).id === 'string') {
          out.push(img as GlanceImage);
        }
      }
      const next = res.data.next;
      // `next` is a path on the same server ("/v2/images?marker=…"); anything else ends the walk
      path = typeof next === 'string' && next.startsWith('/v2/images') && next !== current ? next : undefined;
    }
    return out;
  }

  /** PATCH /v2/images/{id} with JSON-patch operations; the updated record. */
  async updateImage(ctx: CallContext | undefined, id: string, ops: readonly ImagePatchOp[]): Promise<GlanceImage> {
    const res = await this.#call(ctx, false, (base, headers) =>
      this.#http.patch<GlanceImage>(`${base}/v2/images/${enc(id)}`, ops, {
        headers: { ...headers, 'Content-Type': JSON_PATCH },
      }),
    );
    return res.data;
  }

  /** DELETE /v2/images/{id}. */
  async deleteImage(ctx: CallContext | undefined, id: string): Promise<void> {
    await this.#call(ctx, false, (base, headers) => this.#http.delete(`${base}/v2/images/${enc(id)}`, { headers }));
  }

  /**
   * GET /v2/images/{id}/file as a stream (never buffered, never decompressed).
   * Errors before the body (404, 401, 5xx) reject; errors in the body surface
   * on the stream. An image without data is an ImageDataMissingError.
   */
  async downloadImage(
    ctx: CallContext | undefined,
    id: string,
    opts: { signal?: AbortSignal | undefined } = {},
  ): Promise<ImageDownload> {
    const res = await this.#call(ctx, true, (base, headers) =>
      this.#http.get<Readable>(`${base}/v2/images/${enc(id)}/file`, {
        headers,
        responseType: 'stream',
        ...(opts.signal ? { signal: opts.signal } : {}),
      }),
    );
    if (res.status === 204) {
      res.data.destroy();
      throw new ImageDataMissingError(`glance image ${id} has no data`, {
        fields: { image_id: id, service: 'glance' },
      });
    }
    const len = Number(res.headers['content-length']);
    const md5 = res.headers['content-md5'] as unknown;
    return {
      stream: res.data,
      contentLength: Number.isFinite(len) && len >= 0 ? len : undefined,
      contentMd5: typeof md5 === 'string' && md5 !== '' ? md5 : undefined,
    };
  }

  /**
   * PUT /v2/images/{id}/file from a stream (application/octet-stream, chunked
   * unless `size` is given). Not retried: the stream can be read only once.
   * An error of `data` aborts the request and is the rejection; when the
   * upload fails otherwise, `data` is destroyed so its producer stops.
   */
  async uploadImage(
    ctx: CallContext | undefined,
    id: string,
    data: Readable,
    opts: { size?: number | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<void> {
    const base = (await this.#bases(ctx))[0];
    const auth = this.#auth(ctx);
    const token = auth ? await auth.getToken(ctx) : undefined;
    let sourceErr: unknown;
    data.once('error', (e) => {
      sourceErr ??= e;
    });
    try {
      await this.#http.put(`${base}/v2/images/${enc(id)}/file`, data, {
        headers: {
          ...contextHeaders(ctx),
          ...(token ? { 'X-Auth-Token': token } : {}),
          'Content-Type': 'application/octet-stream',
          ...(opts.size === undefined ? {} : { 'Content-Length': String(opts.size) }),
        },
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } catch (err) {
      data.destroy();
      throw sourceErr instanceof Error ? sourceErr : err;
    }
  }

  /** Keeps tokens out of inspection. */
  toJSON(): Record<string, unknown> {
    return { apiServers: this.#servers };
  }

  #auth(ctx: CallContext | undefined): AuthProvider | undefined {
    if (this.#keystone) return this.#keystone.authFor(ctx);
    if (ctx?.authToken) {
      const token = ctx.authToken;
      return { kind: 'user', getToken: () => Promise.resolve(token), invalidate: () => false };
    }
    return undefined;
  }

  /** Base URLs to try, the round-robin pick first. */
  async #bases(ctx: CallContext | undefined): Promise<string[]> {
    if (this.#servers.length === 0) {
      const url = await this.#keystone!.endpoint('image', this.#endpointQuery, ctx);
      return [normalizeBase(url)];
    }
    const start = this.#next++ % this.#servers.length;
    return [...this.#servers.slice(start), ...this.#servers.slice(0, start)];
  }

  async #call<T>(
    ctx: CallContext | undefined,
    idempotent: boolean,
    fn: (base: string, headers: Record<string, string>) => Promise<HttpResponse<T>>,
  ): Promise<HttpResponse<T>> {
    const bases = await this.#bases(ctx);
    const auth = this.#auth(ctx);
    let lastErr: unknown;
    for (const [i, base] of bases.entries()) {
      try {
        const once = (token: string | undefined): Promise<HttpResponse<T>> =>
          fn(base, { ...contextHeaders(ctx), ...(token ? { 'X-Auth-Token': token } : {}) });
        return auth ? await withAuth(auth, ctx, once) : await once(undefined);
      } catch (err) {
        lastErr = err;
        const noAnswer = err instanceof UnavailableError && err.status === undefined;
        if (!idempotent || !noAnswer || i === bases.length - 1) throw err;
        this.#log.warn('glance server did not answer, trying the next one', { server: base });
      }
    }
    throw lastErr instanceof HttpError ? lastErr : new AgentError('glance: no server to call', { cause: lastErr });
  }
}
