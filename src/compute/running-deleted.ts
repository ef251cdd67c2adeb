/**
 * _cleanup_running_deleted_instances (nova/compute/manager.py): containers of
 * instances Nova has deleted. The API deletes an instance itself, without
 * telling the host, when the host looks down (its heartbeat is older than
 * service_down_time) or has no host yet; a container whose build had already
 * finished then runs on for nobody. Every
 * running_deleted_instance_poll_interval this asks Nova, in one call, which
 * of this host's containers belong to deleted instances and reaps them (or
 * logs them, or powers them off), as nova-compute does.
 */
import { errorMessage } from '../common/errors.js';
import { listObjects } from '../objects/base.js';
import { adminContext, contextFromValues } from '../rpc/context.js';
import type { ComputeDriver } from '../virt/driver.js';
import type { InstanceLocks } from './instance-lock.js';
import { driverContext, type InstanceStore } from './instance-store.js';

export type RunningDeletedAction = 'noop' | 'log' | 'shutdown' | 'reap';

export interface RunningDeletedDeps {
  store: InstanceStore;
  driver: ComputeDriver;
  locks: InstanceLocks;
  action: RunningDeletedAction;
  /** running_deleted_instance_timeout: seconds an instance must have been deleted before it is acted on. */
  timeoutS: number;
  now?: () => number;
}

/** Returns the uuids acted on (logged, powered off or reaped). */
export async function cleanupRunningDeletedInstances(d: RunningDeletedDeps): Promise<string[]> {
  if (d.action === 'noop') return [];
  const uuids = await d.driver.listInstanceUuids();
  if (uuids.length === 0) return []; // as Nova: no conductor call for an empty host
  // admin contexts do not read deleted rows unless asked (Nova's temporary_mutation read_deleted="yes")
  const ctx = contextFromValues({ ...adminContext().values, read_deleted: 'yes' });
  const list = await d.store.conductor.classAction(
    ctx,
    'InstanceList',
    'get_by_filters',
    [{ uuid: uuids, deleted: true, soft_deleted: false }],
    { expected_attrs: [] },
  );
  const now = d.now?.() ?? Date.now();
  const acted: string[] = [];
  for (const instance of listObjects(list)) {
    const uuid = instance.str('uuid') ?? '';
    const deletedAt = Date.parse(`${instance.str('deleted_at') ?? ''}`);
    if (Number.isFinite(deletedAt) && now - deletedAt < d.timeoutS * 1000) continue;
    const spec = d.store.spec(instance);
    const what = 'which is marked as DELETED but still present on host';
    try {
      if (d.action === 'log') {
        d.store.log('warn', `Detected instance ${what}.`, ctx, uuid);
      } else if (d.action === 'shutdown') {
        d.store.log('info', `Powering off instance ${what}.`, ctx, uuid);
        await d.locks.run(uuid, () => d.driver.powerOff(spec));
      } else {
        d.store.log('info', `Destroying instance ${what}.`, ctx, uuid);
        await d.locks.run(uuid, () => d.driver.destroy(driverContext(ctx), spec, []));
      }
      acted.push(uuid);
    } catch (err) {
      d.store.log('warn', `Periodic cleanup failed to delete instance: ${errorMessage(err)}`, ctx, uuid);
    }
  }
  return acted;
}
