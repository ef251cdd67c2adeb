/**
 * Rebuild and resize state machines (src/compute/move.ts) on FakeDriver, an
 * in-memory conductor that enforces expected_task_state like Instance.save
 * and keeps Migration rows, and an in-memory Placement with consumers. Casts
 * between the resize steps run in-process (same host, no RPC client).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { NovaError } from '../../../src/common/errors.js';
import type { ImageAPI } from '../../../src/compute/collaborators.js';
import { NovaObject } from '../../../src/objects/base.js';
import { contextFromValues } from '../../../src/rpc/context.js';
import { pollUntil } from '../../../src/common/poll.js';
import { PowerState } from '../../../src/virt/power-state.js';
import type { FakeConductor } from '../../support/fake-conductor.js';
import { addGuest, flavor, HOST, newInstance, setup as fakeNova, TINY } from '../../support/fake-nova.js';

const RP = 'rp-1';

/** What the resizes go to; the instances start as TINY (id 1). */
const BIG = flavor(6, 'm1.big', 1024, 2);

const images: ImageAPI = {
  show: (_ctx, id) =>
    id === 'missing'
      ? Promise.reject(new NovaError('ImageNotFound', `Image ${id} could not be found.`, { image_id: id }))
      : Promise.resolve({
          id,
          name: `name-${id}`,
          properties: id === 'bad' ? { fake_fail_spawn: 'exits at once' } : {},
        }),
};

/** The shared manager setup, with the image API rebuild uses, and its RPC methods called in-process. */
function setup() {
  const t = fakeNova({}, { images });
  const methods = t.manager.endpoint().methods;
  const call = (m: string, args: Record<string, unknown>) => Promise.resolve(methods[m]!(ctx, args));
  return { ...t, call };
}

const ctx = contextFromValues({ request_id: 'req-move', roles: ['admin'], project_id: 'p1' });

/** An ACTIVE instance on HOST with a running guest and its allocation. */
async function activeInstance(t: ReturnType<typeof setup>, fields: Record<string, unknown> = {}) {
  const { uuid, row } = newInstance(t.conductor, fields);
  await addGuest(t.driver, row());
  t.placement.consumers.set(uuid, { [RP]: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 } });
  return uuid;
}

/** The instance as the API casts it: the row, with some fields changed by the API. */
function instanceArg(t: ReturnType<typeof setup>, uuid: string, apiFields: Record<string, unknown> = {}) {
  const row = t.conductor.rows.get(uuid)!;
  Object.assign(row, apiFields);
  return new NovaObject('Instance', '2.7', { ...row }).toPrimitive();
}

function migration(t: ReturnType<typeof setup>, uuid: string, fields: Record<string, unknown> = {}) {
  const data: Record<string, unknown> = {
    id: 7,
    uuid: randomUUID(),
    instance_uuid: uuid,
    source_compute: HOST,
    source_node: HOST,
    dest_compute: null,
    dest_node: null,
    old_instance_type_id: 1,
    new_instance_type_id: 6,
    status: 'pre-migrating',
    migration_type: 'resize',
    ...fields,
  };
  t.conductor.migrations.set(7, data);
  return {
    mig: data,
    primitive: () => new NovaObject('Migration', '1.7', { ...t.conductor.migrations.get(7) }).toPrimitive(),
  };
}

/** What the conductor's MigrationTask does before prep_resize: the source allocation to the migration, the new one to the instance. */
function schedulerAllocations(t: ReturnType<typeof setup>, uuid: string, migUuid: string) {
  t.placement.consumers.set(migUuid, t.placement.consumers.get(uuid)!);
  t.placement.consumers.set(uuid, { [RP]: { VCPU: 2, MEMORY_MB: 1024, DISK_GB: 1 } });
}

const instSaves = (c: FakeConductor) =>
  c.saves.filter((s) => s.obj === 'Instance').map((s) => [s.fields.vm_state, s.fields.task_state, s.expected]);
const migStatuses = (c: FakeConductor) =>
  c.saves.filter((s) => s.obj === 'Migration' && 'status' in s.fields).map((s) => s.fields.status);

async function resizeToVerify(t: ReturnType<typeof setup>, uuid: string, apiFields: Record<string, unknown> = {}) {
  const { mig, primitive } = migration(t, uuid);
  schedulerAllocations(t, uuid, String(mig.uuid));
  await t.call('prep_resize', {
    instance: instanceArg(t, uuid, { task_state: 'resize_prep', ...apiFields }),
    flavor: BIG,
    image: { id: 'img-1', properties: {} },
    request_spec: null,
    filter_properties: {},
    node: HOST,
    clean_shutdown: true,
    migration: primitive(),
    host_list: [],
  });
  await pollUntil(
    () => {
      const row = t.conductor.rows.get(uuid)!;
      return row.vm_state === 'resized' ||
        row.vm_state === 'error' ||
        (row.task_state === null && mig.status === 'error')
        ? true
        : undefined;
    },
    { timeoutMs: 5000, intervalMs: 5, what: 'the resize to finish' },
  );
  return { mig, primitive };
}

describe('compute/move: rebuild_instance', () => {
  it('rebuilding → rebuild_block_device_mapping → rebuild_spawning → ACTIVE, guest recreated from the new image', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    await t.call('rebuild_instance', {
      instance: instanceArg(t, uuid, { task_state: 'rebuilding', image_ref: 'img-2' }),
      orig_image_ref: 'img-1',
      image_ref: 'img-2',
      injected_files: [],
      new_pass: null,
      orig_sys_metadata: {},
      bdms: [],
      recreate: false,
      on_shared_storage: null,
      preserve_ephemeral: false,
      migration: null,
      scheduled_node: null,
      limits: {},
      request_spec: null,
      accel_uuids: [],
      reimage_boot_volume: false,
    });
    assert.deepEqual(instSaves(t.conductor), [
      [undefined, 'rebuilding', ['rebuilding']],
      [undefined, 'rebuild_block_device_mapping', ['rebuilding']],
      [undefined, 'rebuild_spawning', ['rebuild_block_device_mapping']],
      ['active', null, ['rebuild_spawning']],
    ]);
    const g = t.driver.guests.get(uuid)!;
    assert.equal(g.image.id, 'img-2');
    assert.equal(g.image.name, 'name-img-2', 'image metadata from the image API');
    assert.equal(g.instance.image_ref, 'img-2');
    assert.equal(g.state, PowerState.RUNNING);
    const row = t.conductor.rows.get(uuid)!;
    assert.equal(row.power_state, 1);
    assert.deepEqual(
      t.conductor.events.map((e) => [e.kind, e.args[1], e.kwargs.exc_val]),
      [
        ['event_start', 'compute_rebuild_instance', undefined],
        ['event_finish_with_failure', 'compute_rebuild_instance', null],
      ],
    );
    assert.deepEqual(t.scheduler.casts, [`update ${uuid}`]);
  });

  it('a stopped instance is rebuilt and stopped again (powering-off, its own stop event)', async () => {
    const t = setup();
    const uuid = await activeInstance(t, { vm_state: 'stopped', power_state: 4 });
    await t.driver.powerOff({ uuid, host: HOST, metadata: {}, flavor: {} as never });
    await t.call('rebuild_instance', {
      instance: instanceArg(t, uuid, { task_state: 'rebuilding', image_ref: 'img-2' }),
      image_ref: 'img-2',
      orig_image_ref: 'img-1',
      recreate: false,
      preserve_ephemeral: false,
    });
    const seq = instSaves(t.conductor);
    assert.deepEqual(seq.slice(3), [
      ['active', null, ['rebuild_spawning']],
      ['active', 'powering-off', undefined],
      ['stopped', null, ['powering-off']],
    ]);
    assert.equal(t.driver.guests.get(uuid)!.state, PowerState.SHUTDOWN);
    assert.deepEqual(
      t.conductor.events.map((e) => e.args[1]),
      ['compute_rebuild_instance', 'compute_stop_instance', 'compute_stop_instance', 'compute_rebuild_instance'],
    );
  });

  it('a spawn failure puts the instance in ERROR with a fault, task_state cleared, event failed', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    await assert.rejects(
      t.call('rebuild_instance', {
        instance: instanceArg(t, uuid, { task_state: 'rebuilding', image_ref: 'bad' }),
        image_ref: 'bad',
        recreate: false,
      }),
      /exits at once/,
    );
    const row = t.conductor.rows.get(uuid)!;
    assert.equal(row.vm_state, 'error');
    assert.equal(row.task_state, null);
    assert.match(String(t.conductor.faults[0]?.message), /exits at once/);
    assert.match(String(t.conductor.events.at(-1)?.kwargs.exc_val), /exits at once/);
    assert.equal(t.driver.guests.has(uuid), false, 'nothing left of the failed guest');
  });

  it('an image that does not exist: fault, task_state cleared, vm_state unchanged, guest untouched', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    await assert.rejects(
      t.call('rebuild_instance', {
        instance: instanceArg(t, uuid, { task_state: 'rebuilding' }),
        image_ref: 'missing',
        recreate: false,
      }),
      /could not be found/,
    );
    const row = t.conductor.rows.get(uuid)!;
    assert.equal(row.vm_state, 'active');
    assert.equal(row.task_state, null);
    assert.equal(t.conductor.faults.length, 1);
    assert.equal(t.driver.guests.get(uuid)!.image.id, 'img-1');
  });

  it('preserve_ephemeral is not supported: ERROR with PreserveEphemeralNotSupported', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    await assert.rejects(
      t.call('rebuild_instance', {
        instance: instanceArg(t, uuid, { task_state: 'rebuilding' }),
        image_ref: 'img-1',
        preserve_ephemeral: true,
      }),
      /preserving ephemeral/,
    );
    assert.equal(t.conductor.rows.get(uuid)!.vm_state, 'error');
  });

  it('deleted meanwhile: no ERROR, no rethrow', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    const arg = instanceArg(t, uuid, { task_state: 'rebuilding' });
    t.conductor.rows.get(uuid)!.task_state = 'deleting';
    // the first save expects rebuilding: the delete wins
    await t.call('rebuild_instance', { instance: arg, image_ref: 'img-2' });
    assert.equal(t.conductor.rows.get(uuid)!.vm_state, 'active');
    assert.equal(t.conductor.faults.length, 0);
  });
});

describe('compute/move: the instance lock', () => {
  /**
   * A driver call held open until released; `order` records when it settles
   * and every destroy, so a terminate that did not wait shows up in it.
   */
  function hold(t: ReturnType<typeof setup>, method: 'spawn' | 'snapshot' | 'migrateDiskAndPowerOff') {
    const order: string[] = [];
    let entered!: () => void;
    const inCall = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const mayFinish = new Promise<void>((r) => (release = r));
    const held = async <T>(call: () => Promise<T>): Promise<T> => {
      entered();
      await mayFinish;
      try {
        return await call();
      } finally {
        order.push(`${method} settled`);
      }
    };
    const d = t.driver;
    // one case per method, so each replacement is checked against the driver's own signature
    switch (method) {
      case 'spawn': {
        const real = d.spawn.bind(d);
        d.spawn = (...a) => held(() => real(...a));
        break;
      }
      case 'snapshot': {
        const real = d.snapshot.bind(d);
        d.snapshot = (...a) => held(() => real(...a));
        break;
      }
      case 'migrateDiskAndPowerOff': {
        const real = d.migrateDiskAndPowerOff.bind(d);
        d.migrateDiskAndPowerOff = (...a) => held(() => real(...a));
        break;
      }
    }
    const destroy = t.driver.destroy.bind(t.driver);
    t.driver.destroy = async (...a) => {
      order.push('destroy');
      return destroy(...a);
    };
    return { order, inCall, release };
  }

  /** The API's `server delete`: task deleting on the row, terminate_instance cast with that instance. */
  function deleteServer(t: ReturnType<typeof setup>, uuid: string) {
    t.conductor.rows.get(uuid)!.task_state = 'deleting';
    return t.call('terminate_instance', { instance: instanceArg(t, uuid), bdms: null });
  }

  /** Lets everything runnable run (a terminate not held by the lock would reach the driver). */
  async function settle(): Promise<void> {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  }

  it('a delete during a rebuild waits for it to settle; the new container does not outlive the delete', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    const h = hold(t, 'spawn');
    const rebuild = t.call('rebuild_instance', {
      instance: instanceArg(t, uuid, { task_state: 'rebuilding', image_ref: 'img-2' }),
      image_ref: 'img-2',
      recreate: false,
    });
    await h.inCall; // the old container is gone, the new one is being spawned
    h.order.length = 0;
    const terminate = deleteServer(t, uuid);
    await settle();
    assert.deepEqual(h.order, [], 'terminate waits while the rebuild holds the instance');
    h.release();
    await Promise.all([rebuild, terminate]);
    // the rebuild fails at its next save (deleting) and quits quietly; then terminate removes the new container
    assert.deepEqual(h.order, ['spawn settled', 'destroy']);
    assert.deepEqual(await t.driver.listInstanceUuids(), []);
    assert.deepEqual(t.conductor.destroyed, [uuid]);
    assert.equal(t.conductor.faults.length, 0, 'a rebuild preempted by a delete records no fault');
  });

  it('a delete during a snapshot waits for it to settle', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    const h = hold(t, 'snapshot');
    const snapshot = t.call('snapshot_instance', {
      instance: instanceArg(t, uuid, { task_state: 'image_snapshot_pending' }),
      image_id: randomUUID(),
    });
    await h.inCall;
    const terminate = deleteServer(t, uuid);
    await settle();
    assert.deepEqual(h.order, []);
    h.release();
    await Promise.allSettled([snapshot]);
    await terminate;
    assert.deepEqual(h.order, ['snapshot settled', 'destroy']);
    assert.deepEqual(t.conductor.destroyed, [uuid]);
  });

  it('a delete during resize_instance waits for the step to settle', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    const { primitive } = migration(t, uuid, { dest_compute: HOST, dest_node: HOST });
    const h = hold(t, 'migrateDiskAndPowerOff');
    const step = t.call('resize_instance', {
      instance: instanceArg(t, uuid, { task_state: 'resize_prep' }),
      migration: primitive(),
      flavor: BIG,
      image: {},
      clean_shutdown: true,
    });
    await h.inCall;
    const terminate = deleteServer(t, uuid);
    await settle();
    assert.deepEqual(h.order, []);
    h.release();
    await Promise.allSettled([step]);
    await terminate;
    assert.deepEqual(h.order, ['migrateDiskAndPowerOff settled', 'destroy']);
    assert.deepEqual(t.conductor.destroyed, [uuid]);
  });
});

describe('compute/move: resize on the same host', () => {
  it('prep_resize → resize_instance → finish_resize → RESIZED: migration statuses, flavor swap, new limits', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    const { mig } = await resizeToVerify(t, uuid);
    assert.deepEqual(migStatuses(t.conductor), ['pre-migrating', 'migrating', 'post-migrating', 'finished']);
    assert.equal(mig.dest_compute, HOST);
    assert.equal(mig.dest_node, HOST);
    assert.equal(mig.dest_host, '127.0.0.1');
    assert.deepEqual(
      instSaves(t.conductor).filter(([, ts]) => ts !== undefined),
      [
        [undefined, 'resize_migrating', 'resize_prep'],
        [undefined, 'resize_migrated', 'resize_migrating'],
        [undefined, 'resize_finish', 'resize_migrated'],
        ['resized', null, 'resize_finish'],
      ],
    );
    const row = t.conductor.rows.get(uuid)!;
    assert.equal(row.vm_state, 'resized');
    assert.equal(row.instance_type_id, 6);
    assert.equal(row.memory_mb, 1024);
    assert.equal(row.vcpus, 2);
    assert.equal((row.old_flavor as { 'nova_object.data': { id: number } })['nova_object.data'].id, 1);
    assert.equal((row.flavor as { 'nova_object.data': { id: number } })['nova_object.data'].id, 6);
    assert.deepEqual(row.system_metadata, { old_vm_state: 'active' });
    const mc = NovaObject.fromPrimitive(row.migration_context);
    assert.equal(mc.name, 'MigrationContext');
    assert.equal(mc.num('migration_id'), 7);
    const g = t.driver.guests.get(uuid)!;
    assert.equal(g.instance.flavor.memory_mb, 1024);
    assert.equal(g.state, PowerState.RUNNING);
    // allocations untouched by the compute until confirm/revert
    assert.equal(t.placement.consumers.get(String(mig.uuid))?.[RP]?.MEMORY_MB, 512);
    assert.equal(t.placement.consumers.get(uuid)?.[RP]?.MEMORY_MB, 1024);
    assert.deepEqual(
      t.conductor.events.map((e) => e.args[1]).filter((_, i) => i % 2 === 0),
      ['compute_prep_resize', 'compute_resize_instance', 'compute_finish_resize'],
    );
  });

  it('confirm_resize: migration confirmed, its allocation deleted, stashed flavors dropped, ACTIVE', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    const { mig, primitive } = await resizeToVerify(t, uuid);
    t.conductor.migrations.get(7)!.status = 'confirming';
    await t.call('confirm_resize', { instance: instanceArg(t, uuid), migration: primitive() });
    const row = t.conductor.rows.get(uuid)!;
    assert.equal(row.vm_state, 'active');
    assert.equal(row.task_state, null);
    assert.equal(row.old_flavor, null);
    assert.equal(row.new_flavor, null);
    assert.equal(row.migration_context, null);
    assert.deepEqual(row.system_metadata, {});
    assert.equal(mig.status, 'confirmed');
    assert.equal(t.placement.consumers.has(String(mig.uuid)), false, 'no migration consumer left');
    assert.equal(t.placement.consumers.get(uuid)?.[RP]?.MEMORY_MB, 1024);
    assert.ok(t.scheduler.casts.includes(`delete ${uuid}`));
    assert.ok(t.conductor.calls.includes('Instance.get_by_uuid'));
  });

  it('confirm_resize of a migration already confirmed or in another state does nothing', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    for (const status of ['confirmed', 'error']) {
      const { primitive } = migration(t, uuid, { status });
      await t.call('confirm_resize', { instance: instanceArg(t, uuid), migration: primitive() });
    }
    assert.equal(t.conductor.saves.length, 0);
  });

  it('revert_resize → finish_revert_resize: old flavor, limits and allocations back, ACTIVE', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    const { mig, primitive } = await resizeToVerify(t, uuid);
    t.conductor.migrations.get(7)!.status = 'reverting';
    t.conductor.saves.length = 0;
    await t.call('revert_resize', {
      instance: instanceArg(t, uuid, { task_state: 'resize_reverting' }),
      migration: primitive(),
      request_spec: null,
    });
    await pollUntil(() => (t.conductor.rows.get(uuid)!.task_state === null ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 5,
      what: 'the revert',
    });
    const row = t.conductor.rows.get(uuid)!;
    assert.equal(row.vm_state, 'active');
    assert.equal(row.instance_type_id, 1);
    assert.equal(row.memory_mb, 512);
    assert.equal(row.host, HOST);
    assert.equal(row.old_flavor, null);
    assert.equal(row.migration_context, null);
    assert.deepEqual(row.system_metadata, {});
    assert.deepEqual(migStatuses(t.conductor), ['reverted']);
    assert.equal(mig.status, 'reverted');
    assert.deepEqual(t.placement.consumers.get(uuid), { [RP]: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 } });
    assert.equal(t.placement.consumers.has(String(mig.uuid)), false);
    const g = t.driver.guests.get(uuid)!;
    assert.equal(g.instance.flavor.memory_mb, 512);
    assert.equal(g.state, PowerState.RUNNING);
    assert.deepEqual(
      instSaves(t.conductor).map(([vm, ts, ex]) => [vm, ts, ex]),
      [
        [undefined, undefined, ['resize_reverting']],
        [undefined, undefined, ['resize_reverting']],
        [undefined, undefined, 'resize_reverting'],
        ['active', null, undefined],
        [undefined, undefined, undefined],
      ],
    );
  });

  it('a stopped instance stays stopped through resize and revert', async () => {
    const t = setup();
    const uuid = await activeInstance(t, { vm_state: 'stopped', power_state: 4 });
    await t.driver.powerOff({ uuid, host: HOST, metadata: {}, flavor: {} as never });
    const { primitive } = await resizeToVerify(t, uuid);
    assert.equal(t.driver.guests.get(uuid)!.state, PowerState.SHUTDOWN, 'not powered on by finish_resize');
    assert.deepEqual(t.conductor.rows.get(uuid)!.system_metadata, { old_vm_state: 'stopped' });
    await t.call('revert_resize', {
      instance: instanceArg(t, uuid, { task_state: 'resize_reverting' }),
      migration: primitive(),
    });
    await pollUntil(() => (t.conductor.rows.get(uuid)!.vm_state === 'stopped' ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 5,
      what: 'stopped again',
    });
    assert.equal(t.driver.guests.get(uuid)!.state, PowerState.SHUTDOWN);
  });

  it('prep_resize to the same flavor (a cold migrate onto itself): UnableToMigrateToSelf, vm_state kept, allocation back', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    const { mig, primitive } = migration(t, uuid, { new_instance_type_id: 1 });
    schedulerAllocations(t, uuid, String(mig.uuid));
    await assert.rejects(
      t.call('prep_resize', {
        instance: instanceArg(t, uuid, { task_state: 'resize_prep' }),
        flavor: TINY,
        image: {},
        migration: primitive(),
        node: HOST,
      }),
      /Unable to migrate instance/,
    );
    const row = t.conductor.rows.get(uuid)!;
    assert.equal(row.vm_state, 'active');
    assert.equal(row.task_state, null);
    assert.equal(mig.status, 'error');
    assert.match(String(t.conductor.faults[0]?.message), /Unable to migrate/);
    assert.deepEqual(t.placement.consumers.get(uuid), { [RP]: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 } });
    assert.equal(t.placement.consumers.has(String(mig.uuid)), false);
  });

  it('prep_resize on another host than the instance’s: refused, instance as it was', async () => {
    const t = setup();
    const uuid = await activeInstance(t, { host: 'other', vm_state: 'stopped' });
    const { mig, primitive } = migration(t, uuid, { source_compute: 'other' });
    schedulerAllocations(t, uuid, String(mig.uuid));
    await assert.rejects(
      t.call('prep_resize', {
        instance: instanceArg(t, uuid, { task_state: 'resize_prep' }),
        flavor: BIG,
        migration: primitive(),
      }),
      /own host only/,
    );
    const row = t.conductor.rows.get(uuid)!;
    assert.equal(row.vm_state, 'stopped');
    assert.equal(row.task_state, null);
    assert.equal(mig.status, 'error');
  });

  it('finish_resize failure: ERROR, migration error, old flavor kept, the migration’s allocation deleted', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    t.driver.failNextResize = 'engine refused';
    const { mig } = await resizeToVerify(t, uuid);
    await pollUntil(() => (t.conductor.rows.get(uuid)!.task_state === null ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 5,
      what: 'task_state cleared',
    });
    const row = t.conductor.rows.get(uuid)!;
    assert.equal(row.vm_state, 'error');
    assert.equal(row.instance_type_id, 1, 'the old flavor is what the instance has');
    assert.equal(mig.status, 'error');
    assert.match(String(t.conductor.faults[0]?.message), /engine refused/);
    assert.equal(t.placement.consumers.has(String(mig.uuid)), false);
  });

  for (const [step, apiFields] of [
    ['resize_instance', { task_state: 'resize_prep' }],
    ['finish_resize', { task_state: 'resize_migrated', new_flavor: BIG }],
  ] as const) {
    it(`${step} meeting a delete (UnexpectedDeletingTaskStateError): the API's deleting is left alone`, async () => {
      const t = setup();
      const uuid = await activeInstance(t);
      const { mig, primitive } = migration(t, uuid, { status: 'pre-migrating', dest_compute: HOST, dest_node: HOST });
      const arg = instanceArg(t, uuid, apiFields);
      t.conductor.rows.get(uuid)!.task_state = 'deleting'; // the user deleted the server meanwhile
      await assert.rejects(
        t.call(step, { instance: arg, migration: primitive(), flavor: BIG, image: {}, clean_shutdown: true }),
        /UnexpectedDeletingTaskStateError/,
      );
      assert.equal(t.conductor.rows.get(uuid)!.task_state, 'deleting');
      assert.ok(
        !t.conductor.saves.some(
          (x) => x.obj === 'Instance' && 'task_state' in x.fields && x.fields.task_state === null,
        ),
        'no save cleared the task',
      );
      assert.equal(mig.status, 'error', 'errors_out_migration still marks the migration');
    });
  }

  it('resize_instance failing on the driver: ERROR, migration error, the source allocation back to the instance', async () => {
    const t = setup();
    const uuid = await activeInstance(t);
    t.driver.guests.delete(uuid); // the guest vanished behind Nova's back
    const { mig } = await resizeToVerify(t, uuid);
    await pollUntil(() => (t.conductor.rows.get(uuid)!.task_state === null ? true : undefined), {
      timeoutMs: 5000,
      intervalMs: 5,
      what: 'task_state cleared',
    });
    assert.equal(t.conductor.rows.get(uuid)!.vm_state, 'error');
    assert.equal(mig.status, 'error');
    assert.deepEqual(t.placement.consumers.get(uuid), { [RP]: { VCPU: 1, MEMORY_MB: 512, DISK_GB: 1 } });
  });
});
