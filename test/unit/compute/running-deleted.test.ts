/**
 * The running_deleted_instance periodic task (nova's
 * _cleanup_running_deleted_instances) on FakeDriver and the in-memory
 * conductor: containers of instances the API deleted without telling the host.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { PowerState } from '../../../src/virt/power-state.js';
import { addGuest, newInstance, setup } from '../../support/fake-nova.js';

describe('compute/running-deleted', () => {
  /** Two instances with running containers; the first deleted by the API alone. */
  async function hostWithLeftover(opts: Parameters<typeof setup>[0] = {}) {
    const env = setup(opts);
    const gone = newInstance(env.conductor);
    const live = newInstance(env.conductor);
    await addGuest(env.driver, gone.row());
    await addGuest(env.driver, live.row());
    env.conductor.localDelete(gone.uuid, new Date(Date.now() - 5_000));
    return { ...env, gone: gone.uuid, live: live.uuid };
  }

  it('reap (the default): the deleted instance’s container is removed, live and unknown ones are left', async () => {
    const t = await hostWithLeftover();
    const stranger = randomUUID(); // a container Nova never knew: the start-up recovery's business
    await addGuest(t.driver, stranger);
    assert.deepEqual(await t.manager.cleanupRunningDeletedInstances(), [t.gone]);
    assert.deepEqual((await t.driver.listInstanceUuids()).sort(), [t.live, stranger].sort());
    assert.deepEqual(await t.manager.cleanupRunningDeletedInstances(), [], 'nothing left to do');
  });

  it('log keeps the container; shutdown stops it; noop asks nobody', async () => {
    const log = await hostWithLeftover({ runningDeleted: { action: 'log', pollIntervalS: 60, timeoutS: 0 } });
    assert.deepEqual(await log.manager.cleanupRunningDeletedInstances(), [log.gone]);
    assert.ok((await log.driver.listInstanceUuids()).includes(log.gone));

    const stop = await hostWithLeftover({ runningDeleted: { action: 'shutdown', pollIntervalS: 60, timeoutS: 0 } });
    assert.deepEqual(await stop.manager.cleanupRunningDeletedInstances(), [stop.gone]);
    assert.equal(stop.driver.guests.get(stop.gone)?.state, PowerState.SHUTDOWN);
    assert.equal(stop.driver.guests.get(stop.live)?.state, PowerState.RUNNING);

    const noop = await hostWithLeftover({ runningDeleted: { action: 'noop', pollIntervalS: 60, timeoutS: 0 } });
    assert.deepEqual(await noop.manager.cleanupRunningDeletedInstances(), []);
    assert.ok(!noop.conductor.calls.includes('InstanceList.get_by_filters'));
  });

  it('running_deleted_instance_timeout: an instance deleted more recently than that is left for later', async () => {
    const t = await hostWithLeftover({ runningDeleted: { action: 'reap', pollIntervalS: 60, timeoutS: 60 } });
    assert.deepEqual(await t.manager.cleanupRunningDeletedInstances(), []);
    assert.ok((await t.driver.listInstanceUuids()).includes(t.gone));
    t.conductor.deletedRows.get(t.gone)!.deleted_at = new Date(Date.now() - 61_000).toISOString();
    assert.deepEqual(await t.manager.cleanupRunningDeletedInstances(), [t.gone]);
  });

  it('an empty host makes no conductor call; a conductor failure is logged, not thrown', async () => {
    const t = setup();
    assert.deepEqual(await t.manager.cleanupRunningDeletedInstances(), []);
    assert.ok(!t.conductor.calls.includes('InstanceList.get_by_filters'));
    const f = await hostWithLeftover();
    f.conductor.classAction = () => Promise.reject(new Error('MessagingTimeout'));
    assert.deepEqual(await f.manager.cleanupRunningDeletedInstances(), []);
    assert.equal((await f.driver.listInstanceUuids()).length, 2);
  });

  it('a reap waits for an operation holding the instance (its lock), never racing it', async () => {
    const t = await hostWithLeftover();
    const order: string[] = [];
    const destroy = t.driver.destroy.bind(t.driver);
    t.driver.destroy = async (...a) => {
      order.push('destroy');
      return destroy(...a);
    };
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    // a terminate of the same instance already in flight holds its lock
    const inFlight = t.manager.store.locks.run(t.gone, async () => {
      await held;
      order.push('operation done');
    });
    const reap = t.manager.cleanupRunningDeletedInstances();
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    assert.equal(order.length, 0);
    release();
    await Promise.all([inFlight, reap]);
    assert.deepEqual(order, ['operation done', 'destroy']);
  });

  it('the host reports its state as soon as it starts, not one report_interval later', async () => {
    const t = setup();
    await t.manager.start();
    try {
      assert.ok(
        t.conductor.calls.some((c) => c === 'Service.save report_count=1'),
        `a heartbeat save at start: ${t.conductor.calls.join(', ')}`,
      );
    } finally {
      t.manager.stop();
    }
  });
});
