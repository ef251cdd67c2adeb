import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import nock from 'nock';
import { ConflictError, UnavailableError } from '../../../src/clients/errors.js';
import type { CallContext } from '../../../src/clients/http.js';
import type { EndpointQuery } from '../../../src/clients/keystone/index.js';
import {
  GenerationConflictError,
  InventoryInUseError,
  PlacementClient,
  ProviderInUseError,
  ProviderNameConflictError,
  UnknownTraitError,
  inventoryChanged,
  type PlacementKeystone,
} from '../../../src/clients/placement/index.js';
import { setupNock } from './fixtures.js';

const PLACEMENT = 'http://127.0.0.1:65005';
const RP = '0ba3e2c1-d47f-49b0-ba88-23020e556117';
const OTHER = '11111111-2222-3333-4444-555555555555';
const CONSUMER = '05395e8f-3dcc-4517-943c-c58db25d2998';

type Headers = Record<string, string | string[] | undefined>;

/** A Keystone stand-in: tokens in order (next one after each invalidate), the catalog lookups it saw. */
function stubKeystone(tokens: string[] = ['svc-token']): PlacementKeystone & {
  lookups: { type: string; q: EndpointQuery | undefined }[];
  invalidated: string[];
} {
  let i = 0;
  const lookups: { type: string; q: EndpointQuery | undefined }[] = [];
  const invalidated: string[] = [];
  return {
    kind: 'service',
    lookups,
    invalidated,
    getToken: () => Promise.resolve(tokens[Math.min(i, tokens.length - 1)]!),
    invalidate(t: string) {
      invalidated.push(t);
      i++;
      return true;
    },
    endpoint(type: string, q?: EndpointQuery) {
      lookups.push({ type, q });
      return Promise.resolve(`${PLACEMENT}/`);
    },
  };
}

const INV = {
  VCPU: { total: 4, reserved: 0, min_unit: 1, max_unit: 4, step_size: 1, allocation_ratio: 16.0 },
  MEMORY_MB: { total: 8192, reserved: 512, min_unit: 1, max_unit: 8192, step_size: 1, allocation_ratio: 1.5 },
};

function conflict(code: string | undefined, detail: string): Record<string, unknown> {
  return {
    errors: [{ status: 409, title: 'Conflict', detail, ...(code ? { code } : {}), request_id: 'req-placement-1' }],
  };
}

const CTX: CallContext = { requestId: 'req-local', globalRequestId: 'req-global' };

describe('clients/placement', () => {
  setupNock();
  let ks: ReturnType<typeof stubKeystone>;
  let client: PlacementClient;
  beforeEach(() => {
    ks = stubKeystone();
    client = new PlacementClient({ keystone: ks, region: 'RegionOne', interfaces: ['internal'] });
  });

  it('finds the endpoint in the catalog and sends the service token, mv 1.14 and the global request id', async () => {
    let headers: Headers = {};
    nock(PLACEMENT)
      .get(`/resource_providers/${RP}`)
      .reply(function () {
        headers = this.req.headers;
        return [200, { uuid: RP, name: 'lab-compute', generation: 3, links: [] }];
      });
    assert.deepEqual(await client.getProvider(RP, CTX), { uuid: RP, name: 'lab-compute', generation: 3 });
    assert.deepEqual(ks.lookups, [{ type: 'placement', q: { interfaces: ['internal'], region: 'RegionOne' } }]);
    assert.equal(headers['x-auth-token'], 'svc-token');
    assert.equal(headers['openstack-api-version'], 'placement 1.14');
    assert.equal(headers['x-openstack-request-id'], 'req-global');
    assert.equal(headers.accept, 'application/json');
  });

  it('getProvider: 404 is undefined; endpointOverride bypasses the catalog', async () => {
    nock('http://127.0.0.1:65006').get(`/placement/resource_providers/${RP}`).reply(404, conflict(undefined, 'no'));
    const c = new PlacementClient({ keystone: ks, endpointOverride: 'http://127.0.0.1:65006/placement/' });
    assert.equal(await c.getProvider(RP), undefined);
    assert.deepEqual(ks.lookups, []);
  });

  it("ensureProvider: GET ?in_tree (1.14) then POST (1.20) {uuid, name}, as nova's first start does", async () => {
    const seen: { mv: unknown; body?: unknown }[] = [];
    nock(PLACEMENT)
      .get('/resource_providers')
      .query({ in_tree: RP })
      .reply(function () {
        seen.push({ mv: this.req.headers['openstack-api-version'] });
        return [200, { resource_providers: [] }];
      })
      .post('/resource_providers')
      .reply(function (_uri, body) {
        seen.push({ mv: this.req.headers['openstack-api-version'], body });
        return [200, { uuid: RP, name: 'lab-compute', generation: 0, parent_provider_uuid: null }];
      });
    const p = await client.ensureProvider({ uuid: RP, name: 'lab-compute' }, CTX);
    assert.deepEqual(p, { uuid: RP, name: 'lab-compute', generation: 0 });
    assert.deepEqual(seen, [
      { mv: 'placement 1.14' },
      { mv: 'placement 1.20', body: { uuid: RP, name: 'lab-compute' } },
    ]);
  });

  it('ensureProvider: an existing provider is returned without a POST', async () => {
    nock(PLACEMENT)
      .get('/resource_providers')
      .query({ in_tree: RP })
      .reply(200, { resource_providers: [{ uuid: RP, name: 'lab-compute', generation: 7 }] });
    assert.equal((await client.ensureProvider({ uuid: RP, name: 'lab-compute' })).generation, 7);
  });

  it('ensureProvider: a 409 because another creator won the race re-reads the provider', async () => {
    nock(PLACEMENT)
      .get('/resource_providers')
      .query({ in_tree: RP })
      .reply(200, { resource_providers: [] })
      .post('/resource_providers')
      .reply(409, conflict(undefined, `Conflicting resource provider uuid: ${RP} already exists.`))
      .get(`/resource_providers/${RP}`)
      .reply(200, { uuid: RP, name: 'lab-compute', generation: 0 });
    assert.equal((await client.ensureProvider({ uuid: RP, name: 'lab-compute' })).uuid, RP);
  });

  it('ensureProvider: the name taken by another uuid is a ProviderNameConflictError naming both', async () => {
    nock(PLACEMENT)
      .get('/resource_providers')
      .query({ in_tree: RP })
      .reply(200, { resource_providers: [] })
      .post('/resource_providers')
      .reply(409, conflict(undefined, 'Conflicting resource provider name: lab-compute already exists.'))
      .get(`/resource_providers/${RP}`)
      .reply(404, conflict(undefined, 'not found'))
      .get('/resource_providers')
      .query({ name: 'lab-compute' })
      .reply(200, { resource_providers: [{ uuid: OTHER, name: 'lab-compute', generation: 4 }] });
    const err = await client.ensureProvider({ uuid: RP, name: 'lab-compute' }).catch((e: unknown) => e);
    assert.ok(err instanceof ProviderNameConflictError);
    assert.ok(err instanceof ConflictError);
    assert.equal(err.existingUuid, OTHER);
    assert.match(err.message, new RegExp(`${RP}.*lab-compute.*${OTHER}`));
  });

  it('setInventories: no microversion on the GET, 1.26 on the PUT; a 409 generation conflict re-reads and retries', async () => {
    const puts: { mv: unknown; body: unknown }[] = [];
    let getMv: unknown = 'unset';
    nock(PLACEMENT)
      .get(`/resource_providers/${RP}/inventories`)
      .reply(function () {
        getMv = this.req.headers['openstack-api-version'];
        return [200, { resource_provider_generation: 5, inventories: {} }];
      })
      .put(`/resource_providers/${RP}/inventories`)
      .reply(function (_u, body) {
        puts.push({ mv: this.req.headers['openstack-api-version'], body });
        return [409, conflict('placement.concurrent_update', 'resource provider generation conflict')];
      })
      .get(`/resource_providers/${RP}/inventories`)
      .reply(200, { resource_provider_generation: 6, inventories: {} })
      .put(`/resource_providers/${RP}/inventories`)
      .reply(function (_u, body) {
        puts.push({ mv: this.req.headers['openstack-api-version'], body });
        return [200, { resource_provider_generation: 7, inventories: INV }];
      });
    const res = await client.setInventories(RP, INV, CTX);
    assert.deepEqual(res, { generation: 7, inventories: INV, changed: true });
    assert.equal(getMv, undefined);
    assert.deepEqual(
      puts.map((p) => p.mv),
      ['placement 1.26', 'placement 1.26'],
    );
    assert.deepEqual(puts[0]!.body, { resource_provider_generation: 5, inventories: INV });
    assert.deepEqual(puts[1]!.body, { resource_provider_generation: 6, inventories: INV });
  });

  it('setInventories: nothing changed, no PUT', async () => {
    const scope = nock(PLACEMENT)
      .get(`/resource_providers/${RP}/inventories`)
      .reply(200, { resource_provider_generation: 9, inventories: INV });
    const res = await client.setInventories(RP, { VCPU: { ...INV.VCPU }, MEMORY_MB: { ...INV.MEMORY_MB } });
    assert.deepEqual(res, { generation: 9, inventories: INV, changed: false });
    assert.ok(scope.isDone());
  });

  it('setInventories: a known current state saves the GET', async () => {
    nock(PLACEMENT)
      .put(`/resource_providers/${RP}/inventories`)
      .reply(200, { resource_provider_generation: 2, inventories: INV });
    const res = await client.setInventories(RP, INV, undefined, { current: { generation: 1, inventories: {} } });
    assert.equal(res.generation, 2);
  });

  it('setInventories: gives up after 3 conflicting PUTs with a GenerationConflictError', async () => {
    let puts = 0;
    nock(PLACEMENT)
      .get(`/resource_providers/${RP}/inventories`)
      .times(3)
      .reply(200, { resource_provider_generation: 1, inventories: {} })
      .put(`/resource_providers/${RP}/inventories`)
      .times(3)
      .reply(() => {
        puts++;
        return [409, conflict('placement.concurrent_update', 'resource provider generation conflict')];
      });
    const err = await client.setInventories(RP, INV).catch((e: unknown) => e);
    assert.ok(err instanceof GenerationConflictError, String(err));
    assert.ok(err instanceof ConflictError);
    assert.equal(err.status, 409);
    assert.equal(err.remoteRequestId, undefined);
    assert.equal(puts, 3);
  });

  it('setInventories: inventory in use is an InventoryInUseError at once (no retry)', async () => {
    nock(PLACEMENT)
      .get(`/resource_providers/${RP}/inventories`)
      .reply(200, { resource_provider_generation: 1, inventories: INV })
      .put(`/resource_providers/${RP}/inventories`)
      .reply(409, conflict('placement.inventory.inuse', `Inventory for 'VCPU' on resource provider '${RP}' in use.`), {
        'x-openstack-request-id': 'req-p-9',
      });
    const err = await client.setInventories(RP, { MEMORY_MB: INV.MEMORY_MB }).catch((e: unknown) => e);
    assert.ok(err instanceof InventoryInUseError, String(err));
    assert.match(err.message, /Inventory for 'VCPU'.* in use/);
    assert.equal(err.remoteRequestId, 'req-p-9');
    assert.equal(err.path, `/resource_providers/${RP}/inventories`);
  });

  it('setTraits: ensures the traits (GET /traits?name=in:, PUT /traits/CUSTOM_*), then PUTs with the generation, retrying on 409', async () => {
    const log: string[] = [];
    const rec = function (this: { req: { method: string; path: string; headers: Headers } }): void {
      log.push(
        `${this.req.method} ${decodeURIComponent(this.req.path)} ${String(this.req.headers['openstack-api-version'])}`,
      );
    };
    nock(PLACEMENT)
      .get(`/resource_providers/${RP}/traits`)
      .reply(function () {
        rec.call(this);
        return [200, { resource_provider_generation: 1, traits: ['CUSTOM_OPERATOR'] }];
      })
      .get('/traits')
      .query(true)
      .reply(function () {
        rec.call(this);
        return [200, { traits: ['COMPUTE_NODE'] }];
      })
      .put('/traits/CUSTOM_DOCKER')
      .reply(function () {
        rec.call(this);
        return [201];
      })
      .put(`/resource_providers/${RP}/traits`)
      .reply(function (_u, body) {
        rec.call(this);
        assert.deepEqual(body, { resource_provider_generation: 1, traits: ['COMPUTE_NODE', 'CUSTOM_DOCKER'] });
        return [409, conflict('placement.concurrent_update', 'generation conflict')];
      })
      .get(`/resource_providers/${RP}/traits`)
      .reply(function () {
        rec.call(this);
        return [200, { resource_provider_generation: 2, traits: [] }];
      })
      .put(`/resource_providers/${RP}/traits`)
      .reply(function (_u, body) {
        rec.call(this);
        assert.deepEqual(body, { resource_provider_generation: 2, traits: ['COMPUTE_NODE', 'CUSTOM_DOCKER'] });
        return [200, { resource_provider_generation: 3, traits: ['COMPUTE_NODE', 'CUSTOM_DOCKER'] }];
      });
    const res = await client.setTraits(RP, ['COMPUTE_NODE', 'CUSTOM_DOCKER', 'COMPUTE_NODE'], CTX);
    assert.deepEqual(res, { generation: 3, traits: ['COMPUTE_NODE', 'CUSTOM_DOCKER'], changed: true });
    assert.deepEqual(log, [
      `GET /resource_providers/${RP}/traits placement 1.6`,
      'GET /traits?name=in:COMPUTE_NODE,CUSTOM_DOCKER placement 1.6',
      'PUT /traits/CUSTOM_DOCKER placement 1.6',
      `PUT /resource_providers/${RP}/traits placement 1.6`,
      `GET /resource_providers/${RP}/traits placement 1.6`,
      `PUT /resource_providers/${RP}/traits placement 1.6`,
    ]);
  });

  it('setTraits: the same set (any order) sends nothing more', async () => {
    nock(PLACEMENT)
      .get(`/resource_providers/${RP}/traits`)
      .reply(200, { resource_provider_generation: 4, traits: ['COMPUTE_NODE', 'COMPUTE_IMAGE_TYPE_RAW'] });
    const res = await client.setTraits(RP, ['COMPUTE_IMAGE_TYPE_RAW', 'COMPUTE_NODE']);
    assert.equal(res.changed, false);
    assert.equal(res.generation, 4);
  });

  it('setTraits: a standard trait placement does not know is an UnknownTraitError (no PUT)', async () => {
    nock(PLACEMENT)
      .get(`/resource_providers/${RP}/traits`)
      .reply(200, { resource_provider_generation: 4, traits: [] })
      .get('/traits')
      .query(true)
      .reply(200, { traits: ['COMPUTE_NODE'] });
    const err = await client.setTraits(RP, ['COMPUTE_NODE', 'COMPUTE_NOT_A_TRAIT']).catch((e: unknown) => e);
    assert.ok(err instanceof UnknownTraitError);
    assert.deepEqual(err.traits, ['COMPUTE_NOT_A_TRAIT']);
  });

  it('deleteAllocations: DELETE /allocations/{uuid} without microversion; 404 is fine (idempotent)', async () => {
    let mv: unknown = 'unset';
    nock(PLACEMENT)
      .delete(`/allocations/${CONSUMER}`)
      .reply(function () {
        mv = this.req.headers['openstack-api-version'];
        return [204];
      })
      .delete(`/allocations/${CONSUMER}`)
      .reply(404, conflict(undefined, 'No allocations for consumer'));
    assert.equal(await client.deleteAllocations(CONSUMER, CTX), true);
    assert.equal(mv, undefined);
    assert.equal(await client.deleteAllocations(CONSUMER, CTX), false);
  });

  it('deleteAllocations: a 5xx is an UnavailableError without the token', async () => {
    nock(PLACEMENT).delete(`/allocations/${CONSUMER}`).reply(503, 'placement is sad');
    const err = await client.deleteAllocations(CONSUMER).catch((e: unknown) => e);
    assert.ok(err instanceof UnavailableError);
    assert.equal(err.service, 'placement');
    assert.ok(!inspect(err, { depth: 10 }).includes('svc-token'));
  });

  it('getAllocations: 1.28, with consumer generation and owner; {} for an unknown consumer', async () => {
    let mv: unknown;
    nock(PLACEMENT)
      .get(`/allocations/${CONSUMER}`)
      .reply(function () {
        mv = this.req.headers['openstack-api-version'];
        return [
          200,
          {
            allocations: { [RP]: { resources: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 }, generation: 4 } },
            project_id: 'p',
            user_id: 'u',
            consumer_generation: 1,
          },
        ];
      })
      .get(`/allocations/${OTHER}`)
      .reply(200, { allocations: {} });
    assert.deepEqual(await client.getAllocations(CONSUMER), {
      allocations: { [RP]: { resources: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 }, generation: 4 } },
      consumer_generation: 1,
      project_id: 'p',
      user_id: 'u',
    });
    assert.equal(mv, 'placement 1.28');
    assert.deepEqual(await client.getAllocations(OTHER), { allocations: {} });
  });

  it('getProviderAllocations: the consumers map and the generation (no microversion)', async () => {
    nock(PLACEMENT)
      .get(`/resource_providers/${RP}/allocations`)
      .reply(200, {
        allocations: { [CONSUMER]: { resources: { DISK_GB: 1, MEMORY_MB: 512, VCPU: 1 } } },
        resource_provider_generation: 4,
      });
    assert.deepEqual(await client.getProviderAllocations(RP), {
      generation: 4,
      allocations: { [CONSUMER]: { resources: { DISK_GB: 1, MEMORY_MB: 512, VCPU: 1 } } },
    });
  });

  it('deleteProvider: 204 true, 404 false, 409 ProviderInUseError', async () => {
    nock(PLACEMENT)
      .delete(`/resource_providers/${RP}`)
      .reply(204)
      .delete(`/resource_providers/${RP}`)
      .reply(404)
      .delete(`/resource_providers/${RP}`)
      .reply(409, conflict('placement.resource_provider.inuse', 'Unable to delete resource provider: has allocations'));
    assert.equal(await client.deleteProvider(RP), true);
    assert.equal(await client.deleteProvider(RP), false);
    const err = await client.deleteProvider(RP).catch((e: unknown) => e);
    assert.ok(err instanceof ProviderInUseError);
    assert.match(err.message, /has allocations/);
  });

  it('renews the service token once on 401', async () => {
    ks = stubKeystone(['old-token', 'new-token']);
    client = new PlacementClient({ keystone: ks });
    const tokens: unknown[] = [];
    nock(PLACEMENT)
      .get(`/resource_providers/${RP}`)
      .times(2)
      .reply(function () {
        tokens.push(this.req.headers['x-auth-token']);
        return tokens.length === 1 ? [401, 'expired'] : [200, { uuid: RP, name: 'n', generation: 0 }];
      });
    assert.equal((await client.getProvider(RP))?.uuid, RP);
    assert.deepEqual(tokens, ['old-token', 'new-token']);
    assert.deepEqual(ks.invalidated, ['old-token']);
  });

  describe('inventoryChanged (nova ProviderTree.has_inventory_changed)', () => {
    it('different classes, a changed field, or a field new to the record are changes', () => {
      assert.equal(inventoryChanged(INV, { VCPU: INV.VCPU }), true);
      assert.equal(inventoryChanged(INV, { ...INV, VCPU: { ...INV.VCPU, total: 8 } }), true);
      assert.equal(inventoryChanged({ VCPU: { total: 4 } }, { VCPU: { total: 4, reserved: 0 } }), true);
      assert.equal(inventoryChanged({}, {}), false);
    });

    it('fields left out of the new record are not compared', () => {
      assert.equal(inventoryChanged(INV, { VCPU: { total: 4 }, MEMORY_MB: { total: 8192 } }), false);
    });
  });
});
