/**
 * Power-state truth: what nova/compute/manager.py's handle_lifecycle_event and
 * _sync_instance_power_state do, shared by the driver's event feed (seconds)
 * and the periodic _sync_power_states (the backstop). The hypervisor is right
 * about power_state; vm_state follows Nova's rules (an ACTIVE instance whose
 * guest stopped by itself is stopped, a STOPPED one whose guest runs is
 * stopped again). Instances with a task in flight are left to that task, and
 * every save carries expected_task_state [None], so a task that starts
 * meanwhile wins.
 */
import { errorMessage } from '../common/errors.js';
import type { NovaObject } from '../objects/base.js';
import { isRemote } from '../objects/conductor.js';
import { adminContext, type RequestContext } from '../rpc/context.js';
import type { ComputeDriver } from '../virt/driver.js';
import { LIFECYCLE_NAMES, LifecycleTransition, type LifecycleEvent } from '../virt/event.js';
import { POWER_STATE_NAMES, PowerState } from '../virt/power-state.js';
import { currentPowerState, type InstanceStore } from './instance-store.js';
import { VmState } from './states.js';

export const POWERING_OFF = 'powering-off';

/** The power state each transition stands for (handle_lifecycle_event). */
const EXPECTED: Readonly<Record<LifecycleTransition, readonly PowerState[]>> = {
  // Nova maps STOPPED to SHUTDOWN; a container that died of OOM or a non-zero
  // exit reads CRASHED and one removed reads NOSTATE, both still "stopped".
  [LifecycleTransition.STOPPED]: [PowerState.SHUTDOWN, PowerState.CRASHED, PowerState.NOSTATE],
  [LifecycleTransition.STARTED]: [PowerState.RUNNING],
  [LifecycleTransition.RESUMED]: [PowerState.RUNNING],
  [LifecycleTransition.PAUSED]: [PowerState.PAUSED],
  [LifecycleTransition.SUSPENDED]: [PowerState.SUSPENDED],
};

/** Saves that lost against a task or a delete: expected, not failures. */
function lostRace(err: unknown): boolean {
  return isRemote(err, 'UnexpectedTaskStateError', 'UnexpectedDeletingTaskStateError', 'InstanceNotFound');
}

export type SyncOutcome = 'unchanged' | 'skipped' | 'saved' | 'stopped';

export class PowerStateSync {
  constructor(
    private readonly store: InstanceStore,
    private readonly driver: ComputeDriver,
    private readonly host: string,
  ) {}

  /** _get_power_state: the guest's state now, NOSTATE when it is gone. */
  async currentPowerState(instance: NovaObject): Promise<PowerState> {
    return await currentPowerState(this.driver, this.store.spec(instance));
  }

  /**
   * handle_lifecycle_event: re-reads the instance and the guest; a late event
   * that no longer matches the guest is ignored (the next one will be right).
   * Returns what was done.
   */
  async handleLifecycleEvent(event: LifecycleEvent): Promise<SyncOutcome> {
    const ctx = adminContext();
    const uuid = event.uuid;
    this.store.log('info', `VM ${LIFECYCLE_NAMES[event.transition]} (Lifecycle Event)`, ctx, uuid);
    let instance: NovaObject | null;
    try {
      instance = await this.store.conductor.classActionObject(ctx, 'Instance', 'get_by_uuid', [uuid], {
        expected_attrs: [],
      });
    } catch (err) {
      if (!isRemote(err, 'InstanceNotFound')) throw err;
      instance = null;
    }
    if (!instance) {
      this.store.log('debug', 'Event arrived for non-existent instance. The instance was probably deleted.', ctx, uuid);
      return 'skipped';
    }
    const current = await this.currentPowerState(instance);
    if (!EXPECTED[event.transition].includes(current)) {
      this.store.log(
        'debug',
        `Ignoring the late event ${LIFECYCLE_NAMES[event.transition]}: the guest is ${POWER_STATE_NAMES[current]} now`,
        ctx,
        uuid,
      );
      return 'skipped';
    }
    return await this.syncInstance(ctx, instance, current);
  }

  /** _sync_instance_power_state for an instance just read from Nova. */
  async syncInstance(ctx: RequestContext, instance: NovaObject, vmPowerState: PowerState): Promise<SyncOutcome> {
    const uuid = instance.str('uuid') ?? '';
    if (instance.str('host') !== this.host) return 'skipped';
    const task = instance.str('task_state');
    if (task !== null) {
      this.store.log('info', `During sync_power_state the instance has a pending task (${task}). Skip.`, ctx, uuid);
      return 'skipped';
    }
    const vmState = instance.str('vm_state');
    const dbPowerState = instance.num('power_state');
    const fields: Record<string, unknown> = {};
    if (dbPowerState !== vmPowerState) fields.power_state = vmPowerState;
    const off = vmPowerState === PowerState.SHUTDOWN || vmPowerState === PowerState.CRASHED;
    let forceStop = false;
    if (vmState === VmState.ACTIVE) {
      if (off) {
        // Nova calls the stop API; the guest is off already, so its end state is saved directly
        this.store.log('warn', 'Instance shutdown by itself. Setting it to stopped.', ctx, uuid);
        fields.vm_state = VmState.STOPPED;
      } else if (vmPowerState === PowerState.SUSPENDED) {
        this.store.log('warn', 'Instance is suspended unexpectedly. Stopping it.', ctx, uuid);
        forceStop = true;
      } else if (vmPowerState === PowerState.PAUSED) {
        // bug 1097806: pauses from outside are often temporary; Nova ignores them
        this.store.log('warn', 'Instance is paused unexpectedly. Ignore.', ctx, uuid);
      } else if (vmPowerState === PowerState.NOSTATE) {
        this.store.log('warn', 'Instance is unexpectedly not found. Ignore.', ctx, uuid);
      }
    } else if (vmState === VmState.STOPPED) {
      if (!off && vmPowerState !== PowerState.NOSTATE) {
        this.store.log('warn', 'Instance is not stopped. Stopping it again (force_stop).', ctx, uuid);
        forceStop = true;
      }
    } else if (vmState === VmState.PAUSED && off) {
      this.store.log('warn', 'Paused instance shutdown by itself. Setting it to stopped.', ctx, uuid);
      fields.vm_state = VmState.STOPPED;
    }
    if (forceStop) return await this.forceStop(ctx, instance, vmPowerState);
    if (Object.keys(fields).length === 0) return 'unchanged';
    try {
      await this.store.save(ctx, instance, fields, [null]);
    } catch (err) {
      if (lostRace(err)) return 'skipped';
      throw err;
    }
    this.store.log('info', `Power state sync: ${JSON.stringify(fields)}`, ctx, uuid);
    return fields.vm_state === VmState.STOPPED ? 'stopped' : 'saved';
  }

  /**
   * compute_api.force_stop then stop_instance, here: claim the instance with
   * task_state powering-off (fails if a task started meanwhile), power the
   * guest off, save STOPPED; on failure the task is reverted and a fault
   * recorded (reverts_task_state, wrap_instance_fault).
   */
  private async forceStop(ctx: RequestContext, instance: NovaObject, vmPowerState: PowerState): Promise<SyncOutcome> {
    const uuid = instance.str('uuid') ?? '';
    try {
      await this.store.save(ctx, instance, { power_state: vmPowerState, task_state: POWERING_OFF }, [null]);
    } catch (err) {
      if (lostRace(err)) return 'skipped';
      throw err;
    }
    try {
      await this.driver.powerOff(this.store.spec(instance), 0);
      const now = await this.currentPowerState(instance);
      await this.store.save(
        ctx,
        instance,
        { vm_state: VmState.STOPPED, power_state: now, task_state: null },
        POWERING_OFF,
      );
      return 'stopped';
    } catch (err) {
      if (lostRace(err)) return 'skipped';
      this.store.log('error', `error during stop() in sync_power_state: ${errorMessage(err)}`, ctx, uuid);
      await this.store.recordFault(ctx, uuid, err);
      await this.store.save(ctx, instance, { task_state: null }).catch(() => undefined);
      return 'skipped';
    }
  }
}
