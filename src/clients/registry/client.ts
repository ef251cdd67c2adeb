/**
 * Docker registry HTTP API v2 client (distribution), for the registries the
 * agent pulls from: repository catalog and tags (both paginated through the
 * `Link: <…>; rel="next"` header) and manifest digests (HEAD). Basic auth is
 * optional; token (Bearer challenge) auth is not supported.
 */
import type { AxiosInstance } from 'axios';
import { AgentError } from '../../common/errors.js';
import { NotFoundError } from '../errors.js';
import { createHttpClient } from '../http.js';

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
  readonly #http: AxiosInstance;

  constructor(opts: RegistryOptions) {
    const { baseURL, host } = parseRegistryUrl(opts.url);
    this.host = host;
    this.baseURL = baseURL;
    this.#http = createHttpClient({ service: 'registry', baseURL, timeoutMs: opts.timeoutMs });
    if (opts.auth) {
      const basic = Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64');
      this.#http.defaults.headers.common.Authorization = `Basic ${basic}`;
    }
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
    try {
      const res = await this.#http.head(`/v2/${repoPath(repo)}/manifests/${encodeURIComponent(reference)}`, {
        headers: { Accept: MANIFEST_ACCEPT },
      });
      const digest = res.headers['docker-content-digest'] as unknown;
      return typeof digest === 'string' && digest !== '' ? digest : undefined;
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
      const list = (res.data as Record<string, unknown> | null)?.[key];
      if (Array.isArray(list)) for (const v of list as unknown[]) if (typeof v === 'string') out.push(v);
      const next = nextLink(res.headers.link);
      url = next === undefined || next === url ? undefined : next;
    }
    return out;
  }
}
