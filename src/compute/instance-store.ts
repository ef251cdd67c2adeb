/**
 * Instance state in Nova, through the conductor: saves with
 * `expected_task_state`, instance action events and faults. Shared by the
 * manager and the action modules, so every action moves state the same way
 * Nova's compute manager does (wrap_instance_event, wrap_instance_fault).
 */
import type { Logger } from '../common/log.js';
import { errorMessage, findCause, NovaError } from '../common/errors.js';
import { NovaObject, novaDateTime } from '../objects/base.js';
import { type Conductor, isRemote } from '../objects/conductor.js';
import { versionAtLeast, type NovaRelease } from '../objects/releases.js';
import { contextLogFields, type RequestContext } from '../rpc/context.js';
import type { ComputeDriver } from '../virt/driver.js';
import { PowerState } from '../virt/power-state.js';
import type { DriverContext, InstanceSpec } from '../virt/types.js';
import { instanceSpec, loadedSystemMetadata } from './instance.js';
import { InstanceLocks } from './instance-lock.js';
import { VmState } from './states.js';

const LOGGER = 'nova_docker.compute.manager';

export type LogLevel = 'info' | 'warn' | 'error' | 'debug';
export type ExpectedTaskState = ReadonlyArray<string | null> | string | null;

export function driverContext(ctx: RequestContext): DriverContext {
  const dc: DriverContext = { requestId: ctx.request_id, userIdentity: contextLogFields(ctx).user_identity };
  if (ctx.auth_token) dc.authToken = ctx.auth_token;
  if (ctx.global_request_id) dc.globalRequestId = ctx.global_request_id;
  if (ctx.user_id) dc.userId = ctx.user_id;
  if (ctx.project_id) dc.projectId = ctx.project_id;
  return dc;
}

/** True for the errors that mean "the user deleted the instance meanwhile". */
export function deletedMeanwhile(err: unknown): boolean {
  return isRemote(err, 'InstanceNotFound', 'UnexpectedDeletingTaskStateError');
}

/** True when `err` is Nova exception `klass`, raised here (NovaError) or answered by the conductor (RemoteError). */
export function isNovaException(err: unknown, ...klass: string[]): boolean {
  if (err instanceof NovaError) return klass.includes(err.novaClass);
  return isRemote(err, ...klass);
}

/** _get_power_state: the driver's answer, NOSTATE when the guest is missing. */
export async function currentPowerState(driver: ComputeDriver, instance: InstanceSpec): Promise<PowerState> {
  try {
    return (await driver.getInfo(instance)).power_state;
  } catch (err) {
    if (isNovaException(err, 'InstanceNotFound')) return PowerState.NOSTATE;
    throw err;
  }
}

/**
 * _update_instance_after_spawn: the fields the save after a rebuild's or an
 * unshelve's spawn carries (the guest's power state as the driver reports it).
 */
export async function afterSpawnFields(
  driver: ComputeDriver,
  instance: InstanceSpec,
): Promise<Record<string, unknown>> {
  return {
    power_state: await currentPowerState(driver, instance),
    vm_state: VmState.ACTIVE,
    task_state: null,
    launched_at: novaDateTime(),
  };
}

/** nova.exception.InstanceFaultRollback: _error_out_instance_on_exception restores vm_state and raises `inner`. */
export class InstanceFaultRollback extends Error {
  constructor(readonly inner: Error) {
    super(inner.message, { cause: inner });
  }
}

/** The decorators a compute manager method has besides wrap_instance_event and wrap_instance_fault. */
export interface Decorators {
  /** reverts_task_state; default true (confirm_resize has none). */
  revertsTaskState?: boolean;
  /** errors_out_migration: this migration goes to `error` on failure. */
  migration?: NovaObject | undefined;
  /**
   * utils.synchronized(instance.uuid), around the whole stack; default true.
   * false only for a step run inside another that holds the lock already
   * (the stop after a rebuild or revert of a stopped instance).
   */
  lock?: boolean;
}

export class InstanceStore {
  /** ComputeNode.id of this host's node: Instance 2.8 pairs every `node` with it (compute_id). */
  computeNodeId: number | null = null;
  /** utils.synchronized(instance.uuid): one operation at a time per instance, for every module of the manager. */
  readonly locks = new InstanceLocks();

  constructor(
    readonly conductor: Conductor,
    readonly release: NovaRelease,
    readonly host: string,
    private readonly logger: Logger,
  ) {}

  log(level: LogLevel, msg: string, ctx?: RequestContext, uuid?: string): void {
    this.logger.log(level, msg, {
      logger: LOGGER,
      ...(ctx ? contextLogFields(ctx) : {}),
      ...(uuid ? { instance_uuid: uuid } : {}),
    });
  }

  /** A scheduler instance-info cast in the background: it only helps the scheduler, so a failure is only logged. */
  tellScheduler(ctx: RequestContext, uuid: string, send: () => Promise<void>): void {
    void send().catch((err: unknown) =>
      this.log('warn', `could not tell the scheduler: ${errorMessage(err)}`, ctx, uuid),
    );
  }

  /** The RPC `instance` argument as an Instance object. */
  instanceArg(args: Record<string, unknown>): NovaObject {
    return NovaObject.fromPrimitive(args.instance, 'Instance');
  }

  spec(instance: NovaObject): InstanceSpec {
    return instanceSpec(instance, this.host);
  }

  /**
   * Sets `fields` on the instance without saving it: the next save carries
   * them (what Nova does by assigning attributes before a later save).
   */
  apply(instance: NovaObject, fields: Record<string, unknown>): void {
    for (const [k, v] of Object.entries(fields)) instance.set(k, v);
    // Instance 2.8 (nova 2023.1+): the conductor refuses a node change without compute_id
    if ('node' in fields && versionAtLeast(instance.version, '2.8')) {
      instance.set('compute_id', fields.node === null ? null : this.computeNodeId);
    }
  }

  /**
   * instance.system_metadata, a copy: as sent, or loaded from the conductor
   * when the caller did not send it (Nova's obj_load_attr), and then kept on
   * the instance.
   */
  async systemMetadata(ctx: RequestContext, instance: NovaObject): Promise<Record<string, unknown>> {
    let sysmeta = loadedSystemMetadata(instance);
    if (!sysmeta) {
      const fresh = await this.conductor.classActionObject(ctx, 'Instance', 'get_by_uuid', [instance.str('uuid')], {
        expected_attrs: ['system_metadata'],
      });
      sysmeta = (fresh && loadedSystemMetadata(fresh)) ?? {};
      // loaded, not changed: the next save sends it only if a caller sets it
      instance.applyUpdates({ system_metadata: sysmeta, obj_what_changed: instance.changes });
    }
    return { ...sysmeta };
  }

  /** Instance.save(expected_task_state=…): the conductor refuses it when the task moved on. */
  async save(
    ctx: RequestContext,
    instance: NovaObject,
    fields: Record<string, unknown>,
    expectedTaskState?: ExpectedTaskState,
  ): Promise<void> {
    this.apply(instance, fields);
    const kwargs = expectedTaskState === undefined ? {} : { expected_task_state: expectedTaskState };
    await this.conductor.objectAction(ctx, instance, 'save', [], kwargs);
  }

  async eventStart(ctx: RequestContext, uuid: string, event: string): Promise<void> {
    await this.conductor.classAction(ctx, 'InstanceActionEvent', 'event_start', [uuid, event], {
      want_result: false,
      host: this.host,
    });
  }

  /** Never throws: a lost event finish must not turn a finished action into a failed one. */
  async eventFinish(ctx: RequestContext, uuid: string, event: string, err?: unknown): Promise<void> {
    try {
      await this.conductor.classAction(ctx, 'InstanceActionEvent', 'event_finish_with_failure', [uuid, event], {
        exc_val: err === undefined ? null : errorMessage(err),
        exc_tb: err instanceof Error && err.stack ? err.stack : null,
        want_result: false,
      });
    } catch (e) {
      this.log('warn', `could not finish action event ${event}: ${errorMessage(e)}`, ctx, uuid);
    }
  }

  /** InstanceFault.create; the NovaError in the cause chain gives the code and message users see. */
  async recordFault(ctx: RequestContext, uuid: string, error: unknown): Promise<void> {
    const err = findCause(error, NovaError) ?? error;
    const code = err instanceof NovaError && typeof err.kwargs.code === 'number' ? err.kwargs.code : 500;
    const message = (err instanceof NovaError ? err.message : errorMessage(err)).slice(0, 255);
    const fault = NovaObject.create('InstanceFault', this.release.objects.InstanceFault ?? '1.2', {
      instance_uuid: uuid,
      code,
      message,
      details: code === 500 && err instanceof Error ? (err.stack ?? '') : '',
      host: this.host,
    });
    try {
      await this.conductor.objectAction(ctx, fault, 'create');
    } catch (e) {
      this.log('error', `could not record the instance fault: ${errorMessage(e)}`, ctx, uuid);
    }
  }

  /**
   * wrap_instance_event: `compute_<method>` start/finish around `fn`, the
   * error (if any) recorded on the event and rethrown.
   */
  async withEvent<T>(ctx: RequestContext, uuid: string, method: string, fn: () => Promise<T>): Promise<T> {
    const event = `compute_${method}`;
    await this.eventStart(ctx, uuid, event);
    try {
      const result = await fn();
      await this.eventFinish(ctx, uuid, event);
      return result;
    } catch (err) {
      await this.eventFinish(ctx, uuid, event, err);
      throw err;
    }
  }

  /**
   * Nova's decorator stack around a compute manager method, innermost first:
   * wrap_instance_fault (a fault, unless the instance is gone), then
   * errors_out_migration (with `migration`: its status → error), then
   * wrap_instance_event (`compute_<method>` finished with the error), then
   * reverts_task_state (unless `revertsTaskState` is false: task_state → None,
   * except when another task took over, UnexpectedTaskStateError or its
   * subclass UnexpectedDeletingTaskStateError: a delete's `deleting` is never
   * overwritten). The error is rethrown. All of it under the instance's lock
   * (unless `lock` is false), so a delete arriving meanwhile waits for the
   * operation to settle, as it waits for a build. Every action, move,
   * rebuild and snapshot runs through this one helper.
   */
  async decorated(
    ctx: RequestContext,
    instance: NovaObject,
    method: string,
    o: Decorators,
    fn: () => Promise<void>,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    if (o.lock !== false) {
      await this.locks.run(uuid, () => this.decorated(ctx, instance, method, { ...o, lock: false }, fn));
      return;
    }
    try {
      await this.withEvent(ctx, uuid, method, async () => {
        try {
          try {
            await fn();
          } catch (err) {
            if (!isNovaException(err, 'InstanceNotFound')) await this.recordFault(ctx, uuid, err);
            throw err;
          }
        } catch (err) {
          if (o.migration) await this.setMigrationStatus(ctx, o.migration, 'error');
          throw err;
        }
      });
    } catch (err) {
      if (o.revertsTaskState === false) throw err;
      if (isNovaException(err, 'UnexpectedTaskStateError', 'UnexpectedDeletingTaskStateError')) {
        this.log('info', `Task possibly preempted: ${errorMessage(err)}`, ctx, uuid);
        throw err;
      }
      const original = instance.str('task_state');
      try {
        await this.save(ctx, instance, { task_state: null });
        this.log(
          'info',
          `Successfully reverted task state from ${String(original)} on failure for instance.`,
          ctx,
          uuid,
        );
      } catch (e) {
        if (!isNovaException(e, 'InstanceNotFound')) {
          this.log('warn', `Failed to revert task state for instance. Error: ${errorMessage(e)}`, ctx, uuid);
        }
      }
      throw err;
    }
  }

  /**
   * _error_out_instance_on_exception: a rollback (InstanceFaultRollback, its
   * inner error rethrown) or NotImplementedError puts vm_state back to
   * `vmState` with no task; anything else sets ERROR and leaves task_state
   * to reverts_task_state. Except a delete met on the way (the instance
   * gone, or a save refused with `deleting`): Nova saves ERROR then, and with
   * it the task the refused save had set, over the API's `deleting`; here
   * the delete decides what is left.
   */
  async errorOutOnException<T>(
    ctx: RequestContext,
    instance: NovaObject,
    vmState: string | null,
    fn: () => Promise<T>,
  ): Promise<T> {
    const uuid = instance.str('uuid') ?? '';
    try {
      return await fn();
    } catch (err) {
      if (err instanceof InstanceFaultRollback || isNovaException(err, 'NotImplementedError')) {
        this.log('info', `Setting instance back to ${String(vmState)} after: ${errorMessage(err)}`, ctx, uuid);
        await this.save(ctx, instance, { vm_state: vmState, task_state: null });
        throw err instanceof InstanceFaultRollback ? err.inner : err;
      }
      if (deletedMeanwhile(err)) throw err;
      this.log('error', `Setting instance vm_state to ERROR: ${errorMessage(err)}`, ctx, uuid);
      try {
        await this.save(ctx, instance, { vm_state: VmState.ERROR });
      } catch (e) {
        if (!isNovaException(e, 'InstanceNotFound')) throw e;
      }
      throw err;
    }
  }

  /** Migration.status = `status`, saved; a failure only logged (errors_out_migration's "Error setting migration status"). */
  async setMigrationStatus(ctx: RequestContext, migration: NovaObject, status: string): Promise<void> {
    try {
      migration.set('status', status);
      await this.conductor.objectAction(ctx, migration, 'save');
    } catch (err) {
      this.log(
        'debug',
        `Error setting migration status: ${errorMessage(err)}`,
        ctx,
        migration.str('instance_uuid') ?? '',
      );
    }
  }
}
