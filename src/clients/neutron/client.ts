/**
 * Neutron v2.0 REST client for the compute side of Nova's network API
 * (nova/network/neutron.py get_client): extensions, ports, networks,
 * subnets, security groups and floating IPs.
 *
 * Two kinds of callers, as in Nova: `forContext(ctx)` is the *user* client,
 * sending the request's own Keystone token (Neutron applies the user's policy
 * and quota: ports are created with it); `forContext(ctx, { admin: true })`
 * is the *admin* client, sending a token of the `[neutron]` credentials
 * (binding a port to a host is admin-only). An admin context without a token
 * uses the `[neutron]` credentials too (Nova's _get_auth_plugin). With
 * `[service_user] send_service_user_token`, every call also carries
 * X-Service-Token, as keystoneauth's service-token wrapper does.
 *
 * Endpoint: `[neutron] endpoint_override`, else the `network` service of the
 * catalog of the `[neutron]` token. Calls that got no connection at all are
 * retried `[neutron] http_retries` times (keystoneauth's connect_retries);
 * an admin token Neutron refuses (401) is renewed once.
 *
 * Failures are NeutronClientError: the HTTP status, Neutron's error type
 * (`NeutronError.type`: PortNotFound, IpAddressAlreadyAllocated, OverQuota, …)
 * and the port the call was about.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AgentError } from '../../common/errors.js';
import { nullLogger, type Logger } from '../../common/log.js';
import { HttpError, type HttpErrorDetails } from '../errors.js';
import { contextHeaders, HttpClient, HttpRequestError, toHttpError, type CallContext } from '../http.js';
import { withAuth, type AuthProvider } from '../keystone/client.js';
import type { EndpointQuery } from '../keystone/catalog.js';
import type {
  NeutronExtension,
  NeutronFloatingIp,
  NeutronNetwork,
  NeutronPort,
  NeutronQuery,
  NeutronSecurityGroup,
  NeutronSubnet,
  PortCreate,
  PortUpdate,
} from './types.js';

/** A failed Neutron call: the HTTP error plus Neutron's own error type and the port concerned. */
export class NeutronClientError extends HttpError {
  /** `NeutronError.type` of the answer (e.g. PortNotFound, IpAddressAlreadyAllocated), when Neutron sent one. */
  readonly neutronType: string | undefined;
  /** The port the call was about (show/update/delete of a port), if any. */
  readonly portId: string | undefined;

  constructor(message: string, d: HttpErrorDetails & { neutronType?: string; portId?: string }) {
    super(message, d);
    this.neutronType = d.neutronType;
    this.portId = d.portId;
  }
}

/** True when `err` is a Neutron answer of `status` (or of Neutron error type `type`). */
export function isNeutronError(err: unknown, match: { status?: number; type?: string }): err is NeutronClientError {
  if (!(err instanceof NeutronClientError)) return false;
  if (match.status !== undefined && err.status !== match.status) return false;
  if (match.type !== undefined && err.neutronType !== match.type) return false;
  return true;
}

/** What a call needs from the request: its token, request ids, and whether it is an admin context. */
export interface NeutronCallContext extends CallContext {
  isAdmin?: boolean | undefined;
}

/** The `[neutron]` credentials (a KeystoneClient fits): token and catalog. */
export type NeutronKeystone = AuthProvider & {
  endpoint(serviceType: string, q?: EndpointQuery, ctx?: CallContext): Promise<string>;
};

export interface NeutronOptions {
  /** The `[neutron]` keystoneauth credentials: the admin client's token and the catalog. */
  admin: NeutronKeystone;
  /** `[service_user]`, when `send_service_user_token` is set: sent as X-Service-Token. */
  serviceUser?: AuthProvider | undefined;
  /** `[neutron] endpoint_override` */
  endpointOverride?: string | undefined;
  /** `[neutron] region_name` */
  region?: string | undefined;
  /** `[neutron] valid_interfaces` */
  interfaces?: readonly string[] | undefined;
  /** `[neutron] http_retries`: connection attempts after the first (default 3). */
  httpRetries?: number | undefined;
  /** Pause before the first connect retry, doubled each time (default 500 ms). */
  retryDelayMs?: number | undefined;
  timeoutMs?: number | undefined;
  logger?: Logger | undefined;
}

/** Errors of a call that never reached the server: safe to send again, whatever the method. */
const CONNECT_FAILURES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);
const MAX_LIST_PAGES = 1000;

function enc(id: string): string {
  return encodeURIComponent(id);
}

/** neutronclient's query encoding: lists as repeated keys, booleans as Python's True/False. */
export function neutronQuery(q: NeutronQuery = {}): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v as readonly string[]) params.append(k, x);
    else if (typeof v === 'boolean') params.append(k, v ? 'True' : 'False');
    else params.append(k, String(v));
  }
  const s = params.toString();
  return s === '' ? '' : `?${s}`;
}

/** `NeutronError.type` from an error body snippet (JSON, possibly cut short). */
export function neutronErrorType(body: string | undefined): string | undefined {
  if (!body) return undefined;
  try {
    const parsed = JSON.parse(body) as { NeutronError?: { type?: unknown } } | null;
    const t = parsed?.NeutronError?.type;
    if (typeof t === 'string') return t;
  } catch {
    // a snippet cut at 512 bytes is no longer JSON; the type comes first in Neutron's bodies
  }
  const m = /"NeutronError"\s*:\s*\{\s*"type"\s*:\s*"([A-Za-z0-9_]+)"/.exec(body);
  return m?.[1];
}

/** The base URL without a trailing version (the catalog's URL may or may not carry /v2.0). */
function normalizeBase(url: string): string {
  return url.replace(/\/+$/, '').replace(/\/v2\.0$/, '');
}

export class NeutronClient {
  readonly #opts: NeutronOptions;
  readonly #http: HttpClient;
  readonly #log: Logger;

  constructor(opts: NeutronOptions) {
    this.#opts = opts;
    // no `service`: failures come back as HttpRequestError with Node's code, so a
    // connect failure can be told from a timeout before they become HttpErrors
    this.#http = new HttpClient({ timeoutMs: opts.timeoutMs });
    this.#log = (opts.logger ?? nullLogger()).child({ logger: 'nova_docker.clients.neutron' });
  }

  /** Nova's get_client(context, admin): the calls of one request, with its token or the `[neutron]` one. */
  forContext(ctx: NeutronCallContext, o: { admin?: boolean } = {}): NeutronApi {
    const admin = o.admin === true || (ctx.isAdmin === true && !ctx.authToken);
    if (!admin && !ctx.authToken) {
      throw new AgentError('neutron: the request carries no token and is not an admin context', {
        fields: { service: 'neutron', status: 401 },
      });
    }
    const auth: AuthProvider = admin ? this.#opts.admin : staticToken(ctx.authToken ?? '');
    return new NeutronApi(this, ctx, auth, admin);
  }

  /** Keeps tokens out of inspection. */
  toJSON(): Record<string, unknown> {
    return { endpointOverride: this.#opts.endpointOverride };
  }

  async #base(ctx: CallContext): Promise<string> {
    const o = this.#opts;
    if (o.endpointOverride) return normalizeBase(o.endpointOverride);
    const url = await o.admin.endpoint('network', { interfaces: o.interfaces, region: o.region }, ctx);
    return normalizeBase(url);
  }

  /** One call: endpoint, tokens, connect retries, 401 renewal, errors as NeutronClientError. */
  async call<T>(
    ctx: CallContext,
    auth: AuthProvider,
    req: { method: string; path: string; body?: unknown; portId?: string | undefined },
  ): Promise<T> {
    const base = await this.#base(ctx);
    const service = this.#opts.serviceUser ? await this.#opts.serviceUser.getToken(ctx) : undefined;
    const retries = this.#opts.httpRetries ?? 3;
    const send = async (token: string): Promise<T> => {
      let delay = this.#opts.retryDelayMs ?? 500;
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await this.#http.request<T>({
            method: req.method,
            url: `${base}/v2.0${req.path}`,
            data: req.body,
            headers: {
              ...contextHeaders(ctx),
              'X-Auth-Token': token,
              ...(service ? { 'X-Service-Token': service } : {}),
            },
          });
          return res.data;
        } catch (err) {
          if (err instanceof HttpRequestError && CONNECT_FAILURES.has(err.code) && attempt < retries) {
            this.#log.warn('neutron did not accept the connection, retrying', {
              method: req.method,
              path: err.path,
              attempt: attempt + 1,
            });
            await sleep(delay);
            delay *= 2;
            continue;
          }
          throw await toHttpError('neutron', err);
        }
      }
    };
    try {
      return await withAuth(auth, ctx, send);
    } catch (err) {
      throw asNeutronError(err, req.portId);
    }
  }

  /** GET of a collection, following Neutron's `<resource>_links` next pages. */
  async list<T>(ctx: CallContext, auth: AuthProvider, resource: string, key: string, q?: NeutronQuery): Promise<T[]> {
    const out: T[] = [];
    let path: string | undefined = `/${resource}${neutronQuery(q)}`;
    for (let page = 0; path !== undefined && page < MAX_LIST_PAGES; page++) {
      const body: Record<string, unknown> | null = await this.call<Record<string, unknown> | null>(ctx, auth, {
        method: 'GET',
        path,
      });
      const items = body?.[key];
      if (!Array.isArray(items)) {
        throw new AgentError(`neutron GET /v2.0/${resource}: the answer has no ${key} list`, {
          fields: { service: 'neutron' },
        });
      }
      out.push(...(items as T[]));
      path = nextPage(body?.[`${key}_links`], resource);
    }
    return out;
  }
}

/** The path (from /<resource>) of a `rel: next` link, if any. */
function nextPage(links: unknown, resource: string): string | undefined {
  if (!Array.isArray(links)) return undefined;
  for (const l of links as Array<{ rel?: unknown; href?: unknown }>) {
    if (l?.rel !== 'next' || typeof l.href !== 'string') continue;
    const i = l.href.indexOf(`/v2.0/${resource}`);
    if (i >= 0) return l.href.slice(i + '/v2.0'.length);
  }
  return undefined;
}

function staticToken(token: string): AuthProvider {
  return { kind: 'user', getToken: () => Promise.resolve(token), invalidate: () => false };
}

function asNeutronError(err: unknown, portId: string | undefined): Error {
  if (!(err instanceof HttpError) || err instanceof NeutronClientError) {
    return err instanceof Error ? err : new Error(String(err));
  }
  const neutronType = neutronErrorType(err.body);
  const about = portId ? ` (port ${portId})` : '';
  return new NeutronClientError(`${err.message}${about}`, {
    service: 'neutron',
    method: err.method,
    path: err.path,
    status: err.status,
    body: err.body,
    ...(err.remoteRequestId ? { remoteRequestId: err.remoteRequestId } : {}),
    ...(neutronType ? { neutronType } : {}),
    ...(portId ? { portId } : {}),
    cause: err,
  });
}

/** The calls of one request context, user or admin (Nova's ClientWrapper around neutronclient). */
export class NeutronApi {
  constructor(
    private readonly client: NeutronClient,
    private readonly ctx: NeutronCallContext,
    private readonly auth: AuthProvider,
    /** Whether the calls carry the `[neutron]` credentials. */
    readonly admin: boolean,
  ) {}

  /** GET /v2.0/extensions */
  async listExtensions(): Promise<NeutronExtension[]> {
    return this.client.list<NeutronExtension>(this.ctx, this.auth, 'extensions', 'extensions');
  }

  /** GET /v2.0/ports/{id}; a missing port is a NeutronClientError with status 404 (PortNotFound). */
  async showPort(portId: string, fields?: readonly string[]): Promise<NeutronPort> {
    const q = fields && fields.length > 0 ? neutronQuery({ fields }) : '';
    const body = await this.client.call<{ port: NeutronPort }>(this.ctx, this.auth, {
      method: 'GET',
      path: `/ports/${enc(portId)}${q}`,
      portId,
    });
    return body.port;
  }

  /** GET /v2.0/ports?… */
  async listPorts(q?: NeutronQuery): Promise<NeutronPort[]> {
    return this.client.list<NeutronPort>(this.ctx, this.auth, 'ports', 'ports', q);
  }

  /** POST /v2.0/ports */
  async createPort(port: PortCreate): Promise<NeutronPort> {
    const body = await this.client.call<{ port: NeutronPort }>(this.ctx, this.auth, {
      method: 'POST',
      path: '/ports',
      body: { port },
    });
    return body.port;
  }

  /** PUT /v2.0/ports/{id} */
  async updatePort(portId: string, port: PortUpdate): Promise<NeutronPort> {
    const body = await this.client.call<{ port: NeutronPort }>(this.ctx, this.auth, {
      method: 'PUT',
      path: `/ports/${enc(portId)}`,
      body: { port },
      portId,
    });
    return body.port;
  }

  /** DELETE /v2.0/ports/{id} */
  async deletePort(portId: string): Promise<void> {
    await this.client.call<unknown>(this.ctx, this.auth, { method: 'DELETE', path: `/ports/${enc(portId)}`, portId });
  }

  /** GET /v2.0/networks?… (`id` as a list: the requested networks; else tenant_id/shared for "nothing requested"). */
  async listNetworks(q?: NeutronQuery): Promise<NeutronNetwork[]> {
    return this.client.list<NeutronNetwork>(this.ctx, this.auth, 'networks', 'networks', q);
  }

  /** GET /v2.0/networks/{id} */
  async showNetwork(networkId: string, fields?: readonly string[]): Promise<NeutronNetwork> {
    const q = fields && fields.length > 0 ? neutronQuery({ fields }) : '';
    const body = await this.client.call<{ network: NeutronNetwork }>(this.ctx, this.auth, {
      method: 'GET',
      path: `/networks/${enc(networkId)}${q}`,
    });
    return body.network;
  }

  /** GET /v2.0/subnets?… */
  async listSubnets(q?: NeutronQuery): Promise<NeutronSubnet[]> {
    return this.client.list<NeutronSubnet>(this.ctx, this.auth, 'subnets', 'subnets', q);
  }

  /** GET /v2.0/security-groups?… */
  async listSecurityGroups(q?: NeutronQuery): Promise<NeutronSecurityGroup[]> {
    return this.client.list<NeutronSecurityGroup>(this.ctx, this.auth, 'security-groups', 'security_groups', q);
  }

  /** GET /v2.0/floatingips?… */
  async listFloatingIps(q?: NeutronQuery): Promise<NeutronFloatingIp[]> {
    return this.client.list<NeutronFloatingIp>(this.ctx, this.auth, 'floatingips', 'floatingips', q);
  }

  /** GET /v2.0/auto-allocated-topology/{project_id}: get-me-a-network's network for the project. */
  async autoAllocatedTopology(projectId: string): Promise<{ id: string }> {
    const body = await this.client.call<{ auto_allocated_topology: { id: string } }>(this.ctx, this.auth, {
      method: 'GET',
      path: `/auto-allocated-topology/${enc(projectId)}`,
    });
    return body.auto_allocated_topology;
  }
}
