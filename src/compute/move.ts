/**
 * Rebuild and resize (with confirm and revert), as nova/compute/manager.py
 * (Zed) runs them: the same state saves with the same expected task states,
 * Migration status moves, MigrationContext, the flavor swap on the Instance,
 * the Placement allocation moves, action events, faults and the error-out
 * rules of its decorators (wrap_instance_fault → errors_out_migration →
 * wrap_instance_event → reverts_task_state, innermost first), which
 * InstanceStore.decorated applies as it does for every other action.
 *
 * A resize happens on the instance's own host (allow_resize_to_same_host):
 * the guest stays where it is and the driver changes its resources
 * (docs/docker-driver.md). A destination other than the instance's host is
 * refused in prep_resize with the instance left as it was.
 */
import { errorMessage, NovaError } from '../common/errors.js';
import { NovaObject, novaDateTime } from '../objects/base.js';
import type { RequestContext } from '../rpc/context.js';
import type { RpcArgs, RpcHandler } from '../rpc/dispatcher.js';
import type { ComputeDriver } from '../virt/driver.js';
import type { ImageMeta } from '../virt/types.js';
import { flavorOf, imageMetaOf, shutdownTimeout } from './instance.js';
import {
  afterSpawnFields,
  currentPowerState,
  deletedMeanwhile,
  driverContext,
  InstanceFaultRollback,
  type InstanceStore,
  isNovaException,
} from './instance-store.js';
import type { ComputeCaster, ImageAPI, PlacementReporter, SchedulerNotifier } from './collaborators.js';
import { networkInfoOf } from './network-info.js';
import { PowerStateValue, TaskState, VmState } from './states.js';

export interface MoveDeps {
  store: InstanceStore;
  driver: ComputeDriver;
  placement: PlacementReporter;
  scheduler: SchedulerNotifier;
  host: string;
  nodename: () => string;
  myIp: string;
  images?: ImageAPI | undefined;
  /** Without one (tests), casts to this host run the handler in-process. */
  compute?: ComputeCaster | undefined;
}

/** Compute RPC 6.0 for every cast made here (rpcapi: `_ver(ctxt, '5.2')` → '6.0' on a 6.x cloud). */
const CAST_VERSION = '6.0';

/** Instance fields a MigrationContext carries (nova/objects/instance.py _MIGRATION_CONTEXT_ATTRS). */
const MIGRATION_CONTEXT_ATTRS = ['numa_topology', 'pci_requests', 'pci_devices', 'resources'] as const;

function str(args: RpcArgs, key: string): string | undefined {
  const v = args[key];
  return typeof v === 'string' ? v : undefined;
}

export class MoveActions {
  constructor(private readonly d: MoveDeps) {}

  methods(): Record<string, RpcHandler> {
    return {
      rebuild_instance: (ctx, a) => this.rebuildInstance(ctx, a),
      prep_resize: (ctx, a) => this.prepResize(ctx, a),
      resize_instance: (ctx, a) => this.resizeInstance(ctx, a),
      finish_resize: (ctx, a) => this.finishResize(ctx, a),
      confirm_resize: (ctx, a) => this.confirmResize(ctx, a),
      revert_resize: (ctx, a) => this.revertResize(ctx, a),
      finish_revert_resize: (ctx, a) => this.finishRevertResize(ctx, a),
    };
  }

  private get store(): InstanceStore {
    return this.d.store;
  }

  private async saveMigration(ctx: RequestContext, migration: NovaObject, fields: Record<string, unknown>) {
    for (const [k, v] of Object.entries(fields)) migration.set(k, v);
    await this.store.conductor.objectAction(ctx, migration, 'save');
  }

  /** compute_rpcapi casts; in-process when no RPC client is wired (unit tests). */
  private async cast(ctx: RequestContext, host: string, method: string, args: RpcArgs): Promise<void> {
    if (this.d.compute) {
      await this.d.compute.cast(ctx, host, method, args, CAST_VERSION);
      return;
    }
    const handler = this.methods()[method];
    if (!handler || host !== this.d.host) throw new Error(`no compute RPC client to cast ${method} to ${host}`);
    // a cast: the caller does not wait for it nor see its failure
    setImmediate(() => void Promise.resolve(handler(ctx, args)).catch(() => undefined));
  }

  /** _get_power_state */
  private async powerState(instance: NovaObject): Promise<number> {
    return await currentPowerState(this.d.driver, this.store.spec(instance));
  }

  /**
   * stop_instance as the manager calls it after a move that started from a
   * stopped instance (its own action event, task powering-off → None).
   */
  private async stopInstance(ctx: RequestContext, instance: NovaObject): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    // run inside the rebuild's or revert's lock
    await this.store.decorated(ctx, instance, 'stop_instance', { lock: false }, async () => {
      const current = await this.powerState(instance);
      const expected: Array<string | null> = [TaskState.POWERING_OFF];
      if (
        current === PowerStateValue.NOSTATE ||
        current === PowerStateValue.SHUTDOWN ||
        current === PowerStateValue.CRASHED
      ) {
        expected.push(null);
      }
      await this.d.driver.powerOff(this.store.spec(instance), shutdownTimeout(instance, true));
      await this.store.save(
        ctx,
        instance,
        { power_state: await this.powerState(instance), vm_state: VmState.STOPPED, task_state: null },
        expected,
      );
      this.store.log('info', 'Instance stopped after the move', ctx, uuid);
    });
  }

  /** The scheduler's view of the instance after a move: a failure is only logged. */
  private notifyScheduler(ctx: RequestContext, instance: NovaObject): void {
    this.store.tellScheduler(ctx, instance.str('uuid') ?? '', () =>
      this.d.scheduler.updateInstanceInfo(ctx, this.d.host, instance),
    );
  }

  // ------------------------------------------------------------------ rebuild

  /**
   * rebuild_instance (not evacuate): the guest is destroyed and spawned again
   * from `image_ref` (what the API already stored as instance.image_ref),
   * through rebuilding → rebuild_block_device_mapping → rebuild_spawning →
   * None; a stopped instance is stopped again afterwards.
   */
  async rebuildInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    const uuid = instance.str('uuid') ?? '';
    const migration = args.migration ? NovaObject.fromPrimitive(args.migration, 'Migration') : undefined;
    const evacuate = args.recreate === true;
    this.store.log('info', evacuate ? 'Evacuating instance' : 'Rebuilding instance', ctx, uuid);
    await this.store.decorated(ctx, instance, 'rebuild_instance', {}, async () => {
      const imageRef = str(args, 'image_ref');
      const imageMeta: ImageMeta = imageRef
        ? await this.imageMeta(ctx, imageRef)
        : imageMetaOf(undefined, instance.str('image_ref'));
      const allocations = await this.d.placement.getAllocations(ctx, uuid);
      const instanceState = instance.str('vm_state');
      await this.store.errorOutOnException(ctx, instance, instanceState, async () => {
        try {
          await this.doRebuild(ctx, instance, args, imageMeta, allocations.allocations, evacuate);
        } catch (err) {
          if (deletedMeanwhile(err)) {
            this.store.log('debug', 'Instance was deleted while rebuilding', ctx, uuid);
            if (migration) await this.store.setMigrationStatus(ctx, migration, 'failed');
            return;
          }
          if (migration) await this.store.setMigrationStatus(ctx, migration, 'failed');
          throw err;
        }
      });
    });
  }

  private async imageMeta(ctx: RequestContext, imageRef: string): Promise<ImageMeta> {
    if (!this.d.images) return imageMetaOf(undefined, imageRef);
    return await this.d.images.show(ctx, imageRef);
  }

  /** _do_rebuild_instance with _rebuild_default_impl. */
  private async doRebuild(
    ctx: RequestContext,
    instance: NovaObject,
    args: RpcArgs,
    imageMeta: ImageMeta,
    allocations: Record<string, unknown>,
    evacuate: boolean,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    const origVmState = instance.str('vm_state');
    // compute RPC 6.2 (nova 2023.1+): target_state is the state an evacuated instance should end in
    const targetState = str(args, 'target_state');
    if (evacuate && targetState && origVmState !== VmState.ERROR && targetState !== VmState.STOPPED) {
      throw new NovaError(
        'InstanceEvacuateNotSupportedTargetState',
        `Target state ${targetState} is not supported for evacuate.`,
        { target_state: targetState },
      );
    }
    if (evacuate && !this.d.driver.capabilities.supports_evacuate) {
      throw new NovaError('InstanceEvacuateNotSupported', 'Instance evacuate is not supported.');
    }
    await this.store.save(
      ctx,
      instance,
      { power_state: await this.powerState(instance), task_state: TaskState.REBUILDING },
      [TaskState.REBUILDING],
    );
    if (args.preserve_ephemeral === true) {
      throw new NovaError(
        'PreserveEphemeralNotSupported',
        'The current driver does not support preserving ephemeral partitions.',
      );
    }
    const dctx = driverContext(ctx);
    const spec = this.store.spec(instance);
    if (!evacuate) {
      await this.d.driver.powerOff(spec, shutdownTimeout(instance, true)).catch((err: unknown) => {
        if (!isNovaException(err, 'InstanceNotFound')) throw err;
      });
      // Nova's _rebuild_default_impl: the guest's devices go with it, spawn plugs them again
      await this.d.driver.destroy(dctx, spec, networkInfoOf(instance));
    }
    await this.store.save(ctx, instance, { task_state: TaskState.REBUILD_BLOCK_DEVICE_MAPPING }, [
      TaskState.REBUILDING,
    ]);
    await this.store.save(ctx, instance, { task_state: TaskState.REBUILD_SPAWNING }, [
      TaskState.REBUILD_BLOCK_DEVICE_MAPPING,
    ]);
    const injected = Array.isArray(args.injected_files) ? (args.injected_files as Array<[string, string]>) : [];
    await this.d.driver.spawn(
      dctx,
      { ...this.store.spec(instance), image_ref: imageMeta.id },
      imageMeta,
      injected,
      str(args, 'new_pass'),
      allocations,
      networkInfoOf(instance),
    );
    await this.store.save(ctx, instance, await afterSpawnFields(this.d.driver, this.store.spec(instance)), [
      TaskState.REBUILD_SPAWNING,
    ]);
    if (origVmState === VmState.STOPPED) {
      this.store.log('info', `bringing vm to original state: '${origVmState}'`, ctx, uuid);
      await this.store.save(ctx, instance, {
        vm_state: VmState.ACTIVE,
        task_state: TaskState.POWERING_OFF,
        progress: 0,
      });
      await this.stopInstance(ctx, instance);
    }
    this.notifyScheduler(ctx, instance);
    this.store.log('info', `Rebuilt instance from image ${imageMeta.id}`, ctx, uuid);
  }

  // ------------------------------------------------------------------ resize

  /** _revert_allocation: the source allocation held by the migration goes back to the instance. */
  private async revertAllocation(ctx: RequestContext, instance: NovaObject, migration: NovaObject) {
    const uuid = instance.str('uuid') ?? '';
    const migUuid = migration.str('uuid') ?? '';
    const orig = await this.d.placement.getAllocations(ctx, migUuid);
    if (Object.keys(orig.allocations).length === 0) {
      this.store.log(
        'error',
        `Did not find resource allocations for migration ${migUuid} on source node ` +
          `${String(migration.str('source_node'))}. Unable to revert source node allocations back to the instance.`,
        ctx,
        uuid,
      );
      return false;
    }
    this.store.log('info', `Swapping old allocation held by migration ${migUuid} for instance`, ctx, uuid);
    await this.d.placement.moveAllocations(ctx, migUuid, uuid);
    return orig;
  }

  /** _delete_allocation_after_move: the migration's (source, old flavor) allocations are dropped. */
  private async deleteAllocationAfterMove(ctx: RequestContext, instance: NovaObject, migration: NovaObject) {
    const migUuid = migration.str('uuid') ?? '';
    try {
      await this.d.placement.deleteMigrationAllocations(ctx, migUuid);
    } catch (err) {
      this.store.log(
        'error',
        `Deleting allocation in placement for migration ${migUuid} failed. The instance will be put to ERROR ` +
          `state but the allocation held by the migration is leaked.`,
        ctx,
        instance.str('uuid') ?? '',
      );
      throw err;
    }
  }

  /** _set_instance_info: the flavor and its copies in the instance row. */
  private setInstanceInfo(instance: NovaObject, flavor: NovaObject | Record<string, unknown>): Record<string, unknown> {
    const f = flavor instanceof NovaObject ? flavor : NovaObject.fromPrimitive(flavor, 'Flavor');
    return {
      instance_type_id: f.num('id'),
      memory_mb: f.num('memory_mb'),
      vcpus: f.num('vcpus'),
      root_gb: f.num('root_gb'),
      ephemeral_gb: f.num('ephemeral_gb'),
      flavor: f.toPrimitive(),
    };
  }

  /** instance.old_flavor / new_flavor; lazy-loaded (with the flavors) when the caller did not send them. */
  private async stashedFlavor(
    ctx: RequestContext,
    instance: NovaObject,
    field: 'old_flavor' | 'new_flavor',
  ): Promise<NovaObject | null> {
    if (instance.has(field)) return instance.obj(field);
    const fresh = await this.store.conductor.classActionObject(
      ctx,
      'Instance',
      'get_by_uuid',
      [instance.str('uuid') ?? ''],
      { expected_attrs: ['flavor'] },
    );
    return fresh?.obj(field) ?? null;
  }

  /** The instance's MigrationContext: loaded with it, else MigrationContext.get_by_instance_uuid. */
  private async migrationContext(ctx: RequestContext, instance: NovaObject): Promise<NovaObject | null> {
    if (instance.has('migration_context')) return instance.obj('migration_context');
    return await this.store.conductor.classActionObject(ctx, 'MigrationContext', 'get_by_instance_uuid', [
      instance.str('uuid') ?? '',
    ]);
  }

  /** apply_migration_context / revert_migration_context: the `new_` or `old_` values onto the instance. */
  private migrationContextFields(instance: NovaObject, mc: NovaObject | null, prefix: 'new_' | 'old_') {
    const out: Record<string, unknown> = {};
    if (!mc) return out;
    for (const attr of MIGRATION_CONTEXT_ATTRS) {
      if (!instance.has(attr)) continue; // not loaded: left for the conductor's copy
      const v = mc.has(prefix + attr) ? mc.get(prefix + attr) : null;
      // pci_requests is saved with to_json() whenever set: never None
      if (attr === 'pci_requests' && v === null) continue;
      out[attr] = v;
    }
    return out;
  }

  /**
   * prep_resize, on the destination (this host): checks, the new flavor and
   * old vm_state stashed, the resize claim (migration pre-migrating with its
   * destination, a MigrationContext), then resize_instance cast to the source.
   */
  async prepResize(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    const migration = NovaObject.fromPrimitive(args.migration, 'Migration');
    const flavor = NovaObject.fromPrimitive(args.flavor, 'Flavor');
    const node = str(args, 'node') ?? this.d.nodename();
    const uuid = instance.str('uuid') ?? '';
    await this.store.decorated(ctx, instance, 'prep_resize', {}, async () => {
      const instanceState = instance.str('vm_state');
      await this.store.errorOutOnException(ctx, instance, instanceState, async () => {
        try {
          try {
            await this.doPrepResize(ctx, args, instance, migration, flavor, node);
          } catch (err) {
            // no reschedule: nova-docker only resizes in place (see the module comment)
            await this.revertAllocation(ctx, instance, migration).catch((e: unknown) =>
              this.store.log('error', `could not revert the allocations: ${errorMessage(e)}`, ctx, uuid),
            );
            throw err;
          }
        } catch (err) {
          await this.store.setMigrationStatus(ctx, migration, 'error');
          throw err;
        }
      });
    });
  }

  private async doPrepResize(
    ctx: RequestContext,
    args: RpcArgs,
    instance: NovaObject,
    migration: NovaObject,
    flavor: NovaObject,
    node: string,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    const source = instance.str('host');
    if (!source) {
      await this.store.save(ctx, instance, { vm_state: VmState.ERROR });
      throw new NovaError('MigrationError', 'Migration error: Instance has no source host', {
        reason: 'Instance has no source host',
      });
    }
    const sameHost = source === this.d.host;
    if (sameHost && flavor.num('id') === instance.num('instance_type_id')) {
      if (!this.d.driver.capabilities.supports_migrate_to_same_host) {
        throw new InstanceFaultRollback(
          new NovaError(
            'UnableToMigrateToSelf',
            `Unable to migrate instance (${uuid}) to current host (${this.d.host}).`,
            { instance_id: uuid, host: this.d.host },
          ),
        );
      }
    }
    if (!sameHost) {
      throw new InstanceFaultRollback(
        new NovaError(
          'MigrationPreCheckError',
          `Migration pre-check error: nova-docker resizes an instance on its own host only (${source}), ` +
            `not onto ${this.d.host}`,
          { reason: `nova-docker resizes an instance on its own host only` },
        ),
      );
    }
    const sysmeta = { ...((instance.get('system_metadata') as Record<string, unknown> | undefined) ?? {}) };
    sysmeta.old_vm_state = instance.str('vm_state');
    await this.store.save(ctx, instance, { new_flavor: flavor.toPrimitive(), system_metadata: sysmeta });

    // resize_claim → _claim_existing_migration and the MigrationContext
    await this.saveMigration(ctx, migration, {
      dest_compute: this.d.host,
      dest_node: node,
      dest_host: this.d.myIp,
      status: 'pre-migrating',
    });
    const release = this.store.release;
    const pciRequests =
      instance.get('pci_requests') ??
      NovaObject.create('InstancePCIRequests', release.objects.InstancePCIRequests ?? '1.1', {
        instance_uuid: uuid,
        requests: [],
      }).toPrimitive();
    const newPciRequests = NovaObject.create('InstancePCIRequests', release.objects.InstancePCIRequests ?? '1.1', {
      instance_uuid: uuid,
      requests: [],
    }).toPrimitive();
    const mc = NovaObject.create('MigrationContext', release.objects.MigrationContext ?? '1.2', {
      instance_uuid: uuid,
      migration_id: migration.num('id'),
      old_numa_topology: instance.get('numa_topology') ?? null,
      new_numa_topology: null,
      old_pci_devices: instance.get('pci_devices') ?? null,
      new_pci_devices: NovaObject.create('PciDeviceList', release.objects.PciDeviceList ?? '1.3', {
        objects: [],
      }).toPrimitive(),
      old_pci_requests: pciRequests,
      new_pci_requests: newPciRequests,
      old_resources: instance.get('resources') ?? null,
      new_resources: null,
    });
    await this.store.save(ctx, instance, { migration_context: mc.toPrimitive() });
    this.store.log('info', 'Migrating', ctx, uuid);
    await this.cast(ctx, source, 'resize_instance', {
      instance: instance.toPrimitive(),
      migration: migration.toPrimitive(),
      image: args.image ?? {},
      flavor: flavor.toPrimitive(),
      clean_shutdown: args.clean_shutdown !== false,
      request_spec: args.request_spec ?? null,
    });
  }

  /** resize_instance, on the source: guest off, migration migrating → post-migrating, finish_resize cast. */
  async resizeInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    const migration = NovaObject.fromPrimitive(args.migration, 'Migration');
    const flavor = NovaObject.fromPrimitive(args.flavor, 'Flavor');
    // no errors_out_migration decorator in Nova here: errors_out_migration_ctxt inside (below)
    await this.store.decorated(ctx, instance, 'resize_instance', {}, async () => {
      try {
        const instanceState = instance.str('vm_state');
        await this.store.errorOutOnException(ctx, instance, instanceState, async () => {
          try {
            await this.saveMigration(ctx, migration, { status: 'migrating' });
            await this.store.save(ctx, instance, { task_state: TaskState.RESIZE_MIGRATING }, TaskState.RESIZE_PREP);
            const diskInfo = await this.d.driver.migrateDiskAndPowerOff(
              driverContext(ctx),
              this.store.spec(instance),
              migration.str('dest_host') ?? '',
              flavorOf(NovaObject.create('Instance', '2.7', { flavor: flavor.toPrimitive() })),
              shutdownTimeout(instance, args.clean_shutdown !== false),
            );
            await this.saveMigration(ctx, migration, { status: 'post-migrating' });
            await this.store.save(
              ctx,
              instance,
              {
                host: migration.str('dest_compute'),
                node: migration.str('dest_node'),
                old_flavor: instance.get('flavor'),
                task_state: TaskState.RESIZE_MIGRATED,
              },
              TaskState.RESIZE_MIGRATING,
            );
            await this.cast(ctx, migration.str('dest_compute') ?? this.d.host, 'finish_resize', {
              instance: instance.toPrimitive(),
              migration: migration.toPrimitive(),
              image: args.image ?? {},
              disk_info: diskInfo,
              request_spec: args.request_spec ?? null,
            });
          } catch (err) {
            await this.store.setMigrationStatus(ctx, migration, 'error');
            throw err;
          }
        });
      } catch (err) {
        await this.revertAllocation(ctx, instance, migration).catch((e: unknown) =>
          this.store.log('error', `could not revert the allocations: ${errorMessage(e)}`, ctx),
        );
        throw err;
      }
    });
  }

  /** finish_resize, on the destination: the new flavor applied, the guest resized, RESIZED (VERIFY_RESIZE). */
  async finishResize(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    const migration = NovaObject.fromPrimitive(args.migration, 'Migration');
    await this.store.decorated(ctx, instance, 'finish_resize', { migration }, async () => {
      try {
        await this.store.errorOutOnException(ctx, instance, VmState.ACTIVE, () =>
          this.doFinishResize(ctx, args, instance, migration),
        );
      } catch (err) {
        this.store.log(
          'info',
          `Deleting allocations for old flavor on source node ${String(migration.str('source_compute'))} after ` +
            'finish_resize failure. You may be able to recover the instance by hard rebooting it.',
          ctx,
          instance.str('uuid') ?? '',
        );
        await this.deleteAllocationAfterMove(ctx, instance, migration);
        throw err;
      }
      this.notifyScheduler(ctx, instance);
    });
  }

  private async doFinishResize(
    ctx: RequestContext,
    args: RpcArgs,
    instance: NovaObject,
    migration: NovaObject,
  ): Promise<void> {
    const oldFlavor = instance.get('flavor');
    const sysmeta = (instance.get('system_metadata') as Record<string, unknown> | undefined) ?? {};
    const oldVmState = typeof sysmeta.old_vm_state === 'string' ? sysmeta.old_vm_state : VmState.ACTIVE;
    const fields: Record<string, unknown> = { old_flavor: oldFlavor };
    const changesFlavor = migration.num('old_instance_type_id') !== migration.num('new_instance_type_id');
    let resizeDisks = false;
    if (changesFlavor) {
      const newFlavor = await this.stashedFlavor(ctx, instance, 'new_flavor');
      if (!newFlavor) throw new NovaError('ResizeError', 'Resize error: no new flavor stashed on the instance');
      Object.assign(fields, this.setInstanceInfo(instance, newFlavor));
      const old = instance.obj('flavor');
      resizeDisks = (['root_gb', 'swap', 'ephemeral_gb'] as const).some((k) => old?.get(k) !== newFlavor.get(k));
    }
    Object.assign(fields, this.migrationContextFields(instance, await this.migrationContext(ctx, instance), 'new_'));
    fields.task_state = TaskState.RESIZE_FINISH;
    await this.store.save(ctx, instance, fields, TaskState.RESIZE_MIGRATED);

    const powerOn = oldVmState !== VmState.STOPPED;
    try {
      await this.d.driver.finishMigration(
        driverContext(ctx),
        this.store.spec(instance),
        typeof args.disk_info === 'string' ? args.disk_info : '',
        networkInfoOf(instance),
        imageMetaOf(args.image, instance.str('image_ref')),
        resizeDisks,
        powerOn,
      );
    } catch (err) {
      // reverts_task_state's save carries these back
      if (changesFlavor && oldFlavor) {
        for (const [k, v] of Object.entries(
          this.setInstanceInfo(instance, NovaObject.fromPrimitive(oldFlavor, 'Flavor')),
        )) {
          instance.set(k, v);
        }
      }
      throw err;
    }
    await this.saveMigration(ctx, migration, { status: 'finished' });
    await this.store.save(
      ctx,
      instance,
      { vm_state: VmState.RESIZED, task_state: null, launched_at: novaDateTime() },
      TaskState.RESIZE_FINISH,
    );
  }

  /** confirm_resize, on the source: the source's share (the migration's allocations) goes, ACTIVE or STOPPED. */
  async confirmResize(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const argInstance = this.store.instanceArg(args);
    const migration = NovaObject.fromPrimitive(args.migration, 'Migration');
    const uuid = argInstance.str('uuid') ?? '';
    await this.store.decorated(ctx, argInstance, 'confirm_resize', { revertsTaskState: false, migration }, async () => {
      const status = migration.str('status');
      if (status === 'confirmed') {
        this.store.log('info', `Migration ${String(migration.num('id'))} is already confirmed`, ctx, uuid);
        return;
      }
      if (status !== 'finished' && status !== 'confirming') {
        this.store.log(
          'warn',
          `Unexpected confirmation status '${String(status)}' of migration ${String(migration.num('id'))}, ` +
            'exit confirmation process',
          ctx,
          uuid,
        );
        return;
      }
      let instance: NovaObject | null;
      try {
        instance = await this.store.conductor.classActionObject(ctx, 'Instance', 'get_by_uuid', [uuid], {
          expected_attrs: ['metadata', 'system_metadata', 'flavor'],
        });
      } catch (err) {
        if (!isNovaException(err, 'InstanceNotFound')) throw err;
        instance = null;
      }
      if (!instance) {
        this.store.log('info', 'Instance is not found during confirmation', ctx, uuid);
        return;
      }
      const inst = instance;
      await this.store.errorOutOnException(ctx, inst, VmState.ACTIVE, async () => {
        try {
          await this.doConfirmResize(ctx, inst, migration);
        } finally {
          await this.deleteAllocationAfterMove(ctx, inst, migration);
          void this.d.scheduler
            .deleteInstanceInfo(ctx, this.d.host, uuid)
            .catch((e: unknown) => this.store.log('warn', `could not tell the scheduler: ${errorMessage(e)}`, ctx));
          await this.deleteStashedFlavorInfo(ctx, inst);
        }
      });
    });
  }

  private async doConfirmResize(ctx: RequestContext, instance: NovaObject, migration: NovaObject): Promise<void> {
    await this.d.driver.confirmMigration(driverContext(ctx), this.store.spec(instance));
    // drop_move_claim_at_source
    await this.saveMigration(ctx, migration, { status: 'confirmed' });
    await this.store.conductor.objectAction(ctx, instance, 'drop_migration_context');
    const vmState = instance.num('power_state') === PowerStateValue.SHUTDOWN ? VmState.STOPPED : VmState.ACTIVE;
    await this.store.save(ctx, instance, { vm_state: vmState, task_state: null }, [
      null,
      TaskState.DELETING,
      TaskState.SOFT_DELETING,
    ]);
    this.store.log('info', `Confirmed the resize; instance ${vmState}`, ctx, instance.str('uuid') ?? '');
  }

  /** _delete_stashed_flavor_info */
  private async deleteStashedFlavorInfo(ctx: RequestContext, instance: NovaObject): Promise<void> {
    const sysmeta = { ...((instance.get('system_metadata') as Record<string, unknown> | undefined) ?? {}) };
    delete sysmeta.old_vm_state;
    await this.store.save(ctx, instance, { old_flavor: null, new_flavor: null, system_metadata: sysmeta });
  }

  /**
   * revert_resize, on the destination: the destination's guest goes away
   * (here the same guest as the source's, so it is only powered off), the
   * migration is reverted, finish_revert_resize cast to the source.
   */
  async revertResize(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    const migration = NovaObject.fromPrimitive(args.migration, 'Migration');
    await this.store.decorated(ctx, instance, 'revert_resize', { migration }, async () => {
      await this.store.errorOutOnException(ctx, instance, VmState.ACTIVE, async () => {
        const spec = this.store.spec(instance);
        if (migration.str('source_compute') === this.d.host) {
          // storage shared with the source: destroy(destroy_disks=False) of a guest that serves both sides
          await this.d.driver.powerOff(spec, shutdownTimeout(instance, true));
        } else {
          await this.d.driver.destroy(driverContext(ctx), spec, networkInfoOf(instance));
        }
        // drop_move_claim_at_dest
        await this.saveMigration(ctx, migration, { status: 'reverted' });
        const mcFields = this.migrationContextFields(instance, await this.migrationContext(ctx, instance), 'old_');
        await this.store.save(ctx, instance, mcFields, [TaskState.RESIZE_REVERTING]);
        await this.cast(ctx, migration.str('source_compute') ?? this.d.host, 'finish_revert_resize', {
          instance: instance.toPrimitive(),
          migration: migration.toPrimitive(),
          request_spec: args.request_spec ?? null,
        });
      });
    });
  }

  /** finish_revert_resize, on the source: old flavor, host and allocations back, the guest as it was. */
  async finishRevertResize(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    const migration = NovaObject.fromPrimitive(args.migration, 'Migration');
    const uuid = instance.str('uuid') ?? '';
    await this.store.decorated(ctx, instance, 'finish_revert_resize', { migration }, async () => {
      try {
        await this.store.errorOutOnException(ctx, instance, VmState.ACTIVE, async () => {
          const sysmeta = (instance.get('system_metadata') as Record<string, unknown> | undefined) ?? {};
          const oldVmState = typeof sysmeta.old_vm_state === 'string' ? sysmeta.old_vm_state : VmState.ACTIVE;
          // _revert_instance_flavor_host_node
          const oldFlavor = await this.stashedFlavor(ctx, instance, 'old_flavor');
          await this.store.save(
            ctx,
            instance,
            {
              ...(oldFlavor ? this.setInstanceInfo(instance, oldFlavor) : {}),
              host: migration.str('source_compute'),
              node: migration.str('source_node'),
            },
            [TaskState.RESIZE_REVERTING],
          );
          await this.revertAllocation(ctx, instance, migration);
          const powerOn = oldVmState !== VmState.STOPPED;
          await this.d.driver.finishRevertMigration(
            driverContext(ctx),
            this.store.spec(instance),
            networkInfoOf(instance),
            powerOn,
          );
          await this.store.conductor.objectAction(ctx, instance, 'drop_migration_context');
          await this.store.save(ctx, instance, { launched_at: novaDateTime() }, TaskState.RESIZE_REVERTING);
          this.store.log('info', `Updating instance to original state: '${oldVmState}'`, ctx, uuid);
          if (powerOn) {
            await this.store.save(ctx, instance, { vm_state: VmState.ACTIVE, task_state: null });
          } else {
            await this.store.save(ctx, instance, { task_state: TaskState.POWERING_OFF });
            await this.stopInstance(ctx, instance);
          }
        });
      } finally {
        await this.deleteStashedFlavorInfo(ctx, instance);
      }
    });
  }
}
