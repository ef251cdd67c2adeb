/**
 * shelve_instance, shelve_offload_instance and unshelve_instance, as
 * nova/compute/manager.py (Zed, unchanged through 2026.1) runs them, for
 * containers:
 *
 * - shelve: the container is stopped and committed into the Glance image
 *   the API created (the snapshot pipeline of `server image create`), task
 *   shelving → shelving_image_pending_upload → shelving_image_uploading →
 *   SHELVED; with `shelved_offload_time` 0 (Nova's default) the offload
 *   follows at once, in the same action.
 * - offload: the container is removed and the host freed (Placement
 *   allocations deleted, the node's usage updated) before SHELVED_OFFLOADED
 *   is saved, then host and node are cleared: the instance is on no host.
 * - unshelve (of an offloaded instance; a SHELVED one is started by
 *   start_instance, actions.ts): on the host the scheduler picked, the
 *   instance is claimed (host, node) and a container spawned from the
 *   shelved image under the same uuid; then the shelved image is deleted
 *   and the shelve keys leave system_metadata. A spawn that fails drops the
 *   scheduler's allocations and leaves the instance SHELVED_OFFLOADED.
 *
 * Each runs under Nova's decorators and the instance lock
 * (InstanceStore.decorated). Periodically, with `shelved_offload_time` > 0,
 * instances shelved longer than that are offloaded (_poll_shelved_instances).
 */
import { errorMessage } from '../common/errors.js';
import { NotFoundError } from '../clients/errors.js';
import { listObjects, type NovaObject } from '../objects/base.js';
import { adminContext, type RequestContext } from '../rpc/context.js';
import type { RpcArgs, RpcHandler } from '../rpc/dispatcher.js';
import type { ComputeDriver } from '../virt/driver.js';
import type { UpdateTaskState } from '../virt/types.js';
import { imageMetaOf, loadedSystemMetadata, nilHostAndNode, shutdownTimeout } from './instance.js';
import {
  afterSpawnFields,
  currentPowerState,
  deletedMeanwhile,
  driverContext,
  type InstanceStore,
  isNovaException,
} from './instance-store.js';
import type { PlacementReporter, SchedulerNotifier, SnapshotImageApi } from './collaborators.js';
import { callContext } from './snapshot.js';
import { networkInfoOf } from './network-info.js';
import { PowerStateValue, TaskState, VmState } from './states.js';

/** The system_metadata keys a shelve adds and an unshelve removes (remove_shelved_keys_from_system_metadata). */
export const SHELVED_KEYS = ['shelved_at', 'shelved_image_id', 'shelved_host'] as const;

/** timeutils.utcnow().isoformat() as Nova stores shelved_at (naive UTC, microseconds), which parse_strtime reads. */
function pythonUtcNow(d = new Date()): string {
  return `${d.toISOString().slice(0, 23)}000`;
}

/** shelved_at as a time; NaN when it is not Nova's format. */
function parseShelvedAt(v: unknown): number {
  return typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?$/.test(v) ? Date.parse(`${v}Z`) : NaN;
}

/**
 * The shelve bookkeeping an unshelve leaves behind, as start_instance and
 * _unshelve_instance do it: the shelved image deleted from Glance
 * (_delete_snapshot_of_shelved_instance: a failure only logged) and the
 * shelve keys removed from the instance's system_metadata (set, not saved:
 * the caller's next save carries it). Nothing to do for an instance that
 * was never shelved; `snapshotId` '' deletes no image.
 */
export async function cleanUpShelved(
  store: InstanceStore,
  images: SnapshotImageApi | undefined,
  ctx: RequestContext,
  instance: NovaObject,
  snapshotId: string,
): Promise<void> {
  const uuid = instance.str('uuid') ?? '';
  if (snapshotId) {
    try {
      if (!images) throw new Error('no image API');
      await images.deleteImage(callContext(ctx), snapshotId);
    } catch (err) {
      const msg =
        err instanceof NotFoundError
          ? `Failed to delete snapshot from shelved instance (Image ${snapshotId} could not be found.).`
          : `Something wrong happened when trying to delete snapshot ${snapshotId} from shelved instance: ${errorMessage(err)}`;
      store.log('warn', msg, ctx, uuid);
    }
  }
  const sysmeta = await store.systemMetadata(ctx, instance);
  if (!SHELVED_KEYS.some((k) => k in sysmeta)) return;
  for (const k of SHELVED_KEYS) delete sysmeta[k];
  store.apply(instance, { system_metadata: sysmeta });
}

export interface ShelveDeps {
  store: InstanceStore;
  driver: ComputeDriver;
  placement: Pick<PlacementReporter, 'deleteAllocations' | 'getAllocations'>;
  scheduler: Pick<SchedulerNotifier, 'updateInstanceInfo' | 'deleteInstanceInfo'>;
  /** Glance: the shelved image is deleted after an unshelve. */
  images?: SnapshotImageApi | undefined;
  host: string;
  nodename: () => string;
  /** [DEFAULT] shelved_offload_time (s): 0 offloads with the shelve, < 0 never, > 0 once shelved that long. */
  shelvedOffloadTimeS: number;
  /** _update_resource_tracker after an offload: the node's usage changed. Must not throw. */
  usageChanged?: ((ctx: RequestContext, instance: NovaObject) => void) | undefined;
  /** rt.instance_claim of an unshelve: the instance counted on this node. Must not throw. */
  instanceClaim?: ((ctx: RequestContext, instance: NovaObject) => void) | undefined;
  /** The claim's abort when the unshelve's spawn failed. Must not throw. */
  abortInstanceClaim?: ((ctx: RequestContext, instance: NovaObject) => void) | undefined;
}

/** What the shelve's snapshot moves the task through, for the driver's image_* states (update_task_state). */
const SHELVING_STATE_MAP: Readonly<Record<string, string>> = {
  image_pending_upload: TaskState.SHELVING_IMAGE_PENDING_UPLOAD,
  image_uploading: TaskState.SHELVING_IMAGE_UPLOADING,
  [TaskState.SHELVING]: TaskState.SHELVING,
};

function shelvingState(state: string): string {
  const mapped = SHELVING_STATE_MAP[state];
  // nova: a KeyError; a driver reporting a state the shelve does not know is a bug
  if (mapped === undefined) throw new Error(`no shelving task state for ${state}`);
  return mapped;
}

export class ShelveActions {
  constructor(private readonly d: ShelveDeps) {}

  methods(): Record<string, RpcHandler> {
    return {
      shelve_instance: (ctx, a) => this.shelveInstance(ctx, a),
      shelve_offload_instance: (ctx, a) => this.shelveOffloadInstance(ctx, a),
      unshelve_instance: (ctx, a) => this.unshelveInstance(ctx, a),
    };
  }

  private get store(): InstanceStore {
    return this.d.store;
  }

  private async powerState(instance: NovaObject): Promise<number> {
    return await currentPowerState(this.d.driver, this.store.spec(instance));
  }

  // ------------------------------------------------------------------ shelve

  /** shelve_instance: the API set task shelving and created the Glance image `image_id`. */
  async shelveInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    const imageId = String(args.image_id);
    await this.store.decorated(ctx, instance, 'shelve_instance', {}, () =>
      this.shelve(ctx, instance, imageId, args.clean_shutdown !== false),
    );
  }

  /** _shelve_instance */
  private async shelve(ctx: RequestContext, instance: NovaObject, imageId: string, cleanShutdown: boolean) {
    const uuid = instance.str('uuid') ?? '';
    this.store.log('info', 'Shelving', ctx, uuid);
    const offload = this.d.shelvedOffloadTimeS === 0;
    const update: UpdateTaskState = async (taskState, expected: string = TaskState.SHELVING) => {
      await this.store.save(ctx, instance, { task_state: shelvingState(taskState) }, shelvingState(expected));
    };
    // no clean shutdown of a paused guest: some hypervisors fail it when the guest does not run
    const clean = cleanShutdown && instance.num('power_state') !== PowerStateValue.PAUSED;
    const spec = this.store.spec(instance);
    await this.d.driver.powerOff(spec, shutdownTimeout(instance, clean));
    await this.d.driver.snapshot(driverContext(ctx), spec, imageId, update);

    const sysmeta = await this.store.systemMetadata(ctx, instance);
    sysmeta.shelved_at = pythonUtcNow();
    sysmeta.shelved_image_id = imageId;
    sysmeta.shelved_host = this.d.host;
    await this.store.save(
      ctx,
      instance,
      {
        system_metadata: sysmeta,
        vm_state: VmState.SHELVED,
        task_state: offload ? TaskState.SHELVING_OFFLOADING : null,
        power_state: await this.powerState(instance),
      },
      [TaskState.SHELVING, TaskState.SHELVING_IMAGE_UPLOADING],
    );
    if (offload) await this.offload(ctx, instance, false);
  }

  // ------------------------------------------------------------------ offload

  /** shelve_offload_instance: task shelving_offloading (the API's `shelve --offload`, or the periodic poll). */
  async shelveOffloadInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    await this.decoratedOffload(ctx, instance, args.clean_shutdown !== false);
  }

  private async decoratedOffload(ctx: RequestContext, instance: NovaObject, cleanShutdown: boolean): Promise<void> {
    await this.store.decorated(ctx, instance, 'shelve_offload_instance', {}, () =>
      this.offload(ctx, instance, cleanShutdown),
    );
  }

  /** _shelve_offload_instance */
  private async offload(ctx: RequestContext, instance: NovaObject, cleanShutdown: boolean): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    this.store.log('info', 'Shelve offloading', ctx, uuid);
    const spec = this.store.spec(instance);
    await this.d.driver.powerOff(spec, shutdownTimeout(instance, cleanShutdown)).catch((err: unknown) => {
      // a guest already gone needs no shutdown (libvirt's power_off succeeds then too)
      if (!isNovaException(err, 'InstanceNotFound')) throw err;
    });
    const powerState = await this.powerState(instance);
    await this.d.driver.destroy(driverContext(ctx), spec, networkInfoOf(instance));
    // before SHELVED_OFFLOADED is saved: a client polling for it may schedule onto the freed host at once
    await this.d.placement.deleteAllocations(ctx, uuid);
    await this.store.save(
      ctx,
      instance,
      { power_state: powerState, vm_state: VmState.SHELVED_OFFLOADED, task_state: null },
      [TaskState.SHELVING, TaskState.SHELVING_OFFLOADING],
    );
    this.d.usageChanged?.(ctx, instance);
    // no RPC reaches this instance through a host from now on
    await this.store.save(ctx, instance, nilHostAndNode());
    this.store.tellScheduler(ctx, uuid, () => this.d.scheduler.deleteInstanceInfo(ctx, this.d.host, uuid));
    this.store.log('info', 'Shelve offloaded: container removed, host freed', ctx, uuid);
  }

  /**
   * _poll_shelved_instances: this host's SHELVED instances with no task,
   * shelved longer than shelved_offload_time ago, offloaded one by one
   * (task shelving_offloading claimed first, so an unshelve meanwhile wins).
   * Returns the uuids offloaded. Never throws.
   */
  async pollShelvedInstances(now = Date.now()): Promise<string[]> {
    if (this.d.shelvedOffloadTimeS <= 0) return [];
    const ctx = adminContext();
    const done: string[] = [];
    let instances: NovaObject[];
    try {
      const list = await this.store.conductor.classAction(
        ctx,
        'InstanceList',
        'get_by_filters',
        [{ vm_state: VmState.SHELVED, task_state: null, host: this.d.host }],
        { expected_attrs: ['system_metadata'], use_slave: true },
      );
      instances = listObjects(list);
    } catch (err) {
      this.store.log('warn', `could not list the shelved instances: ${errorMessage(err)}`, ctx);
      return done;
    }
    for (const instance of instances) {
      const uuid = instance.str('uuid') ?? '';
      const shelvedAt = parseShelvedAt(loadedSystemMetadata(instance)?.shelved_at);
      if (!(now - shelvedAt > this.d.shelvedOffloadTimeS * 1000)) continue;
      try {
        await this.store.save(ctx, instance, { task_state: TaskState.SHELVING_OFFLOADING }, [null]);
        await this.decoratedOffload(ctx, instance, false);
        done.push(uuid);
      } catch (err) {
        this.store.log('error', `Periodic task failed to offload instance: ${errorMessage(err)}`, ctx, uuid);
      }
    }
    return done;
  }

  // ------------------------------------------------------------------ unshelve

  /**
   * unshelve_instance, on the host the scheduler picked (the conductor
   * holds allocations here for it): `image` is the shelved image's Glance
   * record; task unshelving.
   */
  async unshelveInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    const image = args.image && typeof args.image === 'object' ? (args.image as Record<string, unknown>) : undefined;
    const node = typeof args.node === 'string' ? args.node : this.d.nodename();
    await this.store.decorated(ctx, instance, 'unshelve_instance', {}, () => this.unshelve(ctx, instance, image, node));
  }

  /** _unshelve_instance */
  private async unshelve(
    ctx: RequestContext,
    instance: NovaObject,
    image: Record<string, unknown> | undefined,
    node: string,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    this.store.log('info', 'Unshelving', ctx, uuid);
    await this.store.save(ctx, instance, { task_state: TaskState.SPAWNING });
    const allocations = await this.d.placement.getAllocations(ctx, uuid);
    // without an image (a volume-backed instance in Nova) the image it was booted from
    const imageMeta = imageMetaOf(image, instance.str('image_ref'));
    let claimed = false;
    try {
      // rt.instance_claim: the instance is this host's from here on
      await this.store.save(ctx, instance, { host: this.d.host, node, launched_on: this.d.host });
      claimed = true;
      this.d.instanceClaim?.(ctx, instance);
      await this.d.driver.spawn(
        driverContext(ctx),
        { ...this.store.spec(instance), image_ref: imageMeta.id },
        imageMeta,
        [],
        undefined,
        allocations.allocations,
        networkInfoOf(instance),
      );
    } catch (err) {
      this.store.log('error', `Instance failed to spawn: ${errorMessage(err)}`, ctx, uuid);
      if (claimed) this.d.abortInstanceClaim?.(ctx, instance);
      // the scheduler's allocations here, claimed or not: the instance stays SHELVED_OFFLOADED, on no host
      await this.d.placement
        .deleteAllocations(ctx, uuid)
        .catch((e: unknown) => this.store.log('error', `could not delete allocations: ${errorMessage(e)}`, ctx, uuid));
      // reverts_task_state's save carries these
      this.store.apply(instance, nilHostAndNode());
      throw err;
    }
    await cleanUpShelved(this.store, this.d.images, ctx, instance, image ? imageMeta.id : '');
    try {
      await this.store.save(
        ctx,
        instance,
        await afterSpawnFields(this.d.driver, this.store.spec(instance)),
        TaskState.SPAWNING,
      );
    } catch (err) {
      // deleted meanwhile: a delete that found no host (the API's own) sends no terminate, so nothing else
      // would remove this container until the running-deleted reaper
      if (deletedMeanwhile(err)) {
        await this.d.driver.destroy(driverContext(ctx), this.store.spec(instance), networkInfoOf(instance));
      }
      throw err;
    }
    this.store.tellScheduler(ctx, uuid, () => this.d.scheduler.updateInstanceInfo(ctx, this.d.host, instance));
    this.store.log('info', `Unshelved from image ${imageMeta.id}`, ctx, uuid);
  }
}
