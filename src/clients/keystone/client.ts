/**
 * Keystone v3 password authentication for the agent's service user, scoped to
 * a project. The token is cached until 5 minutes before it expires (or half
 * its lifetime, for short-lived tokens); concurrent callers share one auth
 * request. `withAuth` retries a call once with a fresh token on 401.
 *
 * A request may instead carry its user's token (the RPC context `auth_token`):
 * `authFor(ctx)` returns a provider that sends that token and never re-auths
 * (the agent cannot renew a user's token). Endpoints always come from the
 * service token's catalog.
 */
import { AgentError } from '../../common/errors.js';
import { nullLogger, type Logger } from '../../common/log.js';
import { SingleFlight } from '../../common/single-flight.js';
import { UnauthorizedError } from '../errors.js';
import { contextHeaders, createHttpClient, type CallContext, type HttpClient } from '../http.js';
import { findEndpoint, parseCatalog, type CatalogService, type EndpointQuery } from './catalog.js';

export interface KeystoneOptions {
  /** e.g. http://127.0.0.1:5000/v3 (a missing /v3 is appended). */
  authUrl: string;
  username: string;
  password: string;
  projectName: string;
  userDomainName: string;
  projectDomainName: string;
  regionName?: string | undefined;
  /** Endpoint interfaces, in order of preference. Default internal, public. */
  interfaces?: readonly string[] | undefined;
  timeoutMs?: number | undefined;
}

export interface KeystoneDeps {
  logger?: Logger;
  /** Clock, for tests of expiry. */
  now?: () => number;
}

/** Where a client gets the token it sends. */
export interface AuthProvider {
  /** 'service' tokens can be renewed; a 'user' token is whatever the request carried. */
  readonly kind: 'service' | 'user';
  /** The token to send as X-Auth-Token. A secret: never log it. */
  getToken(ctx?: CallContext): Promise<string>;
  /** The service refused `token` (401). Returns true when retrying with a new token makes sense. */
  invalidate(token: string): boolean;
}

/** A request's own token: sent as is, never renewed. */
export class StaticTokenAuth implements AuthProvider {
  readonly kind = 'user' as const;
  readonly #token: string;
  constructor(token: string) {
    this.#token = token;
  }
  getToken(): Promise<string> {
    return Promise.resolve(this.#token);
  }
  invalidate(): boolean {
    return false;
  }
  toJSON(): Record<string, string> {
    return { kind: this.kind };
  }
}

interface CachedToken {
  token: string;
  /** ms since epoch after which the token is not used any more. */
  refreshAt: number;
  expiresAt: number;
  catalog: CatalogService[];
}

/** Token lifetime margin: stop using a token this long before it expires. */
export const EXPIRY_MARGIN_MS = 5 * 60 * 1000;

export class KeystoneClient implements AuthProvider {
  readonly kind = 'service' as const;
  readonly #opts: KeystoneOptions;
  readonly #http: HttpClient;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #flight = new SingleFlight<string, CachedToken>();
  #cached: CachedToken | undefined;

  constructor(opts: KeystoneOptions, deps: KeystoneDeps = {}) {
    this.#opts = { ...opts, authUrl: normalizeAuthUrl(opts.authUrl) };
    this.#http = createHttpClient({ service: 'keystone', baseURL: this.#opts.authUrl, timeoutMs: opts.timeoutMs });
    this.#log = (deps.logger ?? nullLogger()).child({ logger: 'nova_docker.clients.keystone' });
    this.#now = deps.now ?? Date.now;
  }

  get authUrl(): string {
    return this.#opts.authUrl;
  }

  /** The service token, from cache or a fresh auth. */
  async getToken(ctx?: CallContext): Promise<string> {
    return (await this.#current(ctx)).token;
  }

  /** Drops the cached token if it is `token`; the next call authenticates again. */
  invalidate(token: string): boolean {
    if (this.#cached?.token === token) this.#cached = undefined;
    return true;
  }

  /** The catalog of the service token. */
  async catalog(ctx?: CallContext): Promise<CatalogService[]> {
    return (await this.#current(ctx)).catalog;
  }

  /** URL of a service from the catalog; region and interfaces default to the options. */
  async endpoint(serviceType: string, q: EndpointQuery = {}, ctx?: CallContext): Promise<string> {
    const catalog = await this.catalog(ctx);
    return findEndpoint(catalog, serviceType, {
      interfaces: q.interfaces ?? this.#opts.interfaces,
      region: q.region ?? this.#opts.regionName,
    });
  }

  /** The request's token when it carries one, else the service token. */
  authFor(ctx?: CallContext): AuthProvider {
    return ctx?.authToken ? new StaticTokenAuth(ctx.authToken) : this;
  }

  /** Keeps the password and token out of logs and inspection. */
  toJSON(): Record<string, unknown> {
    return { authUrl: this.#opts.authUrl, username: this.#opts.username, projectName: this.#opts.projectName };
  }

  async #current(ctx?: CallContext): Promise<CachedToken> {
    const c = this.#cached;
    if (c && this.#now() < c.refreshAt) return c;
    return this.#flight.run('token', async () => {
      const fresh = await this.#authenticate(ctx);
      this.#cached = fresh;
      return fresh;
    });
  }

  async #authenticate(ctx?: CallContext): Promise<CachedToken> {
    const o = this.#opts;
    const body = {
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: o.username, domain: { name: o.userDomainName }, password: o.password } },
        },
        scope: { project: { name: o.projectName, domain: { name: o.projectDomainName } } },
      },
    };
    const started = this.#now();
    const res = await this.#http.post<unknown>('/auth/tokens', body, {
      headers: { 'Content-Type': 'application/json', ...contextHeaders(ctx) },
    });
    const token = res.headers['x-subject-token'] as unknown;
    if (typeof token !== 'string' || token === '') {
      throw new AgentError('keystone POST /auth/tokens: no X-Subject-Token in the answer', {
        fields: { service: 'keystone' },
      });
    }
    const t = (res.data as { token?: { expires_at?: unknown; issued_at?: unknown; catalog?: unknown } } | null)?.token;
    const expires = typeof t?.expires_at === 'string' ? Date.parse(t.expires_at) : NaN;
    const expiresAt = Number.isFinite(expires) ? expires : started + 60 * 60 * 1000;
    const lifetime = Math.max(0, expiresAt - started);
    const refreshAt = expiresAt - Math.min(EXPIRY_MARGIN_MS, lifetime / 2);
    this.#log.debug('keystone token issued', {
      user: o.username,
      project: o.projectName,
      expires_at: new Date(expiresAt).toISOString(),
    });
    return { token, expiresAt, refreshAt, catalog: parseCatalog(t?.catalog) };
  }
}

/** Runs `fn` with a token; on 401, renews the token once (if the provider can) and runs it again. */
export async function withAuth<T>(
  auth: AuthProvider,
  ctx: CallContext | undefined,
  fn: (token: string) => Promise<T>,
): Promise<T> {
  const token = await auth.getToken(ctx);
  try {
    return await fn(token);
  } catch (err) {
    if (err instanceof UnauthorizedError && err.status === 401 && auth.invalidate(token)) {
      return fn(await auth.getToken(ctx));
    }
    throw err;
  }
}

export function normalizeAuthUrl(url: string): string {
  const u = url.replace(/\/+$/, '');
  return /\/v3$/.test(u) ? u : `${u}/v3`;
}
