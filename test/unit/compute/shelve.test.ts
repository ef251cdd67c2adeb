/**
 * Shelve, offload and unshelve (src/compute/shelve.ts) through the manager's
 * RPC endpoint, on FakeDriver and the in-memory conductor: every save with
 * Nova's expected_task_state, the host freed on offload (guest, Placement,
 * host/node), the shelved image spawned and deleted on unshelve, and Nova's
 * failure handling. The same flows run against the real Nova in
 * test/e2e/shelve.test.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { ComputeManagerOptions } from '../../../src/compute/manager.js';
import { pollUntil } from '../../../src/common/poll.js';
import { NovaObject } from '../../../src/objects/base.js';
import { adminContext, contextFromValues } from '../../../src/rpc/context.js';
import type { RpcHandler } from '../../../src/rpc/dispatcher.js';
import { PowerState } from '../../../src/virt/power-state.js';
import { addGuest, FakeImages, HOST, newInstance, setup } from '../../support/fake-nova.js';

const ctx = contextFromValues({ request_id: 'req-shelve', roles: ['member'], project_id: 'p1' });
const ALLOCATION = { 'rp-1': { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 } };

/** The manager with Glance, and an instance on HOST with a running guest and allocations, as the API casts it. */
async function env(opts: Partial<ComputeManagerOptions> = {}, fields: Record<string, unknown> = {}) {
  const images = new FakeImages();
  const t = setup({ shelvedOffloadTimeS: 0, ...opts }, { glance: images });
  const i = newInstance(t.conductor, {
    task_state: 'shelving',
    system_metadata: { image_base_image_ref: 'img-1' },
    ...fields,
  });
  await addGuest(t.driver, i.row(), (fields.power_state as PowerState | undefined) ?? PowerState.RUNNING);
  t.placement.consumers.set(i.uuid, structuredClone(ALLOCATION));
  const imageId = randomUUID();
  images.records.set(imageId, { id: imageId, status: 'queued' });
  const ep = t.manager.endpoint();
  const call = (method: string, args: Record<string, unknown>) =>
    Promise.resolve((ep.methods[method] as RpcHandler)(ctx, { instance: inst(), ...args }));
  /** The instance as the API would cast it now (the conductor's row, nothing changed). */
  const inst = () => new NovaObject('Instance', '2.7', { ...i.row() }).toPrimitive();
  return { ...t, ...i, images, imageId, call, inst };
}

type Env = Awaited<ReturnType<typeof env>>;

/** An instance as the API casts unshelve_instance to this host: SHELVED_OFFLOADED, unshelving, no host, no guest. */
async function offloadedEnv(fields: Record<string, unknown> = {}): Promise<Env> {
  const t = await env(
    {},
    {
      vm_state: 'shelved_offloaded',
      task_state: 'unshelving',
      power_state: PowerState.SHUTDOWN,
      host: null,
      node: null,
      ...fields,
    },
  );
  t.driver.guests.delete(t.uuid);
  return t;
}

/** [vm_state, task_state, expected_task_state] of each instance save. */
function saves(t: Env) {
  return t.conductor.saves
    .filter((s) => s.obj === 'Instance')
    .map((s) => [s.fields.vm_state, s.fields.task_state, s.expected]);
}

function events(t: Env) {
  return t.conductor.events.map((e) => [e.kind, e.args[1], e.kwargs.exc_val ?? null]);
}

/** The instance as offloaded: SHELVED_OFFLOADED, no task, no host; its guest gone. */
async function offloaded(t: Env, power: PowerState = PowerState.SHUTDOWN) {
  const row = t.row();
  assert.equal(row.vm_state, 'shelved_offloaded');
  assert.equal(row.task_state, null);
  assert.equal(row.power_state, power, 'power_state read from the driver before the guest went');
  for (const k of ['host', 'node', 'launched_on', 'availability_zone']) assert.equal(row[k], null, k);
  assert.deepEqual(await t.driver.listInstanceUuids(), []);
}

describe('compute/shelve', () => {
  it('shelve with shelved_offload_time 0: stopped, snapshotted, SHELVED, then offloaded in the same action', async () => {
    const t = await env();
    await t.call('shelve_instance', { image_id: t.imageId, clean_shutdown: true, accel_uuids: [] });
    assert.deepEqual(saves(t), [
      [undefined, 'shelving_image_pending_upload', 'shelving'],
      [undefined, 'shelving_image_uploading', 'shelving_image_pending_upload'],
      ['shelved', 'shelving_offloading', ['shelving', 'shelving_image_uploading']],
      ['shelved_offloaded', null, ['shelving', 'shelving_offloading']],
      [undefined, undefined, undefined], // host, node, launched_on, availability_zone: unguarded, as Nova
    ]);
    assert.equal(t.driver.snapshots.get(t.imageId), t.uuid, 'the guest committed into the API’s image');
    await offloaded(t);
    const sysmeta = t.row().system_metadata as Record<string, unknown>;
    assert.equal(sysmeta.shelved_image_id, t.imageId);
    assert.equal(sysmeta.shelved_host, HOST);
    assert.match(String(sysmeta.shelved_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/, 'isoformat(), as Nova');
    assert.equal(sysmeta.image_base_image_ref, 'img-1', 'the other keys kept');
    assert.deepEqual(t.placement.deleted, [t.uuid]);
    assert.equal(t.placement.consumers.has(t.uuid), false, 'the host’s allocations freed');
    assert.deepEqual(t.scheduler.casts, [`delete ${t.uuid}`]);
    assert.deepEqual(events(t), [
      ['event_start', 'compute_shelve_instance', null],
      ['event_finish_with_failure', 'compute_shelve_instance', null],
    ]);
    assert.equal(t.conductor.faults.length, 0);
    assert.deepEqual(t.images.deleted, [], 'the shelved image stays for the unshelve');
    // _update_resource_tracker: the node's usage written without waiting for the periodic update
    const write = await pollUntil(() => t.conductor.computeNodeWrites.at(-1), { timeoutMs: 2000, intervalMs: 5 });
    assert.equal(write.fields.running_vms, 0);
    assert.equal(write.fields.vcpus_used, 0);
  });

  it('shelve with shelved_offload_time -1: SHELVED with the guest stopped, host and allocations kept', async () => {
    const t = await env({ shelvedOffloadTimeS: -1 });
    await t.call('shelve_instance', { image_id: t.imageId, clean_shutdown: true });
    assert.deepEqual(saves(t).at(-1), ['shelved', null, ['shelving', 'shelving_image_uploading']]);
    assert.equal(t.row().vm_state, 'shelved');
    assert.equal(t.row().power_state, PowerState.SHUTDOWN);
    assert.equal(t.row().host, HOST);
    assert.equal(t.driver.guests.get(t.uuid)?.state, PowerState.SHUTDOWN);
    assert.deepEqual(t.placement.deleted, []);
    assert.deepEqual(t.scheduler.casts, []);
  });

  it('shelve of an instance sent without system_metadata loads it first: nothing of it is lost', async () => {
    const t = await env(
      { shelvedOffloadTimeS: -1 },
      { system_metadata: { image_base_image_ref: 'img-1', boot_roles: 'member' } },
    );
    const instance = t.inst();
    delete instance['nova_object.data'].system_metadata;
    await t.call('shelve_instance', { instance, image_id: t.imageId, clean_shutdown: true });
    assert.ok(t.conductor.calls.includes('Instance.get_by_uuid'), 'lazy-loaded, as Nova’s obj_load_attr');
    const sysmeta = t.row().system_metadata as Record<string, unknown>;
    assert.deepEqual(Object.keys(sysmeta).sort(), [
      'boot_roles',
      'image_base_image_ref',
      'shelved_at',
      'shelved_host',
      'shelved_image_id',
    ]);
  });

  it('shelve powers off with the clean-shutdown timeout, except a paused guest or clean_shutdown=False: at once', async () => {
    const timeouts: Array<number | undefined> = [];
    for (const [fields, clean] of [
      [{ system_metadata: { image_os_shutdown_timeout: '30' } }, true],
      [{ power_state: PowerState.PAUSED, vm_state: 'paused' }, true],
      [{}, false],
    ] as const) {
      const t = await env({ shelvedOffloadTimeS: -1 }, fields);
      const powerOff = t.driver.powerOff.bind(t.driver);
      t.driver.powerOff = (i, s) => {
        timeouts.push(s);
        return powerOff(i, s);
      };
      await t.call('shelve_instance', { image_id: t.imageId, clean_shutdown: clean });
      assert.equal(t.row().vm_state, 'shelved');
    }
    assert.deepEqual(timeouts, [30, 0, 0]);
  });

  it('a failed snapshot: fault, failed event, task reverted; the image is left to the API (no delete_image_on_error)', async () => {
    const t = await env();
    t.driver.guests.get(t.uuid)!.image.properties.fake_fail_snapshot = 'commit blew up';
    await assert.rejects(t.call('shelve_instance', { image_id: t.imageId, clean_shutdown: true }), /commit blew up/);
    assert.equal(t.row().vm_state, 'active');
    assert.equal(t.row().task_state, null);
    assert.equal(t.row().host, HOST);
    assert.match(String(t.conductor.faults[0]?.message), /commit blew up/);
    assert.match(String(events(t).at(-1)?.[2]), /commit blew up/);
    assert.deepEqual(t.images.deleted, []);
    assert.deepEqual(t.placement.deleted, [], 'nothing offloaded');
    assert.ok(t.driver.guests.has(t.uuid), 'the guest is still there (stopped, as Nova leaves it)');
  });

  it('a shelve that meets a delete leaves `deleting` alone and records no fault', async () => {
    const t = await env();
    t.row().task_state = 'deleting'; // the API's delete landed after the shelve cast
    await assert.rejects(
      t.call('shelve_instance', { image_id: t.imageId, clean_shutdown: true }),
      /Unexpected task state/,
    );
    assert.equal(t.row().task_state, 'deleting');
    assert.equal(t.row().vm_state, 'active');
    assert.equal(t.conductor.faults.length, 1, 'wrap_instance_fault records it, as Nova');
  });

  it('shelve_offload_instance of a SHELVED instance: guest removed, host freed; a guest already gone is fine', async () => {
    for (const guestGone of [false, true]) {
      const t = await env(
        {},
        { vm_state: 'shelved', task_state: 'shelving_offloading', power_state: PowerState.SHUTDOWN },
      );
      if (guestGone) t.driver.guests.delete(t.uuid);
      await t.call('shelve_offload_instance', { clean_shutdown: true, accel_uuids: [] });
      assert.deepEqual(saves(t), [
        ['shelved_offloaded', null, ['shelving', 'shelving_offloading']],
        [undefined, undefined, undefined],
      ]);
      await offloaded(t, guestGone ? PowerState.NOSTATE : PowerState.SHUTDOWN);
      assert.deepEqual(t.placement.deleted, [t.uuid]);
      assert.deepEqual(events(t), [
        ['event_start', 'compute_shelve_offload_instance', null],
        ['event_finish_with_failure', 'compute_shelve_offload_instance', null],
      ]);
    }
  });

  it('unshelve: claimed here, spawned from the shelved image, ACTIVE; the image deleted and the shelve keys gone', async () => {
    const t = await offloadedEnv({
      system_metadata: { image_base_image_ref: 'img-1', shelved_at: 'x', shelved_image_id: 'y', shelved_host: 'z' },
    });
    (t.row().system_metadata as Record<string, unknown>).shelved_image_id = t.imageId;
    const image = { id: t.imageId, name: 'srv-shelved', container_format: 'docker', disk_format: 'raw', size: 1234 };
    await t.call('unshelve_instance', {
      image,
      filter_properties: {},
      node: HOST,
      request_spec: null,
      accel_uuids: [],
    });
    assert.deepEqual(saves(t), [
      [undefined, 'spawning', undefined],
      [undefined, undefined, undefined], // rt.instance_claim: host, node, launched_on
      ['active', null, 'spawning'],
    ]);
    const row = t.row();
    assert.equal(row.host, HOST);
    assert.equal(row.node, HOST);
    assert.equal(row.launched_on, HOST);
    assert.equal(row.power_state, PowerState.RUNNING);
    assert.equal(row.image_ref, 'img-1', 'image_ref stays the image it was booted from');
    assert.deepEqual(row.system_metadata, { image_base_image_ref: 'img-1' });
    const guest = t.driver.guests.get(t.uuid);
    assert.equal(guest?.state, PowerState.RUNNING);
    assert.equal(guest?.image.id, t.imageId);
    assert.equal(guest?.instance.image_ref, t.imageId, 'the container says which image it runs');
    assert.deepEqual(t.images.deleted, [t.imageId]);
    assert.equal(t.placement.consumers.has(t.uuid), true, 'the scheduler’s allocations stay');
    assert.deepEqual(t.scheduler.casts, [`update ${t.uuid}`]);
    assert.deepEqual(events(t), [
      ['event_start', 'compute_unshelve_instance', null],
      ['event_finish_with_failure', 'compute_unshelve_instance', null],
    ]);
  });

  it('unshelve that fails to spawn: allocations dropped, back on no host, SHELVED_OFFLOADED with a fault', async () => {
    const t = await offloadedEnv();
    const image = { id: t.imageId, properties: { fake_fail_spawn: 'exec format error' } };
    await assert.rejects(t.call('unshelve_instance', { image, node: HOST }), /exec format error/);
    const row = t.row();
    assert.equal(row.vm_state, 'shelved_offloaded');
    assert.equal(row.task_state, null);
    for (const k of ['host', 'node', 'launched_on']) assert.equal(row[k], null, k);
    assert.deepEqual(t.placement.deleted, [t.uuid]);
    assert.deepEqual(t.images.deleted, [], 'the shelved image is kept for another try');
    assert.match(String(t.conductor.faults[0]?.message), /exec format error/);
    assert.deepEqual(await t.driver.listInstanceUuids(), []);
  });

  it('unshelve on an Instance 2.8 (nova 2023.1+): the claim and the failure revert carry compute_id', async () => {
    const images = new FakeImages();
    const t = setup({}, { glance: images });
    t.manager.store.computeNodeId = 7;
    const i = newInstance(
      t.conductor,
      { vm_state: 'shelved_offloaded', task_state: 'unshelving', host: null, node: null },
      '2.8',
    );
    const image = { id: 'img-s', properties: { fake_fail_spawn: true } };
    await assert.rejects(
      Promise.resolve(
        t.manager.endpoint().methods.unshelve_instance!(ctx, { instance: i.primitive, image, node: HOST }),
      ),
    );
    const withNode = t.conductor.saves.filter((s) => s.changes.includes('node'));
    assert.deepEqual(
      withNode.map((s) => [s.fields.node, s.fields.compute_id]),
      [
        [HOST, 7],
        [null, null],
      ],
    );
    assert.equal(i.row().task_state, null);
  });

  it('an unshelve whose instance the API deleted meanwhile removes the container it spawned', async () => {
    const t = await offloadedEnv();
    const spawn = t.driver.spawn.bind(t.driver);
    t.driver.spawn = async (...a) => {
      await spawn(...a);
      t.conductor.localDelete(t.uuid); // the API's own delete: the instance had no host when it looked
    };
    await assert.rejects(t.call('unshelve_instance', { image: { id: t.imageId }, node: HOST }), /could not be found/);
    assert.deepEqual(await t.driver.listInstanceUuids(), []);
    assert.equal(t.conductor.faults.length, 0);
  });

  it('start_instance of a SHELVED instance (unshelve without offload): running, ACTIVE, image and keys gone', async () => {
    const t = await env(
      {},
      {
        vm_state: 'shelved',
        task_state: 'powering-on',
        power_state: PowerState.SHUTDOWN,
        system_metadata: { image_base_image_ref: 'img-1', shelved_at: 'x', shelved_host: HOST },
      },
    );
    (t.row().system_metadata as Record<string, unknown>).shelved_image_id = t.imageId;
    await t.call('start_instance', {});
    assert.deepEqual(saves(t), [['active', null, 'powering-on']]);
    assert.deepEqual(t.row().system_metadata, { image_base_image_ref: 'img-1' });
    assert.equal(t.driver.guests.get(t.uuid)?.state, PowerState.RUNNING);
    assert.deepEqual(t.images.deleted, [t.imageId]);
    // an ordinary start touches neither Glance nor system_metadata
    const u = await env({}, { vm_state: 'stopped', task_state: 'powering-on', power_state: PowerState.SHUTDOWN });
    const notSent = u.inst();
    delete notSent['nova_object.data'].system_metadata;
    await u.call('start_instance', { instance: notSent });
    assert.deepEqual(u.images.deleted, []);
    assert.ok(u.conductor.calls.includes('Instance.get_by_uuid'), 'looked at, lazy-loaded');
    assert.deepEqual(u.conductor.saves[0]?.changes, ['power_state', 'task_state', 'vm_state'], 'not saved back');
  });

  it('terminate of a shelved instance: SHELVED (stopped guest) and SHELVED_OFFLOADED (no guest) both end deleted', async () => {
    for (const vmState of ['shelved', 'shelved_offloaded']) {
      const t = await env({}, { vm_state: vmState, task_state: 'deleting', power_state: PowerState.SHUTDOWN });
      if (vmState === 'shelved_offloaded') t.driver.guests.delete(t.uuid);
      await t.manager.terminateInstance(adminContext(), { instance: t.inst(), bdms: null });
      assert.deepEqual(t.conductor.destroyed, [t.uuid], vmState);
      assert.deepEqual(await t.driver.listInstanceUuids(), [], vmState);
      assert.ok(t.placement.deleted.includes(t.uuid), vmState);
      assert.equal(t.conductor.faults.length, 0, vmState);
    }
  });

  it('the periodic offload: SHELVED with no task, shelved longer than shelved_offload_time ago', async () => {
    const t = setup({ shelvedOffloadTimeS: 60 }, { glance: new FakeImages() });
    const now = Date.parse('2026-03-01T12:00:00Z');
    const shelvedAt = (s: number) => new Date(now - s * 1000).toISOString().replace('Z', '000');
    const make = async (fields: Record<string, unknown>) => {
      const i = newInstance(t.conductor, { vm_state: 'shelved', power_state: PowerState.SHUTDOWN, ...fields });
      await addGuest(t.driver, i.row(), PowerState.SHUTDOWN);
      return i.uuid;
    };
    const old = await make({ system_metadata: { shelved_at: shelvedAt(120) } });
    const recent = await make({ system_metadata: { shelved_at: shelvedAt(10) } });
    const busy = await make({ task_state: 'unshelving', system_metadata: { shelved_at: shelvedAt(120) } });
    const elsewhere = await make({ host: 'other', system_metadata: { shelved_at: shelvedAt(120) } });
    assert.deepEqual(await t.manager.pollShelvedInstances(now), [old]);
    assert.equal(t.conductor.row(old).vm_state, 'shelved_offloaded');
    assert.equal(t.conductor.row(old).host, null);
    assert.deepEqual((await t.driver.listInstanceUuids()).sort(), [recent, busy, elsewhere].sort());
    assert.deepEqual(
      t.conductor.saves.filter((s) => s.uuid === old).map((s) => [s.fields.task_state, s.expected]),
      [
        ['shelving_offloading', [null]],
        [null, ['shelving', 'shelving_offloading']],
        [undefined, undefined],
      ],
    );
    assert.equal(t.conductor.events[0]?.args[1], 'compute_shelve_offload_instance');
    const never = setup({ shelvedOffloadTimeS: 0 });
    assert.deepEqual(await never.manager.pollShelvedInstances(now), [], 'off unless the time is > 0');
  });
});
