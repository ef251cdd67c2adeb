/**
 * Placement API client for the compute node's resource provider: the calls
 * Zed's nova-compute makes (nova/scheduler/client/report.py), with the same
 * microversion per call as recorded from a real nova-compute in the lab
 * (shared/lab/traces/*.http.log): see PLACEMENT_MICROVERSIONS.
 *
 * Token: always the service token (placement calls are made with the
 * `[placement]` credentials, never the request's user token), renewed once on
 * 401. Endpoint: `endpointOverride`, else the `placement` service of the
 * Keystone catalog. X-OpenStack-Request-ID: the context's global request id,
 * else its request id (nova sends `context.global_id`).
 *
 * Writes that carry a provider generation (inventories, traits) read the
 * current state, skip the PUT when nothing changed, and on a 409 generation
 * conflict re-read and retry, a bounded number of times.
 */
import { AgentError } from '../../common/errors.js';
import { nullLogger, redactText, type Logger } from '../../common/log.js';
import { ConflictError, type HttpErrorDetails } from '../errors.js';
import { contextHeaders, createHttpClient, type CallContext, type HttpClient } from '../http.js';
import { withAuth, type AuthProvider } from '../keystone/client.js';
import type { EndpointQuery } from '../keystone/catalog.js';
import type {
  AllocationWrite,
  AllocationWriteResult,
  ConsumerAllocations,
  ConsumerResources,
  Inventories,
  InventoryInput,
  InventoryRecord,
  ProviderAllocations,
  ProviderInventories,
  ProviderTraits,
  ResourceProvider,
  SetResult,
} from './types.js';

/**
 * Microversion per call, as nova-compute Zed sends them. `undefined` = no
 * OpenStack-API-Version header (placement then answers at 1.0), which is what
 * nova does for those calls.
 */
export const PLACEMENT_MICROVERSIONS = Object.freeze({
  /** GET /resource_providers?in_tree= (NESTED_PROVIDER_API_VERSION) */
  providersInTree: '1.14',
  /** GET /resource_providers/{uuid} (NESTED_PROVIDER_API_VERSION) */
  getProvider: '1.14',
  /** GET /resource_providers?name= (get_provider_by_name sends none) */
  providerByName: undefined,
  /** POST /resource_providers (POST_RPS_RETURNS_PAYLOAD_API_VERSION: 200 with the body) */
  createProvider: '1.20',
  /** DELETE /resource_providers/{uuid} */
  deleteProvider: undefined,
  /** GET /resource_providers/{uuid}/inventories */
  getInventories: undefined,
  /** PUT /resource_providers/{uuid}/inventories (ALLOW_RESERVED_EQUAL_TOTAL_INVENTORY_VERSION) */
  putInventories: '1.26',
  /** GET /traits?name=in:…, PUT /traits/{name}, GET and PUT /resource_providers/{uuid}/traits */
  traits: '1.6',
  /** GET /allocations/{consumer} (CONSUMER_GENERATION_VERSION) */
  consumerAllocations: '1.28',
  /** DELETE /allocations/{consumer} (delete_allocation_for_instance with force=True) */
  deleteAllocations: undefined,
  /** PUT /allocations/{consumer} (delete_allocation_for_instance with force=False: empty allocations) */
  putAllocations: '1.28',
  /** POST /allocations (move_allocations, CONSUMER_GENERATION_VERSION) */
  postAllocations: '1.28',
  /** GET /resource_providers/{uuid}/allocations */
  providerAllocations: undefined,
} satisfies Record<string, string | undefined>);

const MV = PLACEMENT_MICROVERSIONS;

/** Placement error codes (placement/errors.py) the client acts on. */
export const PLACEMENT_ERROR_CODES = Object.freeze({
  concurrentUpdate: 'placement.concurrent_update',
  inventoryInUse: 'placement.inventory.inuse',
  providerInUse: 'placement.resource_provider.inuse',
});

/** A provider with the requested name exists under another uuid. */
export class ProviderNameConflictError extends ConflictError {
  constructor(
    message: string,
    d: HttpErrorDetails,
    readonly providerName: string,
    readonly requestedUuid: string,
    readonly existingUuid: string | undefined,
  ) {
    super(message, d);
  }
}

/** The provider's generation kept changing under us: the bounded retries are used up. */
export class GenerationConflictError extends ConflictError {}

/** A PUT of inventories would remove or shrink inventory that allocations still use. */
export class InventoryInUseError extends ConflictError {}

/** DELETE of a provider that still has allocations (or children). */
export class ProviderInUseError extends ConflictError {}

/** Standard (non-CUSTOM_) traits the placement service does not know; they cannot be created. */
export class UnknownTraitError extends AgentError {
  constructor(readonly traits: readonly string[]) {
    super(`placement does not know the standard trait(s) ${traits.join(', ')} (only CUSTOM_* traits can be created)`, {
      fields: { service: 'placement' },
    });
  }
}

/** Placement answered 2xx with a body the client cannot read. */
export class PlacementResponseError extends AgentError {}

/** What the client needs from Keystone (KeystoneClient fits): the service token and the catalog. */
export type PlacementKeystone = AuthProvider & {
  endpoint(serviceType: string, q?: EndpointQuery, ctx?: CallContext): Promise<string>;
};

export interface PlacementOptions {
  keystone: PlacementKeystone;
  /** `[placement] endpoint_override`: base URL used instead of the catalog. */
  endpointOverride?: string | undefined;
  /** `[placement] region_name` */
  region?: string | undefined;
  /** `[placement] valid_interfaces`, in order of preference. */
  interfaces?: readonly string[] | undefined;
  /** Attempts of a generation-guarded PUT (inventories, traits) before GenerationConflictError. Default 3. */
  generationAttempts?: number | undefined;
  timeoutMs?: number | undefined;
  logger?: Logger | undefined;
}

export interface SetOptions<T> {
  /** The provider's state as the caller last saw it (saves the first GET; a stale one costs a 409 and a re-read). */
  current?: T | undefined;
}

/** Placement's defaults for fields an inventory PUT leaves out. */
export const INVENTORY_DEFAULTS: Readonly<Omit<InventoryRecord, 'total'>> = Object.freeze({
  reserved: 0,
  min_unit: 1,
  max_unit: 2147483647,
  step_size: 1,
  allocation_ratio: 1.0,
});

/**
 * Whether PUTting `desired` would change `current`, as nova's
 * ProviderTree.has_inventory_changed decides (nova/compute/provider_tree.py):
 * a different set of resource classes, or a field given in `desired` that is
 * missing from or differs in `current`. Fields left out of `desired` are not
 * compared.
 */
export function inventoryChanged(
  current: Readonly<Record<string, Partial<InventoryRecord>>>,
  desired: Readonly<Record<string, InventoryInput>>,
): boolean {
  const cur = Object.keys(current);
  const want = Object.keys(desired);
  if (cur.length !== want.length || want.some((rc) => !(rc in current))) return true;
  for (const rc of want) {
    const c = current[rc];
    const d = desired[rc];
    if (!c || !d) return true;
    for (const [k, v] of Object.entries(d)) {
      if (v === undefined) continue;
      if (!(k in c) || c[k as keyof InventoryRecord] !== v) return true;
    }
  }
  return false;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((x) => sb.has(x));
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function bad(what: string): PlacementResponseError {
  return new PlacementResponseError(`placement: unexpected answer to ${what}`, { fields: { service: 'placement' } });
}

function parseProvider(raw: unknown, what: string): ResourceProvider {
  if (!isRecord(raw) || typeof raw.uuid !== 'string' || typeof raw.name !== 'string') throw bad(what);
  if (typeof raw.generation !== 'number') throw bad(what);
  return { uuid: raw.uuid, name: raw.name, generation: raw.generation };
}

function parseProviderList(raw: unknown, what: string): ResourceProvider[] {
  if (!isRecord(raw) || !Array.isArray(raw.resource_providers)) throw bad(what);
  return (raw.resource_providers as unknown[]).map((p) => parseProvider(p, what));
}

function generationOf(raw: Record<string, unknown>, what: string): number {
  const g = raw.resource_provider_generation;
  if (typeof g !== 'number') throw bad(what);
  return g;
}

function parseInventories(raw: unknown, what: string): ProviderInventories {
  if (!isRecord(raw) || !isRecord(raw.inventories)) throw bad(what);
  const inventories: Inventories = {};
  for (const [rc, rec] of Object.entries(raw.inventories)) {
    if (!isRecord(rec) || typeof rec.total !== 'number') throw bad(what);
    const field = (k: keyof typeof INVENTORY_DEFAULTS): number => {
      const v = rec[k];
      return typeof v === 'number' ? v : INVENTORY_DEFAULTS[k];
    };
    inventories[rc] = {
      total: rec.total,
      reserved: field('reserved'),
      min_unit: field('min_unit'),
      max_unit: field('max_unit'),
      step_size: field('step_size'),
      allocation_ratio: field('allocation_ratio'),
    };
  }
  return { generation: generationOf(raw, what), inventories };
}

function parseTraits(raw: unknown, what: string): ProviderTraits {
  if (!isRecord(raw) || !Array.isArray(raw.traits)) throw bad(what);
  const traits = (raw.traits as unknown[]).filter((t): t is string => typeof t === 'string');
  return { generation: generationOf(raw, what), traits };
}

function parseResources(raw: unknown, what: string): Record<string, number> {
  if (!isRecord(raw)) throw bad(what);
  const out: Record<string, number> = {};
  for (const [rc, n] of Object.entries(raw)) if (typeof n === 'number') out[rc] = n;
  return out;
}

function parseConsumerMap(raw: unknown, what: string): Record<string, ConsumerResources & { generation?: number }> {
  if (!isRecord(raw)) throw bad(what);
  const out: Record<string, ConsumerResources & { generation?: number }> = {};
  for (const [key, entry] of Object.entries(raw)) {
    if (!isRecord(entry)) throw bad(what);
    out[key] = {
      resources: parseResources(entry.resources, what),
      ...(typeof entry.generation === 'number' ? { generation: entry.generation } : {}),
    };
  }
  return out;
}

/** First entry of placement's `{"errors": [{code, detail, …}]}` body. */
function placementErrorOf(data: unknown): { code?: string; detail?: string } {
  let body = data;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body) as unknown;
    } catch {
      return { detail: body as string };
    }
  }
  const first = isRecord(body) && Array.isArray(body.errors) ? (body.errors as unknown[])[0] : undefined;
  if (!isRecord(first)) return {};
  return {
    ...(typeof first.code === 'string' ? { code: first.code } : {}),
    ...(typeof first.detail === 'string' ? { detail: first.detail.replace(/\s+/g, ' ').trim() } : {}),
  };
}

function snippet(data: unknown): string | undefined {
  if (data === undefined || data === null || data === '') return undefined;
  let text: string;
  try {
    text = typeof data === 'string' ? data : (JSON.stringify(data) ?? '');
  } catch {
    text = '(unprintable body)';
  }
  const t = redactText(text.slice(0, 512).trim());
  return t === '' ? undefined : t;
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

interface Call {
  method: Method;
  /** Path below the endpoint, without query. */
  path: string;
  /** Already encoded, without '?'. */
  query?: string;
  mv: string | undefined;
  body?: unknown;
  /** Statuses answered to the caller instead of thrown (e.g. 404, 409). */
  tolerate?: readonly number[];
}

interface Answer {
  status: number;
  data: unknown;
  remoteRequestId: string | undefined;
}

/**
 * The consumer allocation calls a compute host makes around a move (nova's
 * report.py move_allocations and delete_allocation_for_instance):
 * PlacementClient implements it, and so do the unit tests' fakes.
 */
export interface PlacementAllocations {
  getAllocations(consumerUuid: string, ctx?: CallContext): Promise<ConsumerAllocations>;
  putAllocations(consumerUuid: string, body: AllocationWrite, ctx?: CallContext): Promise<AllocationWriteResult>;
  postAllocations(body: Record<string, AllocationWrite>, ctx?: CallContext): Promise<AllocationWriteResult>;
}

export class PlacementClient implements PlacementAllocations {
  readonly #keystone: PlacementKeystone;
  readonly #override: string | undefined;
  readonly #endpointQuery: EndpointQuery;
  readonly #attempts: number;
  readonly #http: HttpClient;
  readonly #log: Logger;

  constructor(opts: PlacementOptions) {
    this.#keystone = opts.keystone;
    const override = opts.endpointOverride?.trim();
    this.#override = override ? override.replace(/\/+$/, '') : undefined;
    this.#endpointQuery = { interfaces: opts.interfaces, region: opts.region };
    this.#attempts = Math.max(1, Math.floor(opts.generationAttempts ?? 3));
    this.#http = createHttpClient({ service: 'placement', timeoutMs: opts.timeoutMs });
    this.#log = (opts.logger ?? nullLogger()).child({ logger: 'nova_docker.clients.placement' });
  }

  /** GET /resource_providers/{uuid}; undefined when there is none. */
  async getProvider(uuid: string, ctx?: CallContext): Promise<ResourceProvider | undefined> {
    const what = 'GET /resource_providers/{uuid}';
    const a = await this.#call(ctx, {
      method: 'GET',
      path: `/resource_providers/${enc(uuid)}`,
      mv: MV.getProvider,
      tolerate: [404],
    });
    return a.status === 404 ? undefined : parseProvider(a.data, what);
  }

  /**
   * The provider with this uuid, created when missing (nova's
   * _ensure_resource_provider: GET ?in_tree=, then POST). A create that races
   * with another creator of the same uuid returns that provider. A provider
   * that already has this uuid keeps its name (placement providers are not
   * renamed here). A provider with this NAME under another uuid is a
   * ProviderNameConflictError naming both uuids.
   */
  async ensureProvider(p: { uuid: string; name: string }, ctx?: CallContext): Promise<ResourceProvider> {
    const tree = await this.#call(ctx, {
      method: 'GET',
      path: '/resource_providers',
      query: `in_tree=${enc(p.uuid)}`,
      mv: MV.providersInTree,
    });
    const found = parseProviderList(tree.data, 'GET /resource_providers?in_tree').find((r) => r.uuid === p.uuid);
    if (found) {
      if (found.name !== p.name) {
        this.#log.warn('resource provider exists under another name; keeping it', {
          uuid: p.uuid,
          name: found.name,
          wanted_name: p.name,
        });
      }
      return found;
    }
    const call: Call = {
      method: 'POST',
      path: '/resource_providers',
      mv: MV.createProvider,
      body: { uuid: p.uuid, name: p.name },
      tolerate: [409],
    };
    const created = await this.#call(ctx, call);
    if (created.status !== 409) {
      this.#log.info('created resource provider', { uuid: p.uuid, name: p.name });
      return parseProvider(created.data, 'POST /resource_providers');
    }
    // 409: the uuid or the name is taken. Placement's detail says which, but only in prose: look.
    const byUuid = await this.getProvider(p.uuid, ctx);
    if (byUuid) {
      this.#log.info('resource provider was created concurrently', { uuid: p.uuid });
      return byUuid;
    }
    const other = await this.#providerByName(p.name, ctx);
    const existing = other ? ` by provider ${other.uuid}` : '';
    throw new ProviderNameConflictError(
      `placement: cannot create resource provider ${p.uuid}: the name "${p.name}" is already used${existing} ` +
        '(a stale provider of an earlier compute node with the same hypervisor_hostname? remove it with ' +
        '`openstack resource provider delete` once it has no allocations)',
      this.#details(call, created),
      p.name,
      p.uuid,
      other?.uuid,
    );
  }

  /** GET /resource_providers/{uuid}/inventories. A missing provider is a NotFoundError. */
  async getInventories(uuid: string, ctx?: CallContext): Promise<ProviderInventories> {
    const a = await this.#call(ctx, {
      method: 'GET',
      path: `/resource_providers/${enc(uuid)}/inventories`,
      mv: MV.getInventories,
    });
    return parseInventories(a.data, 'GET /resource_providers/{uuid}/inventories');
  }

  /**
   * Makes the provider's inventories `inventories` (all of them: classes not
   * listed are removed; `{}` removes everything). No PUT when nothing changed
   * (inventoryChanged). A generation conflict re-reads and retries; removing
   * inventory that allocations use is an InventoryInUseError.
   */
  async setInventories(
    uuid: string,
    inventories: Readonly<Record<string, InventoryInput>>,
    ctx?: CallContext,
    opts: SetOptions<ProviderInventories> = {},
  ): Promise<ProviderInventories & SetResult> {
    let cur = opts.current ?? (await this.getInventories(uuid, ctx));
    const path = `/resource_providers/${enc(uuid)}/inventories`;
    let last: Answer | undefined;
    let call: Call | undefined;
    for (let attempt = 1; attempt <= this.#attempts; attempt++) {
      if (attempt > 1) cur = await this.getInventories(uuid, ctx);
      if (!inventoryChanged(cur.inventories, inventories)) {
        this.#log.debug('inventory unchanged', { uuid, generation: cur.generation });
        return { ...cur, changed: false };
      }
      call = {
        method: 'PUT',
        path,
        mv: MV.putInventories,
        body: { resource_provider_generation: cur.generation, inventories },
        tolerate: [409],
      };
      last = await this.#call(ctx, call);
      if (last.status !== 409) {
        const res = parseInventories(last.data, 'PUT /resource_providers/{uuid}/inventories');
        this.#log.info('updated inventory', { uuid, generation: res.generation });
        return { ...res, changed: true };
      }
      const err = placementErrorOf(last.data);
      if (err.code === PLACEMENT_ERROR_CODES.inventoryInUse) {
        throw new InventoryInUseError(
          `placement: inventory of provider ${uuid} is in use, cannot change it: ${err.detail ?? 'in use'}`,
          this.#details(call, last),
        );
      }
      this.#log.warn('inventory update hit a generation conflict; re-reading', {
        uuid,
        generation: cur.generation,
        attempt,
      });
    }
    throw this.#exhausted(uuid, 'inventories', call, last);
  }

  /** GET /resource_providers/{uuid}/traits. A missing provider is a NotFoundError. */
  async getTraits(uuid: string, ctx?: CallContext): Promise<ProviderTraits> {
    const a = await this.#call(ctx, {
      method: 'GET',
      path: `/resource_providers/${enc(uuid)}/traits`,
      mv: MV.traits,
    });
    return parseTraits(a.data, 'GET /resource_providers/{uuid}/traits');
  }

  /**
   * Makes sure every trait exists in placement (nova's _ensure_traits): one
   * GET /traits?name=in:…, then PUT /traits/{name} for each missing CUSTOM_*
   * trait. A missing standard trait is an UnknownTraitError (placement cannot
   * create those).
   */
  async ensureTraits(traits: readonly string[], ctx?: CallContext): Promise<void> {
    const wanted = [...new Set(traits)];
    if (wanted.length === 0) return;
    const a = await this.#call(ctx, {
      method: 'GET',
      path: '/traits',
      query: `name=in:${wanted.map(enc).join(',')}`,
      mv: MV.traits,
    });
    if (!isRecord(a.data) || !Array.isArray(a.data.traits)) throw bad('GET /traits');
    const known = new Set(a.data.traits as unknown[]);
    const missing = wanted.filter((t) => !known.has(t));
    const standard = missing.filter((t) => !t.startsWith('CUSTOM_'));
    if (standard.length > 0) throw new UnknownTraitError(standard);
    for (const t of missing) {
      await this.#call(ctx, { method: 'PUT', path: `/traits/${enc(t)}`, mv: MV.traits });
      this.#log.info('created custom trait', { trait: t });
    }
  }

  /**
   * Makes the provider's traits exactly `traits` (ensureTraits first). No PUT
   * when the set is unchanged; a generation conflict re-reads and retries.
   */
  async setTraits(
    uuid: string,
    traits: readonly string[],
    ctx?: CallContext,
    opts: SetOptions<ProviderTraits> = {},
  ): Promise<ProviderTraits & SetResult> {
    const wanted = [...new Set(traits)];
    let cur = opts.current ?? (await this.getTraits(uuid, ctx));
    const path = `/resource_providers/${enc(uuid)}/traits`;
    let ensured = false;
    let last: Answer | undefined;
    let call: Call | undefined;
    for (let attempt = 1; attempt <= this.#attempts; attempt++) {
      if (attempt > 1) cur = await this.getTraits(uuid, ctx);
      if (sameSet(cur.traits, wanted)) {
        this.#log.debug('traits unchanged', { uuid, generation: cur.generation });
        return { ...cur, changed: false };
      }
      if (!ensured) {
        await this.ensureTraits(wanted, ctx);
        ensured = true;
      }
      call = {
        method: 'PUT',
        path,
        mv: MV.traits,
        body: { resource_provider_generation: cur.generation, traits: wanted },
        tolerate: [409],
      };
      last = await this.#call(ctx, call);
      if (last.status !== 409) {
        const res = parseTraits(last.data, 'PUT /resource_providers/{uuid}/traits');
        this.#log.info('updated traits', { uuid, generation: res.generation });
        return { ...res, changed: true };
      }
      this.#log.warn('traits update hit a generation conflict; re-reading', {
        uuid,
        generation: cur.generation,
        attempt,
      });
    }
    throw this.#exhausted(uuid, 'traits', call, last);
  }

  /** GET /allocations/{consumer}: `allocations` is `{}` for a consumer placement does not know. */
  async getAllocations(consumerUuid: string, ctx?: CallContext): Promise<ConsumerAllocations> {
    const what = 'GET /allocations/{consumer}';
    const a = await this.#call(ctx, {
      method: 'GET',
      path: `/allocations/${enc(consumerUuid)}`,
      mv: MV.consumerAllocations,
    });
    if (!isRecord(a.data)) throw bad(what);
    const d = a.data;
    const cg = d.consumer_generation;
    return {
      allocations: parseConsumerMap(d.allocations, what),
      ...(typeof cg === 'number' || cg === null ? { consumer_generation: cg } : {}),
      ...(typeof d.project_id === 'string' ? { project_id: d.project_id } : {}),
      ...(typeof d.user_id === 'string' ? { user_id: d.user_id } : {}),
    };
  }

  /**
   * DELETE /allocations/{consumer} (nova's delete_allocation_for_instance
   * with force=True). Idempotent: true when allocations were deleted, false
   * when there were none (404).
   */
  async deleteAllocations(consumerUuid: string, ctx?: CallContext): Promise<boolean> {
    const a = await this.#call(ctx, {
      method: 'DELETE',
      path: `/allocations/${enc(consumerUuid)}`,
      mv: MV.deleteAllocations,
      tolerate: [404],
    });
    if (a.status === 404) return false;
    this.#log.info('deleted allocations', { consumer: consumerUuid });
    return true;
  }

  /**
   * PUT /allocations/{consumer} at 1.28 (body with consumer_generation,
   * project_id, user_id). A 409 (consumer or provider generation moved) is
   * answered, not thrown, so the caller decides whether to retry.
   */
  async putAllocations(consumerUuid: string, body: AllocationWrite, ctx?: CallContext): Promise<AllocationWriteResult> {
    const a = await this.#call(ctx, {
      method: 'PUT',
      path: `/allocations/${enc(consumerUuid)}`,
      mv: MV.putAllocations,
      body,
      tolerate: [409],
    });
    return a.status === 409 ? { ok: false, status: 409, ...placementErrorOf(a.data) } : { ok: true };
  }

  /**
   * POST /allocations at 1.28: several consumers in one transaction (nova's
   * move_allocations). A 409 is answered, not thrown.
   */
  async postAllocations(body: Record<string, AllocationWrite>, ctx?: CallContext): Promise<AllocationWriteResult> {
    const a = await this.#call(ctx, {
      method: 'POST',
      path: '/allocations',
      mv: MV.postAllocations,
      body,
      tolerate: [409],
    });
    return a.status === 409 ? { ok: false, status: 409, ...placementErrorOf(a.data) } : { ok: true };
  }

  /** GET /resource_providers/{uuid}/allocations: every consumer on the provider and what it holds. */
  async getProviderAllocations(rpUuid: string, ctx?: CallContext): Promise<ProviderAllocations> {
    const what = 'GET /resource_providers/{uuid}/allocations';
    const a = await this.#call(ctx, {
      method: 'GET',
      path: `/resource_providers/${enc(rpUuid)}/allocations`,
      mv: MV.providerAllocations,
    });
    if (!isRecord(a.data)) throw bad(what);
    return { generation: generationOf(a.data, what), allocations: parseConsumerMap(a.data.allocations, what) };
  }

  /**
   * DELETE /resource_providers/{uuid}. True when deleted, false when there
   * was none (404). A provider with allocations is a ProviderInUseError.
   */
  async deleteProvider(uuid: string, ctx?: CallContext): Promise<boolean> {
    const call: Call = {
      method: 'DELETE',
      path: `/resource_providers/${enc(uuid)}`,
      mv: MV.deleteProvider,
      tolerate: [404, 409],
    };
    const a = await this.#call(ctx, call);
    if (a.status === 404) return false;
    if (a.status === 409) {
      const err = placementErrorOf(a.data);
      throw new ProviderInUseError(
        `placement: cannot delete resource provider ${uuid}: ${err.detail ?? 'in use'}`,
        this.#details(call, a),
      );
    }
    this.#log.info('deleted resource provider', { uuid });
    return true;
  }

  /** Keeps tokens out of inspection. */
  toJSON(): Record<string, unknown> {
    return { endpointOverride: this.#override };
  }

  async #providerByName(name: string, ctx: CallContext | undefined): Promise<ResourceProvider | undefined> {
    const a = await this.#call(ctx, {
      method: 'GET',
      path: '/resource_providers',
      query: `name=${enc(name)}`,
      mv: MV.providerByName,
    });
    return parseProviderList(a.data, 'GET /resource_providers?name=')[0];
  }

  async #base(ctx: CallContext | undefined): Promise<string> {
    if (this.#override) return this.#override;
    const url = await this.#keystone.endpoint('placement', this.#endpointQuery, ctx);
    return url.replace(/\/+$/, '');
  }

  async #call(ctx: CallContext | undefined, c: Call): Promise<Answer> {
    const base = await this.#base(ctx);
    const url = `${base}${c.path}${c.query ? `?${c.query}` : ''}`;
    const tolerate = c.tolerate ?? [];
    return withAuth(this.#keystone, ctx, async (token) => {
      const res = await this.#http.request<unknown>({
        method: c.method,
        url,
        ...(c.body === undefined ? {} : { data: c.body }),
        headers: {
          Accept: 'application/json',
          ...(c.body === undefined ? {} : { 'Content-Type': 'application/json' }),
          ...(c.mv ? { 'OpenStack-API-Version': `placement ${c.mv}` } : {}),
          ...contextHeaders(ctx),
          'X-Auth-Token': token,
        },
        validateStatus: (s) => (s >= 200 && s < 300) || tolerate.includes(s),
      });
      const rid = res.headers['x-openstack-request-id'] as unknown;
      return { status: res.status, data: res.data, remoteRequestId: typeof rid === 'string' ? rid : undefined };
    });
  }

  #details(c: Call, a: Answer): HttpErrorDetails {
    const body = snippet(a.data);
    return {
      service: 'placement',
      method: c.method,
      path: c.path,
      status: a.status,
      ...(body === undefined ? {} : { body }),
      ...(a.remoteRequestId === undefined ? {} : { remoteRequestId: a.remoteRequestId }),
    };
  }

  #exhausted(uuid: string, what: string, call: Call | undefined, last: Answer | undefined): GenerationConflictError {
    const d: HttpErrorDetails =
      call && last ? this.#details(call, last) : { service: 'placement', method: 'PUT', path: '', status: 409 };
    return new GenerationConflictError(
      `placement: ${what} of provider ${uuid} kept changing (generation conflict ${this.#attempts} times)`,
      d,
    );
  }
}
