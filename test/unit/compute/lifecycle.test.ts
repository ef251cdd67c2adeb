/**
 * Lifecycle events from the driver, handled as Nova's handle_lifecycle_event
 * and _sync_instance_power_state do, on FakeDriver and an in-memory conductor.
 */
import assert from 'node:assert/strict';
import { LifecycleTransition } from '../../../src/virt/event.js';
import { PowerState } from '../../../src/virt/power-state.js';
import { addGuest, newInstance, setup } from '../../support/fake-nova.js';

async function started(opts: Parameters<typeof setup>[0] = {}) {
  const env = setup(opts);
  await env.manager.start();
  return env;
}

describe('compute/lifecycle events', () => {
  let stop: (() => void) | undefined;
  afterEach(() => stop?.());

  async function env() {
    const e = await started();
    stop = () => e.manager.stop();
    return e;
  }

  it('a guest that stops outside Nova: STOPPED / SHUTDOWN, saved with expected_task_state [None]', async () => {
    const { conductor, driver, manager } = await env();
    const { uuid } = newInstance(conductor);
    await addGuest(driver, uuid);
    driver.simulateExternal(uuid, PowerState.SHUTDOWN);
    await manager.eventsSettled();
    assert.equal(conductor.row(uuid).vm_state, 'stopped');
    assert.equal(conductor.row(uuid).power_state, PowerState.SHUTDOWN);
    assert.deepEqual(conductor.saves.at(-1)?.expected, [null]);
  });

  it('a guest that crashed (OOM, non-zero exit): STOPPED / CRASHED', async () => {
    const { conductor, driver, manager } = await env();
    const { uuid } = newInstance(conductor);
    await addGuest(driver, uuid);
    driver.simulateExternal(uuid, PowerState.CRASHED);
    await manager.eventsSettled();
    assert.equal(conductor.row(uuid).vm_state, 'stopped');
    assert.equal(conductor.row(uuid).power_state, PowerState.CRASHED);
  });

  it('an instance with a task in flight is left to its task', async () => {
    const { conductor, driver, manager } = await env();
    const { uuid } = newInstance(conductor, { task_state: 'powering-off' });
    await addGuest(driver, uuid);
    const before = conductor.saves.length;
    driver.simulateExternal(uuid, PowerState.SHUTDOWN);
    await manager.eventsSettled();
    assert.equal(conductor.saves.length, before);
    assert.equal(conductor.row(uuid).vm_state, 'active');
  });

  it('a task that starts between the read and the save wins', async () => {
    const { conductor, driver, manager } = await env();
    const { uuid } = newInstance(conductor);
    await addGuest(driver, uuid);
    const getInfo = driver.getInfo.bind(driver);
    driver.getInfo = async (i) => {
      conductor.row(uuid).task_state = 'powering-on';
      return getInfo(i);
    };
    driver.simulateExternal(uuid, PowerState.SHUTDOWN);
    await manager.eventsSettled();
    assert.equal(conductor.row(uuid).vm_state, 'active');
    assert.equal(conductor.row(uuid).task_state, 'powering-on');
  });

  it('paused outside Nova: power_state PAUSED, vm_state stays ACTIVE (Nova ignores outside pauses)', async () => {
    const { conductor, driver, manager } = await env();
    const { uuid } = newInstance(conductor);
    await addGuest(driver, uuid);
    driver.simulateExternal(uuid, PowerState.PAUSED);
    await manager.eventsSettled();
    assert.equal(conductor.row(uuid).power_state, PowerState.PAUSED);
    assert.equal(conductor.row(uuid).vm_state, 'active');
    driver.simulateExternal(uuid, PowerState.RUNNING);
    await manager.eventsSettled();
    assert.equal(conductor.row(uuid).power_state, PowerState.RUNNING);
  });

  it('a container removed outside Nova: power_state NOSTATE, vm_state ACTIVE', async () => {
    const { conductor, driver, manager } = await env();
    const { uuid } = newInstance(conductor);
    await addGuest(driver, uuid);
    driver.simulateExternal(uuid, undefined);
    await manager.eventsSettled();
    assert.equal(conductor.row(uuid).power_state, PowerState.NOSTATE);
    assert.equal(conductor.row(uuid).vm_state, 'active');
  });

  it('a late event that no longer matches the guest is ignored', async () => {
    const { conductor, driver, manager } = await env();
    const { uuid } = newInstance(conductor);
    await addGuest(driver, uuid);
    const before = conductor.saves.length;
    driver.emitEvent({ kind: 'lifecycle', uuid, transition: LifecycleTransition.STOPPED, timestamp: Date.now() });
    await manager.eventsSettled();
    assert.equal(conductor.saves.length, before);
    assert.equal(conductor.row(uuid).vm_state, 'active');
  });

  it('a STOPPED instance whose guest was started outside Nova is stopped again (force_stop)', async () => {
    const { conductor, driver, manager } = await env();
    const { uuid } = newInstance(conductor, { vm_state: 'stopped', power_state: PowerState.SHUTDOWN });
    await addGuest(driver, uuid, PowerState.SHUTDOWN);
    driver.simulateExternal(uuid, PowerState.RUNNING);
    await manager.eventsSettled();
    assert.equal(driver.guests.get(uuid)?.state, PowerState.SHUTDOWN);
    const mine = conductor.saves.filter((s) => s.uuid === uuid);
    assert.deepEqual(
      mine.map((s) => [s.fields.task_state, s.expected]),
      [
        ['powering-off', [null]],
        [null, 'powering-off'],
      ],
    );
    assert.equal(conductor.row(uuid).vm_state, 'stopped');
    assert.equal(conductor.row(uuid).power_state, PowerState.SHUTDOWN);
  });

  it('an event for an instance Nova does not know is dropped', async () => {
    const { conductor, driver, manager } = await env();
    driver.emitEvent({ kind: 'lifecycle', uuid: 'nope', transition: LifecycleTransition.STOPPED, timestamp: 0 });
    await manager.eventsSettled();
    assert.ok(conductor.calls.includes('Instance.get_by_uuid'));
  });

  it('events missed (the feed reconnected) trigger one full power-state sync', async () => {
    const { conductor, driver, manager } = await env();
    const { uuid } = newInstance(conductor);
    await addGuest(driver, uuid, PowerState.SHUTDOWN); // changed while no event was seen
    driver.emitEvent({ kind: 'missed', reason: 'test' });
    await manager.eventsSettled();
    await new Promise((r) => setImmediate(r));
    for (let i = 0; i < 50 && conductor.row(uuid).vm_state !== 'stopped'; i++)
      await new Promise((r) => setTimeout(r, 5));
    assert.equal(conductor.row(uuid).vm_state, 'stopped');
  });

  it('events that arrive during recovery wait for it', async () => {
    const e = setup();
    stop = () => e.manager.stop();
    const { conductor, driver, manager } = e;
    const { uuid } = newInstance(conductor, { task_state: 'powering-off' });
    await addGuest(driver, uuid);
    const order: string[] = [];
    const powerOff = driver.powerOff.bind(driver);
    driver.powerOff = async (i, t) => {
      // recovery is running: an event now must not be handled before it ends
      driver.emitEvent({ kind: 'lifecycle', uuid, transition: LifecycleTransition.STOPPED, timestamp: 0 });
      await new Promise((r) => setTimeout(r, 20));
      order.push('recovery powered off');
      return powerOff(i, t);
    };
    const getInfo = driver.getInfo.bind(driver);
    driver.getInfo = async (i) => {
      order.push('event handled');
      return getInfo(i);
    };
    await manager.start();
    await manager.eventsSettled();
    assert.deepEqual(order, ['recovery powered off', 'event handled']);
    assert.equal(conductor.row(uuid).vm_state, 'stopped');
  });

  it('stop() unregisters the listener', async () => {
    const { conductor, driver, manager } = await env();
    const { uuid } = newInstance(conductor);
    await addGuest(driver, uuid);
    manager.stop();
    driver.simulateExternal(uuid, PowerState.SHUTDOWN);
    await manager.eventsSettled();
    assert.equal(conductor.row(uuid).vm_state, 'active');
  });
});
