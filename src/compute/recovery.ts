/**
 * Recovery at start (nova/compute/manager.py init_host / _init_instance):
 * what a previous run of the agent left half-done is finished or undone
 * before the host takes RPC again. One conductor call (InstanceList.get_by_host)
 * and one Docker call (our containers by label) give both sides; then per
 * instance, Nova's rules:
 *
 * - a build cut off (vm_state building, or a build task state) → ERROR with a
 *   fault, its half-made container removed;
 * - task deleting, or vm_state deleted → the delete is completed;
 * - rebuild cut off → ERROR; snapshot / resize_prep tasks → cleared;
 * - reboot pending / started but not running → rebooted; running with a
 *   reboot, pause or unpause task → ACTIVE, task cleared; paused while
 *   unpausing → unpaused; powering-off / powering-on → done now;
 * - power_state RUNNING in Nova but the container is not running, with
 *   resume_guests_state_on_host_boot → started (ERROR if it cannot be);
 * - containers labelled for this host whose instance Nova has deleted or never
 *   knew → removed or only logged ([docker] orphan_policy); one whose build
 *   was cut off before the instance got its host → ERROR, container removed.
 *
 * Everything else (an ACTIVE instance whose container stopped or vanished)
 * is the power-state sync's, which the manager runs right after.
 */
import { NovaError, errorMessage } from '../common/errors.js';
import type { NovaObject } from '../objects/base.js';
import { listObjects, novaDateTime } from '../objects/base.js';
import { isRemote } from '../objects/conductor.js';
import { adminContext, type RequestContext } from '../rpc/context.js';
import type { ComputeDriver } from '../virt/driver.js';
import { PowerState } from '../virt/power-state.js';
import type { InstanceSpec, RebootType } from '../virt/types.js';
import { driverContext, type InstanceStore } from './instance-store.js';
import type { PlacementReporter, SchedulerNotifier } from './collaborators.js';
import { networkInfoOf } from './network-info.js';
import { VmState } from './states.js';

export type OrphanPolicy = 'remove' | 'log';

export interface RecoveryDeps {
  store: InstanceStore;
  driver: ComputeDriver;
  placement: Pick<PlacementReporter, 'deleteAllocations'>;
  scheduler: Pick<SchedulerNotifier, 'deleteInstanceInfo'>;
  host: string;
  resumeGuestsStateOnHostBoot: boolean;
  orphanPolicy: OrphanPolicy;
}

export type RecoveryActionKind =
  | 'build-errored'
  | 'rebuild-errored'
  | 'deleted'
  | 'task-cleared'
  | 'rebooted'
  | 'unpaused'
  | 'stopped'
  | 'started'
  | 'resumed'
  | 'failed'
  | 'orphan-removed'
  | 'orphan-logged'
  | 'skipped';

/** One thing recovery did (or decided not to do), for the log and tests. */
export interface RecoveryAction {
  uuid: string;
  action: RecoveryActionKind;
  detail?: string;
}

const BUILD_TASKS = ['scheduling', 'block_device_mapping', 'networking', 'spawning'];
const REBUILD_TASKS = ['rebuilding', 'rebuild_block_device_mapping', 'rebuild_spawning'];
const SNAPSHOT_TASKS = ['image_snapshot_pending', 'image_pending_upload', 'image_uploading', 'image_snapshot'];
const SOFT_REBOOT_TASKS = ['rebooting', 'reboot_pending', 'reboot_started'];
const ALLOW_HARD_REBOOT: readonly string[] = [
  VmState.ACTIVE,
  VmState.STOPPED,
  VmState.PAUSED,
  VmState.SUSPENDED,
  VmState.ERROR,
];

/** A save of recovery: only if the task is still what we read (the API may have moved it meanwhile). */
function lostRace(err: unknown): boolean {
  return isRemote(err, 'UnexpectedTaskStateError', 'UnexpectedDeletingTaskStateError', 'InstanceNotFound');
}

function interrupted(what: string): NovaError {
  return new NovaError(
    'BuildAbortException',
    `The compute service restarted while the instance was ${what}; the instance was set to ERROR.`,
    {},
  );
}

class Recovery {
  readonly actions: RecoveryAction[] = [];
  private readonly ctx: RequestContext = adminContext();

  constructor(private readonly d: RecoveryDeps) {}

  private note(uuid: string, action: RecoveryActionKind, detail?: string): void {
    this.actions.push({ uuid, action, ...(detail ? { detail } : {}) });
    const level = action === 'failed' || action === 'orphan-logged' ? 'warn' : 'info';
    this.d.store.log(level, `Recovery at start: ${action}${detail ? ` (${detail})` : ''}`, this.ctx, uuid);
  }

  private spec(instance: NovaObject): InstanceSpec {
    return this.d.store.spec(instance);
  }

  async run(): Promise<RecoveryAction[]> {
    const { store, driver, host } = this.d;
    const [list, states] = await Promise.all([
      store.conductor.classAction(this.ctx, 'InstanceList', 'get_by_host', [host], {
        expected_attrs: ['info_cache'],
      }),
      driver.listInstancePowerStates(),
    ]);
    const instances = listObjects(list);
    const known = new Set<string>();
    for (const instance of instances) {
      const uuid = instance.str('uuid') ?? '';
      known.add(uuid);
      try {
        await this.initInstance(instance, states.get(uuid) ?? PowerState.NOSTATE, states.has(uuid));
      } catch (err) {
        // one instance must not keep the host from starting (Nova logs and goes on)
        this.note(uuid, 'failed', errorMessage(err));
      }
    }
    const unknown = [...states.keys()].filter((u) => !known.has(u));
    if (unknown.length > 0) {
      try {
        await this.containersWithoutInstance(unknown);
      } catch (err) {
        // without Nova's answer nothing is removed; the next start tries again
        this.d.store.log(
          'error',
          `Recovery: cannot check ${unknown.length} container(s) without an instance on this host: ${errorMessage(err)}`,
          this.ctx,
        );
      }
    }
    return this.actions;
  }

  /** _init_instance. */
  private async initInstance(instance: NovaObject, current: PowerState, hasContainer: boolean): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    const vmState = instance.str('vm_state') ?? '';
    let task = instance.str('task_state');

    if (vmState === 'soft-delete' || (vmState === VmState.ERROR && task !== 'resize_migrating' && task !== 'deleting'))
      return;
    if (vmState === VmState.DELETED) {
      await this.completeDeletion(instance, false);
      return;
    }
    if (vmState === VmState.BUILDING || (task !== null && BUILD_TASKS.includes(task))) {
      await this.errorOut(instance, 'build-errored', interrupted('being built'), hasContainer);
      return;
    }
    if ((vmState === VmState.ACTIVE || vmState === VmState.STOPPED) && task !== null && REBUILD_TASKS.includes(task)) {
      await this.errorOut(instance, 'rebuild-errored', interrupted('being rebuilt'), false);
      return;
    }
    if (task !== null && (SNAPSHOT_TASKS.includes(task) || task === 'resize_prep')) {
      if (!(await this.save(instance, { task_state: null }))) return;
      this.note(uuid, 'task-cleared', task);
      task = null;
    }
    if (task === 'deleting') {
      await this.completeDeletion(instance, true);
      return;
    }

    // _retry_reboot
    const rebootType: RebootType =
      current === PowerState.RUNNING && task !== null && SOFT_REBOOT_TASKS.includes(task) ? 'SOFT' : 'HARD';
    const retryReboot =
      (task === 'reboot_pending' && vmState === VmState.ACTIVE) ||
      (task === 'reboot_pending_hard' && ALLOW_HARD_REBOOT.includes(vmState)) ||
      ((task === 'reboot_started' || task === 'reboot_started_hard') && current !== PowerState.RUNNING);
    if (retryReboot) {
      await this.act(instance, 'rebooted', `${task} → ${rebootType} reboot`, async () => {
        await this.d.driver.reboot(driverContext(this.ctx), this.spec(instance), networkInfoOf(instance), rebootType);
        return { vm_state: VmState.ACTIVE, power_state: PowerState.RUNNING, task_state: null };
      });
      return;
    }
    if (
      current === PowerState.RUNNING &&
      task !== null &&
      ['reboot_started', 'reboot_started_hard', 'pausing', 'unpausing'].includes(task)
    ) {
      if (!(await this.save(instance, { task_state: null, vm_state: VmState.ACTIVE }))) return;
      this.note(uuid, 'task-cleared', `${task}, the guest runs`);
      task = null;
    } else if (current === PowerState.PAUSED && task === 'unpausing') {
      await this.act(instance, 'unpaused', undefined, async () => {
        await this.d.driver.unpause(this.spec(instance));
        return { vm_state: VmState.ACTIVE, power_state: PowerState.RUNNING, task_state: null };
      });
      return;
    }
    if (task === 'powering-off') {
      await this.act(instance, 'stopped', 'powering-off', async () => {
        await this.d.driver.powerOff(this.spec(instance));
        return { vm_state: VmState.STOPPED, power_state: PowerState.SHUTDOWN, task_state: null };
      });
      return;
    }
    if (task === 'powering-on') {
      await this.act(instance, 'started', 'powering-on', async () => {
        await this.d.driver.powerOn(driverContext(this.ctx), this.spec(instance), networkInfoOf(instance));
        return { vm_state: VmState.ACTIVE, power_state: PowerState.RUNNING, task_state: null };
      });
      return;
    }
    // plug_vifs: the host side of the instance's ports exists again (a running guest whose taps went missing)
    try {
      await this.d.driver.plugVifs(this.spec(instance), networkInfoOf(instance));
    } catch (err) {
      if (!(err instanceof NovaError && err.novaClass === 'VirtualInterfacePlugException')) throw err;
      // Nova: the binding may be failed or unbound; the instance goes to ERROR until the ports are fixed
      this.note(uuid, 'failed', `Virtual interface plugging failed: ${errorMessage(err)}`);
      await this.d.store.recordFault(this.ctx, uuid, err);
      await this.save(instance, { vm_state: VmState.ERROR });
      return;
    }
    if (task !== null) {
      // Nova leaves the other tasks as they are (an operator resets them)
      this.note(uuid, 'skipped', `task_state ${task} left as it is, as Nova does`);
      return;
    }

    // _resume_guests_state: Nova has it running, the host does not
    const expectRunning = instance.num('power_state') === PowerState.RUNNING && current !== PowerState.RUNNING;
    if (expectRunning && this.d.resumeGuestsStateOnHostBoot) {
      try {
        await this.d.driver.powerOn(driverContext(this.ctx), this.spec(instance), networkInfoOf(instance));
        await this.save(instance, { power_state: PowerState.RUNNING });
        this.note(uuid, 'resumed', 'resume_guests_state_on_host_boot');
      } catch (err) {
        if (lostRace(err)) return;
        this.note(uuid, 'failed', `could not resume the guest: ${errorMessage(err)}`);
        await this.d.store.recordFault(this.ctx, uuid, err);
        await this.save(instance, { vm_state: VmState.ERROR });
      }
    }
  }

  /** Saves with expected_task_state = the task we read; false when the API moved it meanwhile. */
  private async save(instance: NovaObject, fields: Record<string, unknown>): Promise<boolean> {
    const expected = instance.str('task_state');
    try {
      await this.d.store.save(this.ctx, instance, fields, [expected]);
      return true;
    } catch (err) {
      if (lostRace(err)) {
        this.d.store.log('info', `Recovery: the instance changed meanwhile (${errorMessage(err)})`, this.ctx);
        return false;
      }
      throw err;
    }
  }

  /** A driver action for a task left in flight, then its end state; on failure a fault and the task reverted. */
  private async act(
    instance: NovaObject,
    kind: RecoveryActionKind,
    detail: string | undefined,
    fn: () => Promise<Record<string, unknown>>,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    let fields: Record<string, unknown>;
    try {
      fields = await fn();
    } catch (err) {
      this.note(uuid, 'failed', `${kind}: ${errorMessage(err)}`);
      await this.d.store.recordFault(this.ctx, uuid, err);
      await this.save(instance, { task_state: null });
      return;
    }
    if (await this.save(instance, fields)) this.note(uuid, kind, detail);
  }

  /** _set_instance_obj_error_state(clean_task_state=True), with a fault and the half-made guest removed. */
  private async errorOut(
    instance: NovaObject,
    kind: RecoveryActionKind,
    reason: NovaError,
    removeGuest: boolean,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    if (removeGuest) await this.d.driver.destroy(driverContext(this.ctx), this.spec(instance), networkInfoOf(instance));
    await this.d.store.recordFault(this.ctx, uuid, reason);
    if (await this.save(instance, { vm_state: VmState.ERROR, task_state: null })) this.note(uuid, kind);
  }

  /** _delete_instance / _complete_partial_deletion, without an action event (no request started it). */
  private async completeDeletion(instance: NovaObject, saveDeleted: boolean): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    try {
      await this.d.driver.destroy(driverContext(this.ctx), this.spec(instance), networkInfoOf(instance));
      if (saveDeleted) {
        await this.d.store.save(this.ctx, instance, {
          vm_state: VmState.DELETED,
          task_state: null,
          power_state: PowerState.NOSTATE,
          terminated_at: novaDateTime(),
        });
      }
      await this.d.placement.deleteAllocations(this.ctx, uuid);
      await this.d.store.conductor.objectAction(this.ctx, instance, 'destroy');
      void this.d.scheduler.deleteInstanceInfo(this.ctx, this.d.host, uuid).catch(() => undefined);
      this.note(uuid, 'deleted', 'the delete of the previous run was completed');
    } catch (err) {
      if (isRemote(err, 'InstanceNotFound')) {
        this.note(uuid, 'deleted', 'already gone');
        return;
      }
      this.note(uuid, 'failed', `completing the delete: ${errorMessage(err)}`);
      await this.d.store.recordFault(this.ctx, uuid, err);
      await this.d.store.save(this.ctx, instance, { vm_state: VmState.ERROR }).catch(() => undefined);
    }
  }

  /**
   * Containers labelled for this host that Nova does not list on it. Nova
   * knows no live instance → orphan (deleted while we were down, or never
   * Nova's); a build cut off before its host was saved → ERROR (what
   * _error_out_instances_whose_build_was_interrupted does); an instance Nova
   * places on another host → left alone, reported.
   */
  private async containersWithoutInstance(uuids: string[]): Promise<void> {
    const list = await this.d.store.conductor.classAction(
      this.ctx,
      'InstanceList',
      'get_by_filters',
      [{ uuid: uuids }],
      { expected_attrs: [] },
    );
    // Without a `deleted` filter Nova's instance_get_all_by_filters_sort returns deleted rows too:
    // an instance the API deleted while this host looked down still names this host, and is gone.
    const rows = new Map(listObjects(list).map((i) => [i.str('uuid') ?? '', i]));
    for (const uuid of uuids) {
      const instance = rows.get(uuid);
      try {
        if (!instance || instance.get('deleted') === true) {
          await this.orphan(uuid, instance ? 'Nova has deleted the instance' : 'Nova has no such instance');
        } else if (instance.str('host') === null && instance.str('vm_state') === VmState.BUILDING) {
          await this.errorOut(instance, 'build-errored', interrupted('being built'), true);
        } else {
          this.note(
            uuid,
            'skipped',
            `container labelled for this host, but Nova has the instance on ${String(instance.str('host'))}`,
          );
        }
      } catch (err) {
        this.note(uuid, 'failed', errorMessage(err));
      }
    }
  }

  private async orphan(uuid: string, why: string): Promise<void> {
    if (this.d.orphanPolicy === 'log') {
      this.note(uuid, 'orphan-logged', `${why}; [docker] orphan_policy = log keeps the container`);
      return;
    }
    const spec: InstanceSpec = {
      uuid,
      host: this.d.host,
      metadata: {},
      flavor: { flavorid: '', name: '', memory_mb: 0, vcpus: 0, root_gb: 0, ephemeral_gb: 0, swap: 0, extra_specs: {} },
    };
    await this.d.driver.destroy(driverContext(this.ctx), spec, []);
    this.note(uuid, 'orphan-removed', why);
  }
}

/** Runs the start-up recovery; returns what it did. Throws only when the host's state cannot be read. */
export async function recoverHost(deps: RecoveryDeps): Promise<RecoveryAction[]> {
  return await new Recovery(deps).run();
}
