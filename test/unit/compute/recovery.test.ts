/**
 * Recovery at start (init_host / _init_instance), one rule per test, on
 * FakeDriver and an in-memory conductor: the agent restarts and finds what a
 * previous run (or the outside world) left.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { PowerState } from '../../../src/virt/power-state.js';
import { addGuest, HOST, newInstance, setup } from '../../support/fake-nova.js';
import { makeVif } from '../../support/vifs.js';

/** An InstanceInfoCache primitive as the conductor sends it: network_info as a JSON string. */
function infoCache(uuid: string, vifs: unknown[]) {
  return {
    'nova_object.name': 'InstanceInfoCache',
    'nova_object.namespace': 'nova',
    'nova_object.version': '1.5',
    'nova_object.data': { instance_uuid: uuid, network_info: JSON.stringify(vifs) },
  };
}

describe('compute/recovery at start', () => {
  let env: ReturnType<typeof setup> | undefined;
  afterEach(() => env?.manager.stop());

  function make(opts: Parameters<typeof setup>[0] = {}) {
    env = setup(opts);
    return env;
  }

  const actionOf = (uuid: string) => env?.manager.lastRecovery.filter((a) => a.uuid === uuid).map((a) => a.action);

  /** The agent (`opts`) started over one instance (`row`) whose guest is in `state`. */
  async function startOver(
    row: Record<string, unknown> = {},
    state: PowerState = PowerState.RUNNING,
    opts: Parameters<typeof setup>[0] = {},
  ) {
    const e = make(opts);
    const { uuid } = newInstance(e.conductor, row);
    await addGuest(e.driver, uuid, state);
    await e.manager.start();
    return { ...e, uuid };
  }

  for (const [vm, task] of [
    ['building', 'spawning'],
    ['building', 'networking'],
    ['building', 'block_device_mapping'],
    ['building', 'scheduling'],
    ['building', null],
  ] as const) {
    it(`an interrupted build (${vm}/${String(task)}): ERROR with a fault, its half-made container removed`, async () => {
      const { conductor, driver, manager } = make();
      const { uuid } = newInstance(conductor, { vm_state: vm, task_state: task, power_state: 0 });
      await addGuest(driver, uuid, PowerState.SHUTDOWN); // created, never started
      await manager.start();
      assert.equal(conductor.row(uuid).vm_state, 'error');
      assert.equal(conductor.row(uuid).task_state, null);
      assert.equal(driver.guests.has(uuid), false);
      assert.equal(conductor.faults.length, 1);
      assert.equal(conductor.faults[0]?.instance_uuid, uuid);
      assert.match(String(conductor.faults[0]?.message), /restarted while the instance was being built/);
      assert.deepEqual(actionOf(uuid), ['build-errored']);
    });
  }

  it('an interrupted build without a container: ERROR with a fault', async () => {
    const { conductor, manager } = make();
    const { uuid } = newInstance(conductor, { vm_state: 'building', task_state: 'spawning', power_state: 0 });
    await manager.start();
    assert.equal(conductor.row(uuid).vm_state, 'error');
    assert.equal(conductor.faults.length, 1);
  });

  it('a build cut off before the instance got its host: container labelled for us → ERROR, container removed', async () => {
    const { conductor, driver, manager } = make();
    const { uuid } = newInstance(conductor, {
      vm_state: 'building',
      task_state: 'scheduling',
      host: null,
      power_state: 0,
    });
    await addGuest(driver, uuid, PowerState.SHUTDOWN);
    await manager.start();
    assert.equal(conductor.row(uuid).vm_state, 'error');
    assert.equal(driver.guests.has(uuid), false);
  });

  it('task_state deleting: the delete is completed (container, allocations, row, scheduler)', async () => {
    const { conductor, driver, placement, scheduler, uuid } = await startOver({ task_state: 'deleting' });
    assert.equal(driver.guests.has(uuid), false);
    assert.deepEqual(conductor.destroyed, [uuid]);
    assert.deepEqual(placement.deleted, [uuid]);
    assert.ok(scheduler.casts.includes(`delete ${uuid}`));
    assert.equal(conductor.events.length, 0, 'no action event: no request started this');
    assert.deepEqual(actionOf(uuid), ['deleted']);
  });

  it('vm_state deleted but the row not destroyed: the deletion is completed', async () => {
    const { conductor, driver, uuid } = await startOver({ vm_state: 'deleted', power_state: 0 }, PowerState.SHUTDOWN);
    assert.deepEqual(conductor.destroyed, [uuid]);
    assert.equal(driver.guests.has(uuid), false);
  });

  it('ERROR instances are left alone', async () => {
    const { conductor, driver, uuid } = await startOver({ vm_state: 'error', power_state: 1 });
    assert.equal(conductor.row(uuid).vm_state, 'error');
    assert.equal(driver.guests.has(uuid), true);
  });

  it('powering-off: the stop is done now → STOPPED / SHUTDOWN', async () => {
    const { conductor, driver, uuid } = await startOver({ task_state: 'powering-off' });
    assert.equal(driver.guests.get(uuid)?.state, PowerState.SHUTDOWN);
    assert.equal(conductor.row(uuid).vm_state, 'stopped');
    assert.equal(conductor.row(uuid).power_state, PowerState.SHUTDOWN);
    assert.equal(conductor.row(uuid).task_state, null);
  });

  it('powering-on: the start is done now → ACTIVE / RUNNING', async () => {
    const { conductor, driver, uuid } = await startOver(
      { vm_state: 'stopped', task_state: 'powering-on', power_state: 4 },
      PowerState.SHUTDOWN,
    );
    assert.equal(driver.guests.get(uuid)?.state, PowerState.RUNNING);
    assert.equal(conductor.row(uuid).vm_state, 'active');
    assert.equal(conductor.row(uuid).power_state, PowerState.RUNNING);
  });

  it('powering-on whose container is gone: task reverted, a fault', async () => {
    const { conductor, manager } = make();
    const { uuid } = newInstance(conductor, { vm_state: 'stopped', task_state: 'powering-on', power_state: 4 });
    await manager.start();
    assert.equal(conductor.row(uuid).task_state, null);
    assert.equal(conductor.row(uuid).vm_state, 'stopped');
    assert.equal(conductor.faults.length, 1);
  });

  it('reboot started but the guest is not running: rebooted (HARD) → ACTIVE / RUNNING', async () => {
    const { conductor, driver, manager, uuid } = await startOver({ task_state: 'reboot_started' }, PowerState.SHUTDOWN);
    assert.equal(driver.guests.get(uuid)?.state, PowerState.RUNNING);
    assert.equal(conductor.row(uuid).task_state, null);
    assert.deepEqual(actionOf(uuid), ['rebooted']);
    assert.match(String(manager.lastRecovery[0]?.detail), /HARD/);
  });

  it('reboot_pending on an ACTIVE guest that runs: a SOFT reboot', async () => {
    const { conductor, manager, uuid } = await startOver({ task_state: 'reboot_pending' });
    assert.match(String(manager.lastRecovery[0]?.detail), /SOFT/);
    assert.equal(conductor.row(uuid).task_state, null);
  });

  for (const task of ['reboot_started', 'pausing', 'unpausing']) {
    it(`${task} and the guest runs: task cleared, ACTIVE`, async () => {
      const { conductor, uuid } = await startOver({ task_state: task });
      assert.equal(conductor.row(uuid).task_state, null);
      assert.equal(conductor.row(uuid).vm_state, 'active');
      assert.deepEqual(actionOf(uuid), ['task-cleared']);
    });
  }

  it('unpausing and the guest is paused: unpaused', async () => {
    const { conductor, driver, uuid } = await startOver(
      { vm_state: 'paused', task_state: 'unpausing', power_state: 3 },
      PowerState.PAUSED,
    );
    assert.equal(driver.guests.get(uuid)?.state, PowerState.RUNNING);
    assert.equal(conductor.row(uuid).vm_state, 'active');
    assert.equal(conductor.row(uuid).task_state, null);
  });

  it('snapshot and resize_prep tasks are cleared', async () => {
    const { conductor, driver, manager } = make();
    const { uuid: a } = newInstance(conductor, { task_state: 'image_uploading' });
    const { uuid: b } = newInstance(conductor, { task_state: 'resize_prep' });
    await addGuest(driver, a);
    await addGuest(driver, b);
    await manager.start();
    assert.equal(conductor.row(a).task_state, null);
    assert.equal(conductor.row(b).task_state, null);
  });

  it('an interrupted rebuild: ERROR', async () => {
    const { conductor, uuid } = await startOver({ task_state: 'rebuild_spawning' });
    assert.equal(conductor.row(uuid).vm_state, 'error');
  });

  it('other tasks are left as Nova leaves them', async () => {
    const { conductor, uuid } = await startOver({ task_state: 'suspending' });
    assert.equal(conductor.row(uuid).task_state, 'suspending');
  });

  it('plug_vifs: a running guest gets its missing VIFs from the info cache, once; InstanceList asks for info_cache', async () => {
    const { conductor, driver, manager } = make();
    const uuid = randomUUID();
    const vif = makeVif({ id: randomUUID(), mac: 'fa:16:3e:00:00:01', ip4: '10.0.0.5' });
    newInstance(conductor, { uuid, info_cache: infoCache(uuid, [vif]) });
    await addGuest(driver, uuid, PowerState.RUNNING, [vif]);
    driver.plugged.clear(); // the host lost its devices (dockerd or host trouble)
    await manager.start();
    assert.deepEqual(driver.pluggedFor(uuid), [vif.id]);
    assert.equal(conductor.row(uuid).vm_state, 'active');
  });

  it('plug_vifs failing (binding_failed in the cache): ERROR with a fault naming the port, as Nova', async () => {
    const { conductor, driver, manager } = make();
    const uuid = randomUUID();
    const good = makeVif({ id: randomUUID(), mac: 'fa:16:3e:00:00:02', ip4: '10.0.0.6' });
    newInstance(conductor, { uuid, info_cache: infoCache(uuid, [{ ...good, type: 'binding_failed' }]) });
    await addGuest(driver, uuid, PowerState.RUNNING, [good]);
    await manager.start();
    assert.equal(conductor.row(uuid).vm_state, 'error');
    assert.match(String(conductor.faults[0]?.message), new RegExp(`port ${good.id}`));
  });

  it('resume_guests_state_on_host_boot: an ACTIVE instance whose container stopped is started', async () => {
    const { conductor, driver, uuid } = await startOver({}, PowerState.SHUTDOWN, {
      resumeGuestsStateOnHostBoot: true,
    });
    assert.equal(driver.guests.get(uuid)?.state, PowerState.RUNNING);
    assert.equal(conductor.row(uuid).vm_state, 'active');
    assert.equal(conductor.row(uuid).power_state, PowerState.RUNNING);
    assert.deepEqual(actionOf(uuid), ['resumed']);
  });

  it('without resume_guests_state_on_host_boot the startup sync stops it: STOPPED / SHUTDOWN', async () => {
    const { conductor, driver, uuid } = await startOver({}, PowerState.SHUTDOWN);
    assert.equal(driver.guests.get(uuid)?.state, PowerState.SHUTDOWN);
    assert.equal(conductor.row(uuid).vm_state, 'stopped');
    assert.equal(conductor.row(uuid).power_state, PowerState.SHUTDOWN);
  });

  it('a negative sync_power_state_interval disables the sync, at start too (events still work)', async () => {
    const { conductor, driver, manager, uuid } = await startOver({}, PowerState.SHUTDOWN, {
      syncPowerStateIntervalS: -1,
    });
    assert.equal(conductor.row(uuid).vm_state, 'active');
    driver.simulateExternal(uuid, PowerState.SHUTDOWN);
    await manager.eventsSettled();
    assert.equal(conductor.row(uuid).vm_state, 'stopped');
  });

  it('an instance whose container is gone: power_state NOSTATE, vm_state kept (Nova ignores "not found")', async () => {
    const { conductor, manager } = make();
    const { uuid } = newInstance(conductor);
    await manager.start();
    assert.equal(conductor.row(uuid).power_state, PowerState.NOSTATE);
    assert.equal(conductor.row(uuid).vm_state, 'active');
  });

  it('…and with resume_guests_state_on_host_boot it cannot be resumed: ERROR with a fault', async () => {
    const { conductor, manager } = make({ resumeGuestsStateOnHostBoot: true });
    const { uuid } = newInstance(conductor);
    await manager.start();
    assert.equal(conductor.row(uuid).vm_state, 'error');
    assert.equal(conductor.faults.length, 1);
  });

  it('a STOPPED instance is not started by resume_guests_state_on_host_boot', async () => {
    const { driver, uuid } = await startOver(
      { vm_state: 'stopped', power_state: PowerState.SHUTDOWN },
      PowerState.SHUTDOWN,
      { resumeGuestsStateOnHostBoot: true },
    );
    assert.equal(driver.guests.get(uuid)?.state, PowerState.SHUTDOWN);
  });

  it('orphans (deleted or unknown instances): removed by default; a live instance of another host kept', async () => {
    const { conductor, driver, manager } = make();
    const orphan = randomUUID();
    const deleted = randomUUID();
    const { uuid: elsewhere } = newInstance(conductor, { host: 'other-host' });
    await addGuest(driver, orphan);
    await addGuest(driver, deleted, PowerState.SHUTDOWN);
    await addGuest(driver, elsewhere);
    await manager.start();
    assert.equal(driver.guests.has(orphan), false);
    assert.equal(driver.guests.has(deleted), false);
    assert.equal(driver.guests.has(elsewhere), true);
    assert.deepEqual(actionOf(orphan), ['orphan-removed']);
    assert.deepEqual(actionOf(elsewhere), ['skipped']);
    assert.ok(conductor.calls.includes('InstanceList.get_by_filters'));
  });

  it('a container whose instance the API deleted while the host was down (its row still says this host): removed', async () => {
    const { conductor, driver, manager } = make();
    const { uuid, row } = newInstance(conductor);
    await addGuest(driver, row());
    conductor.localDelete(uuid);
    await manager.start();
    assert.equal(driver.guests.has(uuid), false);
    assert.deepEqual(actionOf(uuid), ['orphan-removed']);
  });

  it('…and with orphan_policy = log it is kept and reported', async () => {
    const { conductor, driver, manager } = make({ orphanPolicy: 'log' });
    const { uuid, row } = newInstance(conductor);
    await addGuest(driver, row());
    conductor.localDelete(uuid);
    await manager.start();
    assert.equal(driver.guests.has(uuid), true);
    assert.deepEqual(actionOf(uuid), ['orphan-logged']);
  });

  it('when Nova cannot be asked about unknown containers, nothing is removed and the host still starts', async () => {
    const { conductor, driver, manager } = make();
    const orphan = randomUUID();
    await addGuest(driver, orphan);
    const classAction = conductor.classAction.bind(conductor);
    conductor.classAction = (ctx, objname, objmethod, args) =>
      objmethod === 'get_by_filters'
        ? Promise.reject(new Error('conductor timeout'))
        : classAction(ctx, objname, objmethod, args);
    await manager.start();
    assert.equal(driver.guests.has(orphan), true);
  });

  it('orphan_policy = log keeps them and reports them', async () => {
    const { driver, manager } = make({ orphanPolicy: 'log' });
    const orphan = randomUUID();
    await addGuest(driver, orphan);
    await manager.start();
    assert.equal(driver.guests.has(orphan), true);
    assert.deepEqual(actionOf(orphan), ['orphan-logged']);
  });

  it('a healthy host: nothing done, one list from each side, the scheduler told', async () => {
    const { conductor, driver, scheduler, manager } = make();
    const { uuid } = newInstance(conductor);
    await addGuest(driver, uuid);
    const saves = conductor.saves.length;
    await manager.start();
    assert.deepEqual(manager.lastRecovery, []);
    assert.equal(conductor.saves.length, saves);
    assert.equal(conductor.calls.filter((c) => c === 'InstanceList.get_by_filters').length, 0);
    assert.ok(scheduler.casts.includes('sync 1'));
    assert.equal(driver.guests.get(uuid)?.instance.host, HOST);
  });

  it('the API moving the task meanwhile wins over recovery', async () => {
    const { conductor, driver, manager } = make();
    const { uuid } = newInstance(conductor, { task_state: 'powering-off' });
    await addGuest(driver, uuid);
    const powerOff = driver.powerOff.bind(driver);
    driver.powerOff = async (i, t) => {
      conductor.row(uuid).task_state = 'deleting';
      return powerOff(i, t);
    };
    await manager.start();
    assert.equal(conductor.row(uuid).task_state, 'deleting');
    assert.equal(conductor.row(uuid).vm_state, 'active');
  });
});
