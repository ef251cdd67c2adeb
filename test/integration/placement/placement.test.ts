/**
 * PlacementClient against the real lab placement (Zed, 127.0.0.1:8778, found
 * through the Keystone catalog) with the nova service user. Every test works
 * on its own provider (random uuid and name) and removes it, its allocations
 * and its custom traits afterwards.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ConflictError } from '../../../src/clients/errors.js';
import { HttpClient } from '../../../src/clients/http.js';
import {
  InventoryInUseError,
  PlacementClient,
  ProviderInUseError,
  ProviderNameConflictError,
  UnknownTraitError,
} from '../../../src/clients/placement/index.js';
import { ZED_TRACKER_DEFAULTS, computeInventories, driverTraits } from '../../../src/compute/resource-tracker-math.js';
import { CONTAINER_DRIVER_CAPABILITIES } from '../../../src/virt/driver.js';
import { labServiceKeystone } from '../../support/lab-env.js';

const HOST = { vcpus: 4, memory_mb: 8192, local_gb: 100 };

describe('integration: placement client (real lab placement)', function () {
  this.timeout(60_000);
  const ks = labServiceKeystone('http://127.0.0.1:5000/v3');
  const placement = new PlacementClient({ keystone: ks });
  let providers: string[] = [];
  let consumers: string[] = [];
  let customTraits: string[] = [];

  /** A raw placement call (what the scheduler or an operator would do), with the service token. */
  async function raw(method: string, path: string, mv: string, data?: unknown): Promise<number> {
    const base = (await ks.endpoint('placement')).replace(/\/+$/, '');
    const res = await new HttpClient({}).request({
      method,
      url: `${base}${path}`,
      data,
      headers: { 'X-Auth-Token': await ks.getToken(), 'OpenStack-API-Version': `placement ${mv}` },
      validateStatus: () => true,
    });
    return res.status;
  }

  async function newProvider(): Promise<{ uuid: string; name: string }> {
    const uuid = randomUUID();
    providers.push(uuid);
    const p = { uuid, name: `nd-test-${uuid.slice(0, 8)}` };
    const rp = await placement.ensureProvider(p, { requestId: `req-${randomUUID()}` });
    assert.deepEqual(rp, { ...p, generation: 0 });
    return p;
  }

  /** Allocates like the scheduler does (PUT /allocations/{consumer} at 1.28). */
  async function allocate(rp: string, resources: Record<string, number>): Promise<string> {
    const consumer = randomUUID();
    consumers.push(consumer);
    const status = await raw('PUT', `/allocations/${consumer}`, '1.28', {
      allocations: { [rp]: { resources } },
      project_id: randomUUID().replace(/-/g, ''),
      user_id: randomUUID().replace(/-/g, ''),
      consumer_generation: null,
    });
    assert.equal(status, 204);
    return consumer;
  }

  afterEach(async () => {
    for (const c of consumers) await placement.deleteAllocations(c);
    for (const p of providers) await placement.deleteProvider(p);
    for (const t of customTraits) await raw('DELETE', `/traits/${t}`, '1.6');
    for (const p of providers) assert.equal(await placement.getProvider(p), undefined);
    providers = [];
    consumers = [];
    customTraits = [];
  });

  it('creates a provider, finds it again without creating it twice', async () => {
    const p = await newProvider();
    assert.deepEqual(await placement.getProvider(p.uuid), { ...p, generation: 0 });
    assert.deepEqual(await placement.ensureProvider(p), { ...p, generation: 0 });
    assert.equal(await placement.getProvider(randomUUID()), undefined);
  });

  it('refuses a second provider with the same name, naming both uuids', async () => {
    const p = await newProvider();
    const other = randomUUID();
    providers.push(other);
    const err = await placement.ensureProvider({ uuid: other, name: p.name }).catch((e: unknown) => e);
    assert.ok(err instanceof ProviderNameConflictError, String(err));
    assert.equal(err.existingUuid, p.uuid);
    assert.ok(err.message.includes(p.uuid) && err.message.includes(other), err.message);
  });

  it('sets inventories, reads back the same, skips an unchanged PUT, and a changed total advances the generation', async () => {
    const p = await newProvider();
    const inv = computeInventories(HOST, { ...ZED_TRACKER_DEFAULTS, reserved_host_disk_mb: 1500 });
    const first = await placement.setInventories(p.uuid, inv);
    assert.equal(first.changed, true);
    assert.equal(first.generation, 1);
    const read = await placement.getInventories(p.uuid);
    assert.deepEqual(read, { generation: 1, inventories: inv });
    assert.equal(read.inventories.DISK_GB?.reserved, 2);

    const again = await placement.setInventories(p.uuid, inv);
    assert.deepEqual(again, { generation: 1, inventories: inv, changed: false });

    const bigger = computeInventories({ ...HOST, vcpus: 8 }, ZED_TRACKER_DEFAULTS);
    const second = await placement.setInventories(p.uuid, bigger);
    assert.equal(second.changed, true);
    assert.equal(second.generation, 2);
    assert.equal((await placement.getInventories(p.uuid)).inventories.VCPU?.total, 8);
  });

  it('recovers from a stale generation (a real 409 from placement) by re-reading', async () => {
    const p = await newProvider();
    const inv = computeInventories(HOST, ZED_TRACKER_DEFAULTS);
    await placement.setInventories(p.uuid, inv);
    const stale = { generation: 0, inventories: {} };
    const res = await placement.setInventories(
      p.uuid,
      computeInventories({ ...HOST, memory_mb: 4096 }, ZED_TRACKER_DEFAULTS),
      undefined,
      {
        current: stale,
      },
    );
    assert.equal(res.changed, true);
    assert.equal(res.generation, 2);
    assert.equal(res.inventories.MEMORY_MB?.total, 4096);
  });

  it('sets traits (creating a CUSTOM_ one), skips an unchanged set, refuses an unknown standard trait', async () => {
    const p = await newProvider();
    const custom = `CUSTOM_ND_TEST_${randomUUID().replace(/-/g, '').slice(0, 12).toUpperCase()}`;
    customTraits.push(custom);
    const traits = [...driverTraits(CONTAINER_DRIVER_CAPABILITIES, { disabled: true }), custom];
    const res = await placement.setTraits(p.uuid, traits);
    assert.equal(res.changed, true);
    assert.equal(res.generation, 1);
    const read = await placement.getTraits(p.uuid);
    assert.deepEqual([...read.traits].sort(), [...traits].sort());
    assert.equal((await placement.setTraits(p.uuid, [...traits].reverse())).changed, false);

    const removed = await placement.setTraits(p.uuid, ['COMPUTE_NODE']);
    assert.deepEqual(removed, { generation: 2, traits: ['COMPUTE_NODE'], changed: true });

    const err = await placement
      .setTraits(p.uuid, ['COMPUTE_NODE', 'COMPUTE_ND_NO_SUCH_TRAIT'])
      .catch((e: unknown) => e);
    assert.ok(err instanceof UnknownTraitError, String(err));
  });

  it('allocations: unknown consumers are fine to read and delete; a real one is listed, blocks removal, then goes', async () => {
    const p = await newProvider();
    await placement.setInventories(p.uuid, computeInventories(HOST, ZED_TRACKER_DEFAULTS));

    const unknown = randomUUID();
    assert.deepEqual(await placement.getAllocations(unknown), { allocations: {} });
    assert.equal(await placement.deleteAllocations(unknown), false);
    assert.equal(await placement.deleteAllocations(unknown), false);

    const consumer = await allocate(p.uuid, { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 });
    const byRp = await placement.getProviderAllocations(p.uuid);
    assert.deepEqual(byRp.allocations, { [consumer]: { resources: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 } } });
    const mine = await placement.getAllocations(consumer);
    assert.deepEqual(mine.allocations[p.uuid]?.resources, { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 });
    assert.equal(mine.consumer_generation, 1);

    // Removing VCPU inventory while the consumer holds VCPU: placement.inventory.inuse.
    const { VCPU: _vcpu, ...noVcpu } = computeInventories(HOST, ZED_TRACKER_DEFAULTS);
    const inUse = await placement.setInventories(p.uuid, noVcpu).catch((e: unknown) => e);
    assert.ok(inUse instanceof InventoryInUseError, String(inUse));
    assert.ok(inUse instanceof ConflictError);

    const busy = await placement.deleteProvider(p.uuid).catch((e: unknown) => e);
    assert.ok(busy instanceof ProviderInUseError, String(busy));

    assert.equal(await placement.deleteAllocations(consumer), true);
    assert.equal(await placement.deleteAllocations(consumer), false);
    assert.deepEqual((await placement.getProviderAllocations(p.uuid)).allocations, {});
  });
});
