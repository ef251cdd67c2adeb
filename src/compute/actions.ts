/**
 * Power actions on an existing instance (compute RPC 6.x casts): stop, start,
 * reboot, pause, unpause, suspend, resume. Each follows nova/compute/manager.py
 * (Zed): the same saves with the same `expected_task_state`, the power state
 * read back from the driver afterwards, and on failure Nova's decorators
 * (reverts_task_state ∘ wrap_instance_event ∘ wrap_instance_fault) plus
 * _error_out_instance_on_exception where Nova uses it (suspend, resume).
 */
import { errorMessage } from '../common/errors.js';
import type { NovaObject } from '../objects/base.js';
import type { RequestContext } from '../rpc/context.js';
import type { RpcArgs, RpcHandler } from '../rpc/dispatcher.js';
import type { ComputeDriver } from '../virt/driver.js';
import { PowerState } from '../virt/power-state.js';
import type { RebootType } from '../virt/types.js';
import { loadedSystemMetadata, shutdownTimeout } from './instance.js';
import {
  currentPowerState,
  driverContext,
  type ExpectedTaskState,
  type InstanceStore,
  isNovaException,
} from './instance-store.js';
import { cleanUpShelved } from './shelve.js';
import type { SnapshotImageApi } from './collaborators.js';
import { networkInfoOf } from './network-info.js';
import { VmState } from './states.js';

/** nova/compute/task_states.py, the ones these actions move through. */
export const ActionTaskState = {
  POWERING_OFF: 'powering-off',
  POWERING_ON: 'powering-on',
  REBOOTING: 'rebooting',
  REBOOT_PENDING: 'reboot_pending',
  REBOOT_STARTED: 'reboot_started',
  REBOOTING_HARD: 'rebooting_hard',
  REBOOT_PENDING_HARD: 'reboot_pending_hard',
  REBOOT_STARTED_HARD: 'reboot_started_hard',
  PAUSING: 'pausing',
  UNPAUSING: 'unpausing',
  SUSPENDING: 'suspending',
  RESUMING: 'resuming',
} as const;

const T = ActionTaskState;
const SOFT_REBOOT_STATES = [T.REBOOTING, T.REBOOT_PENDING, T.REBOOT_STARTED];
const HARD_REBOOT_STATES = [T.REBOOTING_HARD, T.REBOOT_PENDING_HARD, T.REBOOT_STARTED_HARD];

/** vm_state `rescued`: a reboot keeps it (nova's _reboot_instance). */
const RESCUED = 'rescued';

type Body = (instance: NovaObject, uuid: string) => Promise<void>;

export class InstanceActions {
  constructor(
    private readonly store: InstanceStore,
    private readonly driver: ComputeDriver,
    /** Glance: start_instance deletes the image of a shelved instance it unshelves. */
    private readonly images?: SnapshotImageApi,
  ) {}

  /** The RPC method table, merged into ComputeManager.endpoint(). */
  methods(): Record<string, RpcHandler> {
    return {
      stop_instance: (ctx, a) => this.stopInstance(ctx, a),
      start_instance: (ctx, a) => this.startInstance(ctx, a),
      reboot_instance: (ctx, a) => this.rebootInstance(ctx, a),
      pause_instance: (ctx, a) => this.pauseInstance(ctx, a),
      unpause_instance: (ctx, a) => this.unpauseInstance(ctx, a),
      suspend_instance: (ctx, a) => this.suspendInstance(ctx, a),
      resume_instance: (ctx, a) => this.resumeInstance(ctx, a),
    };
  }

  async stopInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const cleanShutdown = args.clean_shutdown !== false;
    await this.decorated(ctx, 'stop_instance', args, async (instance, uuid) => {
      const current = await this.powerState(instance);
      // already off in the hypervisor: the task may have been cleared meanwhile (nova's note on races)
      const expected: Array<string | null> = [T.POWERING_OFF];
      if (current === PowerState.NOSTATE || current === PowerState.SHUTDOWN || current === PowerState.CRASHED) {
        this.store.log('info', 'Instance is already powered off in the hypervisor when stop is called.', ctx, uuid);
        expected.push(null);
      }
      await this.driver.powerOff(this.store.spec(instance), shutdownTimeout(instance, cleanShutdown));
      await this.save(ctx, instance, VmState.STOPPED, expected);
    });
  }

  /** Also the unshelve of a SHELVED (not offloaded) instance: its shelved image and shelve keys go. */
  async startInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    await this.decorated(ctx, 'start_instance', args, async (instance) => {
      await this.driver.powerOn(driverContext(ctx), this.store.spec(instance), networkInfoOf(instance));
      const snapshotId = (await this.store.systemMetadata(ctx, instance)).shelved_image_id;
      await cleanUpShelved(this.store, this.images, ctx, instance, typeof snapshotId === 'string' ? snapshotId : '');
      await this.save(ctx, instance, VmState.ACTIVE, T.POWERING_ON);
    });
  }

  /** _reboot_instance: pending → started → None, ERROR only when the guest is not running afterwards. */
  async rebootInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const type: RebootType = args.reboot_type === 'HARD' ? 'HARD' : 'SOFT';
    const soft = type === 'SOFT';
    await this.decorated(ctx, 'reboot_instance', args, async (instance, uuid) => {
      this.store.log('info', 'Rebooting instance', ctx, uuid);
      await this.store.save(
        ctx,
        instance,
        {
          task_state: soft ? T.REBOOT_PENDING : T.REBOOT_PENDING_HARD,
          power_state: await this.powerState(instance),
        },
        soft ? SOFT_REBOOT_STATES : HARD_REBOOT_STATES,
      );
      if (instance.num('power_state') !== PowerState.RUNNING) {
        this.store.log(
          'warn',
          `trying to reboot a non-running instance: (state: ${String(instance.num('power_state'))} expected: ${PowerState.RUNNING})`,
          ctx,
          uuid,
        );
      }
      const newVmState = instance.str('vm_state') === RESCUED ? RESCUED : VmState.ACTIVE;
      let newPowerState: PowerState | undefined;
      try {
        await this.store.save(
          ctx,
          instance,
          { task_state: soft ? T.REBOOT_STARTED : T.REBOOT_STARTED_HARD },
          soft ? T.REBOOT_PENDING : T.REBOOT_PENDING_HARD,
        );
        await this.driver.reboot(driverContext(ctx), this.store.spec(instance), networkInfoOf(instance), type);
      } catch (err) {
        newPowerState = await this.powerState(instance);
        if (newPowerState !== PowerState.RUNNING) {
          this.store.log('error', `Cannot reboot instance: ${errorMessage(err)}`, ctx, uuid);
          await this.store.save(ctx, instance, { vm_state: VmState.ERROR }).catch((e: unknown) => {
            if (!isNovaException(e, 'InstanceNotFound')) throw e;
          });
          throw err;
        }
        // the guest still runs: a fault says what happened, the instance stays usable
        this.store.log('warn', `Reboot failed but instance is running: ${errorMessage(err)}`, ctx, uuid);
        await this.store.recordFault(ctx, uuid, err);
      }
      newPowerState ??= await this.powerState(instance);
      try {
        await this.store.save(ctx, instance, { power_state: newPowerState, vm_state: newVmState, task_state: null });
      } catch (err) {
        if (!isNovaException(err, 'InstanceNotFound')) throw err;
        this.store.log('warn', 'Instance disappeared during reboot', ctx, uuid);
      }
    });
  }

  async pauseInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    await this.decorated(ctx, 'pause_instance', args, async (instance, uuid) => {
      this.store.log('info', 'Pausing', ctx, uuid);
      await this.driver.pause(this.store.spec(instance));
      await this.save(ctx, instance, VmState.PAUSED, T.PAUSING);
    });
  }

  async unpauseInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    await this.decorated(ctx, 'unpause_instance', args, async (instance, uuid) => {
      this.store.log('info', 'Unpausing', ctx, uuid);
      await this.driver.unpause(this.store.spec(instance));
      await this.save(ctx, instance, VmState.ACTIVE, T.UNPAUSING);
    });
  }

  /** The vm_state before suspending goes to system_metadata old_vm_state; resume restores it. */
  async suspendInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    await this.decorated(ctx, 'suspend_instance', args, async (instance, uuid) => {
      const vmState = instance.str('vm_state');
      const sysmeta = loadedSystemMetadata(instance);
      if (sysmeta) instance.set('system_metadata', { ...sysmeta, old_vm_state: vmState });
      await this.store.errorOutOnException(ctx, instance, vmState, () =>
        this.driver.suspend(driverContext(ctx), this.store.spec(instance)),
      );
      this.store.log('info', 'Suspended', ctx, uuid);
      await this.save(ctx, instance, VmState.SUSPENDED, T.SUSPENDING);
    });
  }

  async resumeInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    await this.decorated(ctx, 'resume_instance', args, async (instance, uuid) => {
      this.store.log('info', 'Resuming', ctx, uuid);
      await this.store.errorOutOnException(ctx, instance, instance.str('vm_state'), () =>
        this.driver.resume(driverContext(ctx), this.store.spec(instance), networkInfoOf(instance)),
      );
      const fields: Record<string, unknown> = { power_state: await this.powerState(instance) };
      // backwards compatible default, as nova's: ACTIVE
      let vmState: string = VmState.ACTIVE;
      const sysmeta = loadedSystemMetadata(instance);
      if (sysmeta && 'old_vm_state' in sysmeta) {
        const { old_vm_state: old, ...rest } = sysmeta;
        if (typeof old === 'string') vmState = old;
        fields.system_metadata = rest;
      }
      await this.store.save(ctx, instance, { ...fields, vm_state: vmState, task_state: null }, T.RESUMING);
    });
  }

  // ------------------------------------------------------------------ nova's decorators

  /** power_state from the driver, vm_state given, task cleared, guarded by `expected`. */
  private async save(
    ctx: RequestContext,
    instance: NovaObject,
    vmState: string,
    expected: ExpectedTaskState,
  ): Promise<void> {
    const powerState = await this.powerState(instance);
    await this.store.save(ctx, instance, { power_state: powerState, vm_state: vmState, task_state: null }, expected);
  }

  /** _get_power_state */
  private async powerState(instance: NovaObject): Promise<PowerState> {
    return await currentPowerState(this.driver, this.store.spec(instance));
  }

  /** Nova's decorators and the instance lock (InstanceStore.decorated) around `body`. */
  private async decorated(ctx: RequestContext, method: string, args: RpcArgs, body: Body): Promise<void> {
    const instance = this.store.instanceArg(args);
    const uuid = instance.str('uuid') ?? '';
    await this.store.decorated(ctx, instance, method, {}, () => body(instance, uuid));
  }
}
