/**
 * Docker registry HTTP API v2 client (distribution), for the registries the
 * agent pulls from: repository catalog and tags (both paginated through the
 * `Link: <…>; rel="next"` header) and manifest digests (HEAD, or GET and a
 * sha256 of the body when a registry leaves Docker-Content-Digest out of the
 * HEAD answer). Basic auth is optional; token (Bearer challenge) auth is not
 * supported.
 */
import { createHash } from 'node:crypto';
import { AgentError } from '../../common/errors.js';
import { NotFoundError } from '../errors.js';
import { createHttpClient, type HttpClient } from '../http.js';

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** `host:port` (as in image references) or a full URL; loopback hosts default to http, others to https. */
  url: string;
  auth?: RegistryCredentials | undefined;
  timeoutMs?: number | undefined;
}

/** Media types a manifest HEAD/GET accepts: Docker v2 schema 2, manifest lists, OCI. */
export const MANIFEST_ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

const MAX_PAGES = 10_000;

/** What the registry says about one manifest. */
export interface ManifestInfo {
  /** `sha256:…`: the content digest that pins this manifest. */
  digest: string;
  /** Content-Type of the manifest (one of MANIFEST_ACCEPT), when the registry sent one. */
  mediaType: string | undefined;
}

const DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-f0-9]{32,}$/;

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/** Splits a registry setting into the URL to call and the `host[:port]` docker refs use. */
export function parseRegistryUrl(url: string): { baseURL: string; host: string } {
  const raw = url.trim().replace(/\/+$/, '');
  if (/^https?:\/\//i.test(raw)) {
    const u = new URL(raw);
    return { baseURL: `${u.protocol}//${u.host}`, host: u.host };
  }
  if (raw === '' || raw.includes('/'))
    throw new AgentError(`registry: invalid registry address ${JSON.stringify(url)}`);
  const hostname = raw.replace(/:\d+$/, '');
  return { baseURL: `${isLoopback(hostname) ? 'http' : 'https'}://${raw}`, host: raw };
}

/** The URL of the `rel="next"` link of a Link header, relative to the registry. */
export function nextLink(link: unknown): string | undefined {
  if (typeof link !== 'string') return undefined;
  for (const part of link.split(',')) {
    const m = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(part);
    if (m?.[1]) return m[1];
  }
  return undefined;
}

function repoPath(repo: string): string {
  if (!/^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/.test(repo)) {
    throw new AgentError(`registry: invalid repository name ${JSON.stringify(repo)}`);
  }
  return repo;
}

export class RegistryClient {
  /** `host[:port]` of the registry, as it appears in image references. */
  readonly host: string;
  readonly baseURL: string;
  readonly #http: HttpClient;

  constructor(opts: RegistryOptions) {
    const { baseURL, host } = parseRegistryUrl(opts.url);
    this.host = host;
    this.baseURL = baseURL;
    const basic = opts.auth && Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64');
    this.#http = createHttpClient({
      service: 'registry',
      baseURL,
      timeoutMs: opts.timeoutMs,
      ...(basic ? { headers: { Authorization: `Basic ${basic}` } } : {}),
    });
  }

  /** GET /v2/_catalog, every page. */
  async listRepositories(opts: { pageSize?: number } = {}): Promise<string[]> {
    return this.#paged(`/v2/_catalog?n=${opts.pageSize ?? 100}`, 'repositories');
  }

  /** GET /v2/<repo>/tags/list, every page. An unknown repository has no tags. */
  async listTags(repo: string, opts: { pageSize?: number } = {}): Promise<string[]> {
    try {
      return await this.#paged(`/v2/${repoPath(repo)}/tags/list?n=${opts.pageSize ?? 100}`, 'tags');
    } catch (err) {
      if (err instanceof NotFoundError) return [];
      throw err;
    }
  }

  /**
   * HEAD /v2/<repo>/manifests/<tag|digest>: the Docker-Content-Digest of the
   * manifest, or undefined when the registry does not have it.
   */
  async manifestDigest(repo: string, reference: string): Promise<string | undefined> {
    return (await this.manifestInfo(repo, reference))?.digest;
  }

  /**
   * The digest and media type of a manifest: HEAD with the Accept list (so a
   * registry answers the schema 2 / OCI digest that `docker pull` will see,
   * not a converted schema 1 one); when the HEAD answer has no
   * Docker-Content-Digest, GET and hash the exact bytes. Undefined when the
   * registry does not have the manifest (404).
   */
  async manifestInfo(repo: string, reference: string): Promise<ManifestInfo | undefined> {
    const path = `/v2/${repoPath(repo)}/manifests/${encodeURIComponent(reference)}`;
    try {
      const head = await this.#http.head(path, { headers: { Accept: MANIFEST_ACCEPT } });
      const digest = headerString(head.headers['docker-content-digest']);
      const mediaType = mediaTypeOf(head.headers['content-type']);
      if (digest !== undefined) {
        if (!DIGEST_RE.test(digest)) throw new AgentError(`registry: ${repo}:${reference} has a malformed digest`);
        return { digest, mediaType };
      }
      const res = await this.#http.get<Buffer>(path, { headers: { Accept: MANIFEST_ACCEPT }, responseType: 'buffer' });
      const body = res.data;
      if (body.length === 0) throw new AgentError(`registry: ${repo}:${reference} has an empty manifest`);
      return {
        digest: `sha256:${createHash('sha256').update(body).digest('hex')}`,
        mediaType: mediaTypeOf(res.headers['content-type']) ?? mediaType,
      };
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /** DELETE /v2/<repo>/manifests/<digest> (the registry must allow deletes). False when absent. */
  async deleteManifest(repo: string, digest: string): Promise<boolean> {
    if (!/^[a-z0-9]+:[a-f0-9]{32,}$/.test(digest)) throw new AgentError(`registry: ${digest} is not a digest`);
    try {
      await this.#http.delete(`/v2/${repoPath(repo)}/manifests/${digest}`);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  /** Keeps credentials out of inspection. */
  toJSON(): Record<string, unknown> {
    return { url: this.baseURL };
  }

  async #paged(first: string, key: 'repositories' | 'tags'): Promise<string[]> {
    const out: string[] = [];
    let url: string | undefined = first;
    for (let page = 0; url !== undefined && page < MAX_PAGES; page++) {
      const res: { data: unknown; headers: Record<string, unknown> } = await this.#http.get<unknown>(url);
      const body = res.data;
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        throw new AgentError(`registry: GET ${url.split('?')[0] ?? ''} did not answer a JSON object`);
      }
      // `tags: null` is how the registry lists a repository whose tags were all deleted
      const list = (body as Record<string, unknown>)[key];
      if (Array.isArray(list)) for (const v of list as unknown[]) if (typeof v === 'string') out.push(v);
      const next = this.#sameOrigin(nextLink(res.headers.link));
      url = next === undefined || next === url ? undefined : next;
    }
    return out;
  }

  /**
   * A next-page link as a path on this registry. An absolute link to another
   * host is refused: following it would send the credentials there.
   */
  #sameOrigin(link: string | undefined): string | undefined {
    if (link === undefined || link.startsWith('/')) return link;
    let u: URL;
    try {
      u = new URL(link);
    } catch {
      throw new AgentError(`registry: unusable next-page link ${JSON.stringify(link)}`);
    }
    if (u.origin !== new URL(this.baseURL).origin) {
      throw new AgentError(`registry: next-page link points to another host (${u.origin})`);
    }
    return `${u.pathname}${u.search}`;
  }
}

function headerString(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() !== '' ? v.trim() : undefined;
}

function mediaTypeOf(v: unknown): string | undefined {
  return headerString(v)?.split(';')[0]?.trim();
}
