/**
 * The power actions' state machine (src/compute/actions.ts) on FakeDriver and
 * the in-memory conductor: every save with Nova's expected_task_state, the
 * power state read back from the driver, and Nova's failure handling
 * (fault, task_state revert, ERROR where Nova sets it). The same flows run
 * against the real Nova in test/e2e/actions.test.ts.
 */
import assert from 'node:assert/strict';
import { NovaError } from '../../../src/common/errors.js';
import { nullLogger } from '../../../src/common/log.js';
import { InstanceActions } from '../../../src/compute/actions.js';
import { InstanceStore } from '../../../src/compute/instance-store.js';
import { tailLength } from '../../../src/compute/manager.js';
import { NovaObject } from '../../../src/objects/base.js';
import { ZED } from '../../../src/objects/releases.js';
import { contextFromValues } from '../../../src/rpc/context.js';
import { lifecycleFailure, notImplemented } from '../../../src/virt/errors.js';
import { PowerState } from '../../../src/virt/power-state.js';
import { addGuest, HOST, newInstance, setup as fakeNova } from '../../support/fake-nova.js';

const ctx = contextFromValues({ request_id: 'req-action', roles: ['member'], project_id: 'p1' });

/** The shared manager setup, plus power actions on their own store (and its locks), as the manager builds them. */
function setup() {
  const t = fakeNova();
  const store = new InstanceStore(t.conductor, ZED, HOST, nullLogger());
  const actions = new InstanceActions(store, t.driver);
  return { ...t, store, actions };
}

type Env = ReturnType<typeof setup>;

/** An instance on HOST with a guest in the driver, as the API casts it (task_state set by the API). */
async function instance(env: Env, fields: Record<string, unknown>, guest: PowerState = PowerState.RUNNING) {
  const i = newInstance(env.conductor, { system_metadata: { image_base_image_ref: 'img-1' }, ...fields });
  await addGuest(env.driver, i.row(), guest);
  return i;
}

/** [vm_state, task_state, power_state, expected_task_state] of each save. */
function saves(env: Env, uuid: string) {
  return env.conductor.saves
    .filter((s) => s.uuid === uuid)
    .map((s) => [s.fields.vm_state, s.fields.task_state, s.fields.power_state, s.expected]);
}

function events(env: Env) {
  return env.conductor.events.map((e) => [e.kind, e.args[1], e.kwargs.exc_val ?? null]);
}

const ok = (event: string) => [
  ['event_start', event, null],
  ['event_finish_with_failure', event, null],
];

describe('compute/actions', () => {
  it('stop_instance: powering-off → stopped, power state from the driver, one guarded save', async () => {
    const env = setup();
    const i = await instance(env, { task_state: 'powering-off' });
    await env.actions.stopInstance(ctx, { instance: i.primitive, clean_shutdown: true });
    assert.deepEqual(saves(env, i.uuid), [['stopped', null, PowerState.SHUTDOWN, ['powering-off']]]);
    assert.equal(env.driver.guests.get(i.uuid)?.state, PowerState.SHUTDOWN);
    assert.deepEqual(events(env), ok('compute_stop_instance'));
    assert.equal(env.conductor.faults.length, 0);
  });

  it('stop_instance of a guest already off also accepts a task cleared meanwhile', async () => {
    const env = setup();
    const i = await instance(env, { task_state: 'powering-off' }, PowerState.SHUTDOWN);
    i.row().task_state = null;
    await env.actions.stopInstance(ctx, { instance: i.primitive, clean_shutdown: true });
    assert.deepEqual(saves(env, i.uuid), [['stopped', null, PowerState.SHUTDOWN, ['powering-off', null]]]);
    assert.equal(i.row().vm_state, 'stopped');
  });

  it('stop_instance: clean shutdown waits the image’s os_shutdown_timeout or the driver default; not clean = 0', async () => {
    const env = setup();
    const timeouts: Array<number | undefined> = [];
    const powerOff = env.driver.powerOff.bind(env.driver);
    env.driver.powerOff = (inst, t) => {
      timeouts.push(t);
      return powerOff(inst, t);
    };
    const a = await instance(env, { task_state: 'powering-off' });
    await env.actions.stopInstance(ctx, { instance: a.primitive, clean_shutdown: true });
    const b = await instance(env, { task_state: 'powering-off' });
    await env.actions.stopInstance(ctx, { instance: b.primitive, clean_shutdown: false });
    const c = await instance(env, {
      task_state: 'powering-off',
      system_metadata: { image_os_shutdown_timeout: '30' },
    });
    await env.actions.stopInstance(ctx, { instance: c.primitive, clean_shutdown: true });
    assert.deepEqual(timeouts, [undefined, 0, 30]);
  });

  it('start_instance: powering-on → active/RUNNING', async () => {
    const env = setup();
    const i = await instance(
      env,
      { vm_state: 'stopped', task_state: 'powering-on', power_state: PowerState.SHUTDOWN },
      PowerState.SHUTDOWN,
    );
    await env.actions.startInstance(ctx, { instance: i.primitive });
    assert.deepEqual(saves(env, i.uuid), [['active', null, PowerState.RUNNING, 'powering-on']]);
    assert.equal(env.driver.guests.get(i.uuid)?.state, PowerState.RUNNING);
    assert.deepEqual(events(env), ok('compute_start_instance'));
  });

  it('reboot_instance SOFT: rebooting → reboot_pending → reboot_started → None, ACTIVE', async () => {
    const env = setup();
    const i = await instance(env, { task_state: 'rebooting' });
    let during: unknown;
    const reboot = env.driver.reboot.bind(env.driver);
    env.driver.reboot = (c, inst, ni, type) => {
      during = [i.row().task_state, type];
      return reboot(c, inst, ni, type);
    };
    await env.actions.rebootInstance(ctx, { instance: i.primitive, reboot_type: 'SOFT', block_device_info: null });
    assert.deepEqual(saves(env, i.uuid), [
      [undefined, 'reboot_pending', PowerState.RUNNING, ['rebooting', 'reboot_pending', 'reboot_started']],
      [undefined, 'reboot_started', undefined, 'reboot_pending'],
      ['active', null, PowerState.RUNNING, undefined],
    ]);
    assert.deepEqual(during, ['reboot_started', 'SOFT']);
    assert.equal(i.row().power_state, PowerState.RUNNING);
    assert.deepEqual(events(env), ok('compute_reboot_instance'));
  });

  it('reboot_instance HARD of a stopped guest: the *_hard states, ACTIVE/RUNNING after', async () => {
    const env = setup();
    const i = await instance(
      env,
      { vm_state: 'stopped', task_state: 'rebooting_hard', power_state: PowerState.SHUTDOWN },
      PowerState.SHUTDOWN,
    );
    await env.actions.rebootInstance(ctx, { instance: i.primitive, reboot_type: 'HARD', block_device_info: null });
    assert.deepEqual(
      env.conductor.saves.map((s) => [s.fields.task_state, s.fields.power_state, s.expected]),
      [
        ['reboot_pending_hard', PowerState.SHUTDOWN, ['rebooting_hard', 'reboot_pending_hard', 'reboot_started_hard']],
        ['reboot_started_hard', undefined, 'reboot_pending_hard'],
        [null, PowerState.RUNNING, undefined],
      ],
      'the power state read before the reboot (SHUTDOWN), and after it (RUNNING)',
    );
    assert.equal(i.row().vm_state, 'active');
    assert.equal(i.row().task_state, null);
  });

  it('a failed reboot that leaves the guest off: ERROR, fault, task reverted, event failed', async () => {
    const env = setup();
    const i = await instance(env, { task_state: 'rebooting_hard' });
    env.driver.reboot = (_c, inst) => {
      env.driver.guests.get(inst.uuid)!.state = PowerState.SHUTDOWN;
      return Promise.reject(lifecycleFailure('InstanceRebootFailure', inst.uuid, 'the engine said no'));
    };
    await assert.rejects(
      env.actions.rebootInstance(ctx, { instance: i.primitive, reboot_type: 'HARD' }),
      /the engine said no/,
    );
    assert.equal(i.row().vm_state, 'error');
    assert.equal(i.row().task_state, null);
    assert.equal(env.conductor.faults.length, 1);
    assert.match(String(env.conductor.faults[0]?.message), /the engine said no/);
    assert.match(String(events(env)[1]?.[2]), /the engine said no/);
  });

  it('a failed reboot while the guest still runs: fault recorded, ACTIVE, event succeeds', async () => {
    const env = setup();
    const i = await instance(env, { task_state: 'rebooting' });
    env.driver.reboot = (_c, inst) =>
      Promise.reject(lifecycleFailure('InstanceRebootFailure', inst.uuid, 'timed out stopping'));
    await env.actions.rebootInstance(ctx, { instance: i.primitive, reboot_type: 'SOFT' });
    assert.equal(i.row().vm_state, 'active');
    assert.equal(i.row().task_state, null);
    assert.equal(i.row().power_state, PowerState.RUNNING);
    assert.equal(env.conductor.faults.length, 1);
    assert.deepEqual(events(env), ok('compute_reboot_instance'));
  });

  it('pause_instance / unpause_instance: pausing → paused/PAUSED, unpausing → active/RUNNING', async () => {
    const env = setup();
    const i = await instance(env, { task_state: 'pausing' });
    await env.actions.pauseInstance(ctx, { instance: i.primitive });
    assert.deepEqual(saves(env, i.uuid), [['paused', null, PowerState.PAUSED, 'pausing']]);
    i.row().task_state = 'unpausing';
    const paused = NovaObject.create('Instance', '2.7', i.row()).toPrimitive();
    await env.actions.unpauseInstance(ctx, { instance: paused });
    assert.deepEqual(saves(env, i.uuid)[1], ['active', null, PowerState.RUNNING, 'unpausing']);
    assert.deepEqual(events(env), [...ok('compute_pause_instance'), ...ok('compute_unpause_instance')]);
  });

  it('suspend_instance / resume_instance: old_vm_state kept in system_metadata and restored', async () => {
    const env = setup();
    const i = await instance(env, { task_state: 'suspending' });
    await env.actions.suspendInstance(ctx, { instance: i.primitive });
    assert.deepEqual(saves(env, i.uuid), [['suspended', null, PowerState.SUSPENDED, 'suspending']]);
    assert.deepEqual(i.row().system_metadata, { image_base_image_ref: 'img-1', old_vm_state: 'active' });
    i.row().task_state = 'resuming';
    const suspended = NovaObject.create('Instance', '2.7', i.row()).toPrimitive();
    await env.actions.resumeInstance(ctx, { instance: suspended });
    assert.deepEqual(saves(env, i.uuid)[1], ['active', null, PowerState.RUNNING, 'resuming']);
    assert.deepEqual(i.row().system_metadata, { image_base_image_ref: 'img-1' });
    assert.equal(env.driver.guests.get(i.uuid)?.state, PowerState.RUNNING);
  });

  it('a driver refusal (pause of a stopped guest): fault, task reverted, vm_state untouched, event failed', async () => {
    const env = setup();
    const i = await instance(env, { task_state: 'pausing' }, PowerState.SHUTDOWN);
    await assert.rejects(env.actions.pauseInstance(ctx, { instance: i.primitive }), (err) => {
      assert.ok(err instanceof NovaError);
      assert.equal(err.novaClass, 'InstanceInvalidState');
      return true;
    });
    assert.equal(i.row().vm_state, 'active');
    assert.equal(i.row().task_state, null);
    assert.equal(env.conductor.faults.length, 1);
    assert.equal(events(env)[1]?.[0], 'event_finish_with_failure');
    assert.notEqual(events(env)[1]?.[2], null);
  });

  it('a failed suspend leaves ERROR (nova’s _error_out_instance_on_exception); NotImplementedError rolls back', async () => {
    const env = setup();
    const a = await instance(env, { task_state: 'suspending' });
    env.driver.suspend = (_c, inst) =>
      Promise.reject(lifecycleFailure('InstanceSuspendFailure', inst.uuid, 'freezer busy'));
    await assert.rejects(env.actions.suspendInstance(ctx, { instance: a.primitive }), /freezer busy/);
    assert.equal(a.row().vm_state, 'error');
    assert.equal(a.row().task_state, null);
    assert.equal(env.conductor.faults.length, 1);

    const b = await instance(env, { task_state: 'suspending' });
    env.driver.suspend = () => Promise.reject(notImplemented('suspend'));
    await assert.rejects(env.actions.suspendInstance(ctx, { instance: b.primitive }));
    assert.equal(b.row().vm_state, 'active');
    assert.equal(b.row().task_state, null);
  });

  it('a preempted task (UnexpectedTaskStateError) is not reverted', async () => {
    const env = setup();
    const i = await instance(env, { task_state: 'powering-off' });
    i.row().task_state = 'deleting';
    await assert.rejects(
      env.actions.stopInstance(ctx, { instance: i.primitive, clean_shutdown: false }),
      /Unexpected task state/,
    );
    assert.equal(i.row().task_state, 'deleting', 'the delete keeps its task');
    assert.equal(i.row().vm_state, 'active');
  });

  it('a guest missing in the hypervisor: no fault (InstanceNotFound), task reverted', async () => {
    const env = setup();
    const i = await instance(env, { vm_state: 'stopped', task_state: 'powering-on' });
    env.driver.guests.delete(i.uuid);
    await assert.rejects(env.actions.startInstance(ctx, { instance: i.primitive }), /could not be found/);
    assert.equal(env.conductor.faults.length, 0);
    assert.equal(i.row().task_state, null);
    assert.equal(i.row().vm_state, 'stopped');
  });

  it('actions on one instance run one at a time (nova’s utils.synchronized(instance.uuid))', async () => {
    const env = setup();
    const i = await instance(env, { task_state: 'powering-off' });
    const order: string[] = [];
    let releaseStop!: () => void;
    const powerOff = env.driver.powerOff.bind(env.driver);
    env.driver.powerOff = async (inst, t) => {
      order.push('stop begins');
      await new Promise<void>((r) => (releaseStop = r));
      await powerOff(inst, t);
      order.push('stop ends');
    };
    const stop = env.actions.stopInstance(ctx, { instance: i.primitive, clean_shutdown: true });
    await new Promise((r) => setImmediate(r));
    const reboot = env.actions
      .rebootInstance(ctx, { instance: i.primitive, reboot_type: 'HARD' })
      .catch(() => order.push('reboot refused'));
    await new Promise((r) => setImmediate(r));
    releaseStop();
    await stop;
    await reboot;
    assert.deepEqual(order, ['stop begins', 'stop ends', 'reboot refused']);
  });

  it('the manager serves them: stop_instance and console output with tail_length through endpoint()', async () => {
    const env = setup();
    const methods = env.manager.endpoint().methods;
    const i = await instance(env, { task_state: 'powering-off' });
    await methods.stop_instance!(ctx, { instance: i.primitive, clean_shutdown: true });
    assert.equal(i.row().vm_state, 'stopped');
    assert.equal(env.conductor.faults.length, 0, 'not the "not supported" path');
    for (const m of ['start_instance', 'reboot_instance', 'pause_instance', 'unpause_instance', 'suspend_instance']) {
      assert.ok(methods[m], m);
    }
    const console = (tail: unknown) => methods.get_console_output!(ctx, { instance: i.primitive, tail_length: tail });
    // nova's _tail_log: the last N pieces split at "\n" (Tempest counts `len(output.split('\n')) == 3`)
    assert.equal(await console(3), 'ANOTHER\nLAST LINE\n');
    assert.equal(await console('2'), 'LAST LINE\n');
    assert.equal(await console(1), '');
    assert.equal(await console(null), 'FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE\n');
    assert.equal(await console(-1), 'FAKE CONSOLE OUTPUT\nANOTHER\nLAST LINE\n');
    assert.equal(await console(0), '');
  });

  it('tail_length parsing: int or numeric string; None or negative = all; junk = 0 (nova’s _tail_log)', () => {
    assert.equal(tailLength(3), 3);
    assert.equal(tailLength('2'), 2);
    assert.equal(tailLength(null), undefined);
    assert.equal(tailLength(undefined), undefined);
    assert.equal(tailLength(-1), undefined);
    assert.equal(tailLength('-1'), undefined);
    assert.equal(tailLength(0), 0);
    assert.equal(tailLength('x'), 0);
  });
});
