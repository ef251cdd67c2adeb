/**
 * The compute manager's state machine, on FakeDriver and an in-memory
 * conductor that enforces expected_task_state the way nova's Instance.save
 * does. The same flows run against the real Nova in test/e2e.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { NovaError } from '../../../src/common/errors.js';
import { NovaObject } from '../../../src/objects/base.js';
import { adminContext, contextFromValues } from '../../../src/rpc/context.js';
import { bootImage, FakeImages, HOST, newInstance, setup } from '../../support/fake-nova.js';
import { PowerState } from '../../../src/virt/power-state.js';

/** An instance as the conductor casts build_and_run_instance: building/scheduling, no host yet. */
const BUILDING = { vm_state: 'building', task_state: 'scheduling', power_state: 0, host: null, node: null };

const userCtx = contextFromValues({ request_id: 'req-build', roles: ['member', 'reader'], project_id: 'p1' });

describe('compute/manager', () => {
  it('build_and_run_instance follows Nova’s state machine to ACTIVE/RUNNING, in two saves before spawning', async () => {
    const { conductor, driver, manager } = setup();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    await manager.buildAndRunInstance(userCtx, { instance: primitive, image: bootImage(), node: HOST });
    const seq = conductor.saves.map((s) => [s.fields.vm_state ?? '', s.fields.task_state, s.expected]);
    // building and the claim's host/node in one save; no ports (no network API), no volumes:
    // networking and block_device_mapping would mean nothing and are not saved
    assert.deepEqual(seq, [
      ['building', null, ['scheduling', null]],
      ['', 'spawning', [null]],
      ['active', null, 'spawning'],
    ]);
    assert.equal(conductor.saves[0]?.fields.host, HOST, 'the first save carries the claim');
    const row = conductor.rows.get(uuid)!;
    assert.equal(row.vm_state, 'active');
    assert.equal(row.power_state, 1);
    assert.equal(row.host, HOST);
    assert.equal(row.node, HOST);
    assert.equal(row.launched_on, HOST);
    assert.match(String(row.launched_at), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(row.system_metadata, { boot_roles: 'member,reader' });
    assert.equal(
      (await driver.getInfo({ uuid, host: HOST, metadata: {}, flavor: {} as never })).power_state,
      PowerState.RUNNING,
    );
    assert.deepEqual(
      conductor.events.map((e) => [e.kind, e.args[1]]),
      [
        ['event_start', 'compute__do_build_and_run_instance'],
        ['event_finish_with_failure', 'compute__do_build_and_run_instance'],
      ],
    );
    assert.equal(conductor.events[1]?.kwargs.exc_val, null);
    assert.equal(manager.bootTimings.at(-1)?.ok, true);
  });

  it('the driver works while the state saves run; the build succeeds only after the spawning save', async () => {
    const { conductor, driver, manager } = setup();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    const order: string[] = [];
    // the first save is answered only once the driver has its network_info (a deadlock if it waited for it)
    let releaseFirstSave!: () => void;
    const firstSaveHeld = new Promise<void>((resolve) => (releaseFirstSave = resolve));
    const objectAction = conductor.objectAction.bind(conductor);
    conductor.objectAction = async (...a: Parameters<typeof objectAction>) => {
      if (a[2] === 'save' && conductor.saves.length === 0) await firstSaveHeld;
      return objectAction(...a);
    };
    const spawn = driver.spawn.bind(driver);
    driver.spawn = async (ctx, ...rest) => {
      order.push(`driver called at task_state=${String(conductor.rows.get(uuid)?.task_state)}`);
      await rest[5]; // network_info: nothing to allocate, so it does not wait for the claim's save
      order.push(`network info with ${conductor.saves.length} saves answered`);
      releaseFirstSave();
      assert.ok(ctx.readyToStart, 'the manager passes the gate');
      await ctx.readyToStart;
      order.push(`gate open at task_state=${String(conductor.rows.get(uuid)?.task_state)}`);
      return spawn(ctx, ...rest);
    };
    await manager.buildAndRunInstance(userCtx, { instance: primitive, image: bootImage(), node: HOST });
    // called alongside the first save (building), the gate opens only at spawning
    assert.deepEqual(order, [
      'driver called at task_state=scheduling',
      'network info with 0 saves answered',
      'gate open at task_state=spawning',
    ]);
    assert.equal(conductor.saves.length, 3, 'building+claim, spawning, active: none skipped');
    assert.equal(conductor.rows.get(uuid)?.vm_state, 'active');
  });

  it('a spawn that fails before the saves finish: ERROR is saved last, never overwritten by a late save', async () => {
    const { conductor, driver, manager } = setup();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    driver.spawn = () => Promise.reject(new NovaError('ImageNotFound', 'Image x could not be found.', { code: 404 }));
    await manager.buildAndRunInstance(userCtx, { instance: primitive, image: bootImage(), node: HOST });
    const row = conductor.rows.get(uuid)!;
    assert.equal(row.vm_state, 'error');
    assert.equal(row.task_state, null);
    assert.equal(conductor.saves.at(-1)?.fields.vm_state, 'error');
    assert.equal(conductor.faults[0]?.code, 404);
  });

  it('a failed spawn: ERROR with a fault, allocations removed, nothing on the host, event finished with the error', async () => {
    const { conductor, driver, placement, manager } = setup();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    await manager.buildAndRunInstance(userCtx, {
      instance: primitive,
      image: bootImage({ fake_fail_spawn: 'the command exited at once with status 1' }),
    });
    const row = conductor.rows.get(uuid)!;
    assert.equal(row.vm_state, 'error');
    assert.equal(row.task_state, null);
    assert.equal(row.host, null);
    assert.equal(conductor.faults.length, 1);
    assert.match(String(conductor.faults[0]?.message), /exited at once with status 1/);
    assert.equal(conductor.faults[0]?.instance_uuid, uuid);
    assert.deepEqual(placement.deleted, [uuid]);
    assert.deepEqual(await driver.listInstanceUuids(), []);
    assert.match(String(conductor.events.at(-1)?.kwargs.exc_val), /exited at once/);
  });

  it('an instance deleted during the build: stop quietly, clean up, no fault', async () => {
    const { conductor, driver, placement, manager } = setup();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    conductor.deleteOnSave.add(uuid);
    await manager.buildAndRunInstance(userCtx, { instance: primitive, image: bootImage() });
    assert.equal(conductor.faults.length, 0);
    assert.deepEqual(placement.deleted, [uuid]);
    assert.deepEqual(await driver.listInstanceUuids(), []);
  });

  it('a build the user deletes before it starts: the save guard stops it, quietly', async () => {
    const { conductor, driver, placement, manager } = setup();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    conductor.rows.get(uuid)!.task_state = 'deleting';
    await manager.buildAndRunInstance(userCtx, { instance: primitive, image: bootImage() });
    assert.deepEqual(await driver.listInstanceUuids(), [], 'never spawned');
    assert.equal(conductor.rows.get(uuid)?.vm_state, 'building', 'left to the delete');
    assert.equal(conductor.faults.length, 0);
    assert.deepEqual(placement.deleted, [uuid]);
  });

  it('a build whose first save meets another task_state stops there, as Nova (build_results.FAILED): no guest, no fault, the instance left as it is', async () => {
    const { conductor, driver, placement, manager } = setup();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    conductor.rows.get(uuid)!.task_state = 'rebuilding';
    await manager.buildAndRunInstance(userCtx, { instance: primitive, image: bootImage() });
    assert.deepEqual(await driver.listInstanceUuids(), []);
    assert.equal(conductor.rows.get(uuid)?.vm_state, 'building');
    assert.equal(conductor.rows.get(uuid)?.task_state, 'rebuilding');
    assert.deepEqual(conductor.faults, []);
    assert.deepEqual(placement.deleted, [uuid], 'build_and_run_instance removes a FAILED build’s allocations');
  });

  it('terminate_instance: container gone, deleted state saved, allocations removed, row destroyed', async () => {
    const { conductor, driver, placement, scheduler, manager } = setup();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    await manager.buildAndRunInstance(userCtx, { instance: primitive, image: bootImage() });
    const row = conductor.rows.get(uuid)!;
    row.task_state = 'deleting';
    const inst = NovaObject.create('Instance', '2.7', row).toPrimitive();
    await manager.terminateInstance(adminContext(), { instance: inst, bdms: null });
    assert.deepEqual(await driver.listInstanceUuids(), []);
    assert.ok(
      conductor.saves.some((s) => s.uuid === uuid && s.fields.vm_state === 'deleted' && s.fields.power_state === 0),
    );
    assert.ok(placement.deleted.includes(uuid));
    assert.deepEqual(conductor.destroyed, [uuid]);
    assert.deepEqual(scheduler.casts, [`update ${uuid}`, `delete ${uuid}`], 'the scheduler was told of both');
  });

  it('a delete that arrives mid-build waits for the build (the instance lock); nothing is left on the host', async () => {
    const { conductor, driver, placement, manager } = setup();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    const order: string[] = [];
    let spawnCalled!: () => void;
    const inSpawn = new Promise<void>((r) => (spawnCalled = r));
    let releaseSpawn!: () => void;
    const spawnMayFinish = new Promise<void>((r) => (releaseSpawn = r));
    const spawn = driver.spawn.bind(driver);
    driver.spawn = async (...a) => {
      spawnCalled();
      await spawnMayFinish;
      try {
        await spawn(...a);
      } finally {
        order.push('spawn settled');
      }
    };
    const destroy = driver.destroy.bind(driver);
    driver.destroy = async (...a) => {
      order.push('destroy');
      return destroy(...a);
    };
    const build = manager.buildAndRunInstance(userCtx, { instance: primitive, image: bootImage(), node: HOST });
    await inSpawn;
    conductor.rows.get(uuid)!.task_state = 'deleting'; // what the API does on `server delete`
    const inst = NovaObject.create('Instance', '2.7', conductor.rows.get(uuid)!).toPrimitive();
    const terminate = manager.terminateInstance(adminContext(), { instance: inst, bdms: null });
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(order.length, 0, 'terminate waits while the build holds the instance');
    releaseSpawn();
    await Promise.all([build, terminate]);
    // the build fails at its next save (deleting), removes its guest, then terminate runs
    assert.deepEqual(order, ['spawn settled', 'destroy', 'destroy']);
    assert.deepEqual(await driver.listInstanceUuids(), []);
    assert.deepEqual(conductor.destroyed, [uuid]);
    assert.ok(placement.deleted.includes(uuid));
    assert.equal(conductor.faults.length, 0, 'a build preempted by a delete records no fault');
  });

  it('an unsupported instance cast clears the task and records a fault; a call fails with NotImplementedError', async () => {
    const { conductor, manager } = setup();
    const { uuid, primitive } = newInstance(conductor, {
      ...BUILDING,
      vm_state: 'active',
      task_state: 'rescuing',
      host: HOST,
    });
    conductor.rows.get(uuid)!.task_state = 'rescuing';
    const ep = manager.endpoint();
    await assert.rejects(
      Promise.resolve(ep.methods.rescue_instance!(adminContext(), { instance: primitive })),
      (err) => {
        assert.ok(err instanceof NovaError);
        assert.equal(err.novaClass, 'NotImplementedError');
        return true;
      },
    );
    assert.equal(conductor.rows.get(uuid)?.task_state, null);
    assert.match(String(conductor.faults[0]?.message), /does not support rescue_instance/);
    assert.deepEqual(
      conductor.events.map((e) => [e.kind, e.args[1], e.kwargs.exc_val ?? null]),
      [
        ['event_start', 'compute_rescue_instance', null],
        ['event_finish_with_failure', 'compute_rescue_instance', 'nova-docker does not support rescue_instance'],
      ],
      'the reason shows in `openstack server event show`',
    );
    assert.throws(
      () => ep.methods.get_vnc_console!(adminContext(), { instance: primitive }),
      (err) => {
        assert.ok(err instanceof NovaError);
        assert.equal(err.novaModule, 'builtins');
        return true;
      },
    );
    assert.equal(ep.version, '6.1');
  });

  it('ComputeNode running_vms: the instances Nova has on the node, set on create and on every update', async () => {
    const { conductor, manager } = setup();
    newInstance(conductor);
    newInstance(conductor, { vm_state: 'stopped', power_state: 4 });
    newInstance(conductor, { host: 'other-host', node: 'other-host' });
    newInstance(conductor, { vm_state: 'deleted' }); // resources being removed: not counted, as Nova
    await manager.start();
    try {
      const create = conductor.computeNodeWrites.find((w) => w.method === 'create');
      assert.equal(create?.fields.running_vms, 2);
      const { uuid } = newInstance(conductor);
      await manager.updateAvailableResource(adminContext());
      assert.equal(conductor.computeNodeWrites.at(-1)?.fields.running_vms, 3);
      conductor.localDelete(uuid);
      await manager.updateAvailableResource(adminContext());
      assert.equal(conductor.computeNodeWrites.at(-1)?.fields.running_vms, 2);
    } finally {
      manager.stop();
    }
  });

  it('power-state sync saves what the containers say, skips tasks in flight', async () => {
    const { conductor, driver, manager } = setup();
    const a = newInstance(conductor, BUILDING);
    const b = newInstance(conductor, BUILDING);
    for (const i of [a, b]) await manager.buildAndRunInstance(userCtx, { instance: i.primitive, image: bootImage() });
    const spec = (uuid: string) => ({ uuid, host: HOST, metadata: {}, flavor: {} as never });
    await driver.powerOff(spec(a.uuid), 0);
    await driver.powerOff(spec(b.uuid), 0);
    conductor.rows.get(b.uuid)!.task_state = 'rebooting';
    assert.equal(await manager.syncPowerStates(), 1);
    assert.equal(conductor.rows.get(a.uuid)?.power_state, 4);
    assert.equal(conductor.rows.get(a.uuid)?.vm_state, 'stopped');
    assert.equal(conductor.rows.get(b.uuid)?.power_state, 1, 'task in flight: untouched');
    assert.equal(await manager.syncPowerStates(), 0, 'nothing left to change');
  });
});

describe('compute/snapshot', () => {
  async function active(fields: Record<string, unknown> = {}, imageProps: Record<string, unknown> = {}) {
    const images = new FakeImages();
    const t = setup({}, { glance: images });
    const { uuid, primitive } = newInstance(t.conductor, BUILDING);
    await t.manager.buildAndRunInstance(userCtx, { instance: primitive, image: bootImage(imageProps), node: HOST });
    const row = t.conductor.rows.get(uuid)!;
    Object.assign(row, { task_state: 'image_snapshot_pending', ...fields });
    const imageId = randomUUID();
    images.records.set(imageId, { id: imageId, status: 'queued' });
    t.conductor.saves.length = 0;
    t.conductor.events.length = 0;
    const inst = () => new NovaObject('Instance', '2.7', { ...t.conductor.rows.get(uuid)! }).toPrimitive();
    return { ...t, images, uuid, imageId, inst, ep: t.manager.endpoint() };
  }

  it('snapshot_instance: image_snapshot → image_pending_upload → image_uploading → None, each save guarded', async () => {
    const { conductor, driver, images, uuid, imageId, inst, ep } = await active();
    await ep.methods.snapshot_instance!(userCtx, { instance: inst(), image_id: imageId });
    assert.deepEqual(
      conductor.saves.map((s) => [s.fields.task_state, s.expected]),
      [
        ['image_snapshot', 'image_snapshot_pending'],
        [undefined, undefined], // power_state
        ['image_pending_upload', 'image_snapshot'],
        ['image_uploading', 'image_pending_upload'],
        [null, 'image_uploading'],
      ],
    );
    assert.equal(conductor.saves[1]?.fields.power_state, 1);
    assert.equal(driver.snapshots.get(imageId), uuid);
    assert.deepEqual(images.deleted, []);
    assert.equal(conductor.faults.length, 0);
    assert.deepEqual(
      conductor.events.map((e) => [e.kind, e.args[1], e.kwargs.exc_val ?? null]),
      [
        ['event_start', 'compute_snapshot_instance', null],
        ['event_finish_with_failure', 'compute_snapshot_instance', null],
      ],
    );
  });

  it('a failed snapshot: the queued image deleted, a fault, the event failed, task_state reverted', async () => {
    const { conductor, images, uuid, imageId, inst, ep } = await active({}, { fake_fail_snapshot: 'commit blew up' });
    await assert.rejects(
      Promise.resolve(ep.methods.snapshot_instance!(userCtx, { instance: inst(), image_id: imageId })),
      /commit blew up/,
    );
    assert.deepEqual(images.deleted, [imageId]);
    assert.match(String(conductor.faults[0]?.message), /commit blew up/);
    assert.match(String(conductor.events.at(-1)?.kwargs.exc_val), /commit blew up/);
    assert.equal(conductor.rows.get(uuid)?.task_state, null);
    assert.deepEqual(conductor.saves.at(-1)?.fields, { task_state: null });
    assert.equal(conductor.saves.at(-1)?.expected, undefined, 'reverted without a guard, as reverts_task_state');
  });

  it('a snapshot preempted by another task: image deleted, fault, but the other task is left alone', async () => {
    const { conductor, images, uuid, imageId, inst, ep } = await active({ task_state: 'rebooting' });
    await assert.rejects(
      Promise.resolve(ep.methods.snapshot_instance!(userCtx, { instance: inst(), image_id: imageId })),
      /Unexpected task state/,
    );
    assert.deepEqual(images.deleted, [imageId]);
    assert.equal(conductor.faults.length, 1);
    assert.equal(conductor.rows.get(uuid)?.task_state, 'rebooting');
  });

  it('an instance being deleted: no snapshot, no fault, quietly', async () => {
    const { conductor, driver, images, imageId, inst, ep } = await active({ task_state: 'deleting' });
    await ep.methods.snapshot_instance!(userCtx, { instance: inst(), image_id: imageId });
    assert.equal(driver.snapshots.size, 0);
    assert.equal(conductor.faults.length, 0);
    assert.deepEqual(images.deleted, []);
  });

  it('the guest gone during the snapshot: the unfinished image is deleted, no fault', async () => {
    const { conductor, driver, images, uuid, imageId, inst, ep } = await active();
    driver.guests.delete(uuid);
    await ep.methods.snapshot_instance!(userCtx, { instance: inst(), image_id: imageId });
    assert.deepEqual(images.deleted, [imageId]);
    assert.equal(conductor.faults.length, 0);
  });

  it('the image deleted by the user meanwhile: task_state cleared, no fault', async () => {
    const { conductor, driver, uuid, imageId, inst, ep } = await active();
    driver.snapshot = () => Promise.reject(new NovaError('ImageNotFound', `Image ${imageId} could not be found.`));
    await ep.methods.snapshot_instance!(userCtx, { instance: inst(), image_id: imageId });
    assert.equal(conductor.rows.get(uuid)?.task_state, null);
    assert.equal(conductor.faults.length, 0);
  });

  it('backup_instance: task image_backup, then the oldest backups beyond the rotation are deleted', async () => {
    const { conductor, driver, images, uuid, imageId, inst, ep } = await active({ task_state: 'image_backup' });
    images.records.get(imageId)!.created_at = '2026-01-03';
    images.records.set('old-1', { id: 'old-1', status: 'active', created_at: '2026-01-01' });
    images.records.set('old-2', { id: 'old-2', status: 'active', created_at: '2026-01-02' });
    await ep.methods.backup_instance!(userCtx, {
      instance: inst(),
      image_id: imageId,
      backup_type: 'daily',
      rotation: 1,
    });
    assert.deepEqual(
      conductor.saves.filter((s) => 'task_state' in s.fields).map((s) => [s.fields.task_state, s.expected]),
      [
        ['image_pending_upload', 'image_backup'],
        ['image_uploading', 'image_pending_upload'],
        [null, 'image_uploading'],
      ],
    );
    assert.equal(driver.snapshots.get(imageId), uuid);
    assert.deepEqual(images.deleted, ['old-1', 'old-2']);
    assert.deepEqual(images.listed, {
      filters: { image_type: 'backup', backup_type: 'daily', instance_uuid: uuid },
      sortKey: 'created_at',
      sortDir: 'desc',
    });
    assert.equal(conductor.events[0]?.args[1], 'compute_backup_instance');
  });
});
