/**
 * An instance's life on this host at its two ends: build_and_run_instance
 * (the state saves, the network allocation and the spawn in parallel, a
 * failed build's cleanup and reschedule) and terminate_instance, as
 * nova/compute/manager.py does them. The resource tracker and the service
 * record stay the manager's: it is told through the hooks in BuildDeps.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../common/log.js';
import { errorMessage, NovaError } from '../common/errors.js';
import { type NovaObject, novaDateTime } from '../objects/base.js';
import { type ComputeTaskCaster, type Conductor, isRemote } from '../objects/conductor.js';
import type { RequestContext } from '../rpc/context.js';
import type { RpcArgs, RpcHandler } from '../rpc/dispatcher.js';
import type { ComputeDriver } from '../virt/driver.js';
import type { NetworkInfo } from '../virt/types.js';
import type { BootTiming, PlacementReporter, SchedulerNotifier } from './collaborators.js';
import { classifyBuildFailure, retryOf } from './build-failure.js';
import { imageMetaOf, nilHostAndNode } from './instance.js';
import { eventWaiter, type InstanceEvents, type VifPlugging } from './instance-events.js';
import { deletedMeanwhile, driverContext, type InstanceStore } from './instance-store.js';
import { NetworkErrors, parseRequestedNetworks, type NetworkAPI, type NetworkRequestList } from './network.js';
import { networkInfoOf } from './network-info.js';
import { PowerStateValue, TaskState, VmState } from './states.js';

// Nova logs the build's lines from nova.compute.manager; operators' filters keep working
const LOGGER = 'nova_docker.compute.manager';

/** What a build and a terminate need from the manager and the services around it. */
export interface BuildDeps {
  store: InstanceStore;
  driver: ComputeDriver;
  conductor: Conductor;
  placement: PlacementReporter;
  scheduler: SchedulerNotifier;
  /** Nova's network API (Neutron); undefined when `[neutron]` is not configured: only `--nic none` builds. */
  network: NetworkAPI | undefined;
  /** The conductor's compute_task API (a reschedule's build_instances); undefined: failed builds end in ERROR. */
  computeTask: ComputeTaskCaster | undefined;
  events: InstanceEvents;
  /** [DEFAULT] vif_plugging_timeout / vif_plugging_is_fatal */
  vifPlugging: VifPlugging;
  host: string;
  nodename: () => string;
  /** [DEFAULT] network_allocate_retries */
  networkAllocateRetries: number;
  logger: Logger;
  /** Told about every finished boot, successful or not (metrics). Must not throw. */
  onBoot?: ((timing: BootTiming) => void) | undefined;
  /** rt.instance_claim / rt.abort_instance_claim / the usage after a deletion (the manager's ResourceTracker). */
  instanceClaim: (ctx: RequestContext, instance: NovaObject) => void;
  abortInstanceClaim: (ctx: RequestContext, instance: NovaObject) => void;
  usageChanged: (ctx: RequestContext, instance: NovaObject) => void;
  /** A build's end, success or not: failed_builds and the self-disable. */
  buildFinished: (ctx: RequestContext, ok: boolean) => Promise<void>;
}

export class BuildActions {
  /** Boot timings of the last boots (bench/boot reads them from the log). */
  readonly bootTimings: BootTiming[] = [];
  private readonly store: InstanceStore;

  constructor(private readonly d: BuildDeps) {
    this.store = d.store;
  }

  methods(): Record<string, RpcHandler> {
    return {
      build_and_run_instance: (ctx, a) => this.buildAndRunInstance(ctx, a),
      terminate_instance: (ctx, a) => this.terminateInstance(ctx, a),
    };
  }

  /**
   * _do_build_and_run_instance. The state saves before spawning run while the
   * driver fetches the image, creates and starts the container (DriverContext
   * readyToStart): the build succeeds only once both are done; a save that fails (instance
   * deleted meanwhile) makes the driver remove the container, so nothing
   * outlives the build. Fewer round trips than nova-compute's six, each of
   * which a 2-core host pays for on every boot: the action event starts
   * alongside the first save, `building` and the claim's host/node are one
   * save (same expected_task_state), `networking` is saved only when ports are
   * allocated, and `block_device_mapping` never (no volumes here: the state
   * would mean nothing). The API shows the same states otherwise.
   */
  async buildAndRunInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const t0 = performance.now();
    const instance = this.store.instanceArg(args);
    const uuid = instance.str('uuid') ?? '';
    await this.store.locks.run(uuid, () => this.lockedBuildAndRunInstance(ctx, args, instance, uuid, t0));
  }

  private async lockedBuildAndRunInstance(
    ctx: RequestContext,
    args: RpcArgs,
    instance: NovaObject,
    uuid: string,
    t0: number,
  ): Promise<void> {
    const timing: BootTiming = {
      instance_uuid: uuid,
      received: 0,
      spawning: 0,
      image_ready: 0,
      guest_created: 0,
      spawned: 0,
      active: 0,
      ok: false,
    };
    const event = 'compute__do_build_and_run_instance';
    this.store.log('info', 'Starting instance...', ctx, uuid);
    // taken before the saves set host and node: the driver labels the container with them
    const spec = {
      ...this.store.spec(instance),
      host: this.d.host,
      node: typeof args.node === 'string' ? args.node : this.d.nodename(),
    };
    const requested = parseRequestedNetworks(args.requested_networks);
    const securityGroups = Array.isArray(args.security_groups)
      ? args.security_groups.filter((g): g is string => typeof g === 'string')
      : [];
    /** Set once the instance is this host's (rt.instance_claim): a failure from then on takes the claim back. */
    let claimed = false;
    /** The driver's image_ready mark: before it, the driver has made nothing of the instance's on this host. */
    let imageReady = false;
    /** Ports are allocated for this build (no network API or `--nic none`: none). */
    const allocating = this.d.network !== undefined && requested?.noAllocate !== true;
    const untilNetworking = (async () => {
      const sysmeta = { ...((instance.get('system_metadata') as Record<string, unknown> | undefined) ?? {}) };
      sysmeta.boot_roles = ctx.roles.join(',');
      await Promise.all([
        this.store.eventStart(ctx, uuid, event),
        this.store.save(
          ctx,
          instance,
          {
            vm_state: VmState.BUILDING,
            task_state: null,
            host: this.d.host,
            node: spec.node,
            launched_on: this.d.host,
            system_metadata: sysmeta,
          },
          [TaskState.SCHEDULING, null],
        ),
      ]);
      claimed = true;
      this.d.instanceClaim(ctx, instance);
      if (allocating) await this.store.save(ctx, instance, { task_state: TaskState.NETWORKING }, [null]);
    })();
    // _allocate_network: the ports are allocated while the driver fetches the image (NetworkInfoAsyncWrapper);
    // with nothing to allocate the driver need not wait for the claim either, and creates the container
    // alongside the saves (the build succeeds only once `spawning` is saved)
    const networkInfo: Promise<NetworkInfo> = allocating
      ? untilNetworking.then(() => this.allocateNetwork(ctx, instance, requested, securityGroups))
      : this.allocateNetwork(ctx, instance, requested, securityGroups);
    const saves = (async () => {
      await untilNetworking;
      // the allocation's system_metadata network_allocated rides on this save (Nova: "the caller
      // shares a reference to instance and waits for this async greenthread"); a failed
      // allocation fails the spawn, which awaits the same promise
      if (
        allocating &&
        (await networkInfo.then(
          () => true,
          () => false,
        ))
      ) {
        const sysmeta = { ...((instance.get('system_metadata') as Record<string, unknown> | undefined) ?? {}) };
        sysmeta.network_allocated = 'True';
        this.store.apply(instance, { system_metadata: sysmeta });
      }
      await this.store.save(
        ctx,
        instance,
        { task_state: TaskState.SPAWNING },
        allocating ? TaskState.NETWORKING : [null],
      );
      timing.spawning = performance.now() - t0;
    })();
    saves.catch(() => undefined); // awaited below; this only keeps an early rejection from being "unhandled"
    networkInfo.catch(() => undefined); // the spawn awaits it and rethrows its reason
    const injected = Array.isArray(args.injected_files) ? (args.injected_files as Array<[string, string]>) : [];
    const spawned = this.d.driver.spawn(
      {
        ...driverContext(ctx),
        readyToStart: saves,
        waitForInstanceEvents: eventWaiter(this.d.events, instance, { ...this.d.vifPlugging, logger: this.d.logger }),
        onProgress: (mark) => {
          if (mark === 'image_ready') imageReady = true;
          timing[mark] = performance.now() - t0;
        },
      },
      spec,
      imageMetaOf(args.image, instance.str('image_ref')),
      injected,
      typeof args.admin_password === 'string' ? args.admin_password : undefined,
      undefined,
      networkInfo,
    );
    try {
      // both settle before anything else is saved, so a late state save never overwrites ERROR
      const [saved, spawn] = await Promise.allSettled([saves, spawned]);
      if (saved.status === 'rejected') throw saved.reason;
      if (spawn.status === 'rejected') throw spawn.reason;
      timing.spawned = performance.now() - t0;
      // "This is only useful during reschedules, remove it now."
      const sysmeta = (instance.get('system_metadata') as Record<string, unknown> | undefined) ?? {};
      const { network_allocated: _allocated, ...rest } = sysmeta;
      await this.store.save(
        ctx,
        instance,
        {
          vm_state: VmState.ACTIVE,
          task_state: null,
          power_state: PowerStateValue.RUNNING,
          launched_at: novaDateTime(),
          ...('network_allocated' in sysmeta ? { system_metadata: rest } : {}),
        },
        TaskState.SPAWNING,
      );
      timing.active = performance.now() - t0;
      timing.ok = true;
      await this.d.buildFinished(ctx, true);
      this.store.tellScheduler(ctx, uuid, () => this.d.scheduler.updateInstanceInfo(ctx, this.d.host, instance));
      this.store.log('info', `Took ${(timing.spawned / 1000).toFixed(2)} seconds to spawn the instance`, ctx, uuid);
      await this.store.eventFinish(ctx, uuid, event);
    } catch (err) {
      // network_info.wait(do_raise=False): the allocation has settled before anything is cleaned up
      await networkInfo.catch(() => undefined);
      await this.buildFailed(ctx, instance, err, { args, requested, claimed, imageReady });
      await this.d.buildFinished(ctx, false);
      await this.store.eventFinish(ctx, uuid, event, err);
    } finally {
      this.bootTimings.push(timing);
      if (this.bootTimings.length > 1000) this.bootTimings.shift();
      this.d.logger.debug('boot timing', { logger: LOGGER, instance_uuid: uuid, boot_timing: timing });
      this.d.onBoot?.(timing);
    }
  }

  /**
   * A failed build (_build_and_run_instance's handlers, then
   * _do_build_and_run_instance's): nothing left on the host, the claim taken
   * back, then by classifyBuildFailure: deleted meanwhile (ports and
   * allocations gone, nothing else); rescheduled when the request carries
   * retry information (reschedule); else ERROR with a fault, ports deleted
   * (or unbound when the user brought them), allocations gone. A guest that
   * could not be removed is never rescheduled (Nova: "Could not clean up
   * failed build, not rescheduling"), unless the spawn failed before its
   * image was ready: then there is no guest (a dead dockerd fails both the
   * image lookup and the cleanup, and is exactly what another host may not
   * have). Returns whether it was rescheduled.
   */
  private async buildFailed(
    ctx: RequestContext,
    instance: NovaObject,
    error: unknown,
    build: { args: RpcArgs; requested: NetworkRequestList | null; claimed: boolean; imageReady: boolean },
  ): Promise<boolean> {
    const uuid = instance.str('uuid') ?? '';
    const deleteAllocations = () =>
      this.d.placement
        .deleteAllocations(ctx, uuid)
        .catch((e: unknown) => this.store.log('error', `could not delete allocations: ${errorMessage(e)}`, ctx, uuid));
    if (!build.claimed && isRemote(error, 'UnexpectedTaskStateError')) {
      // the first save (building): the instance moved on without us; nothing here is ours to undo
      this.store.log('debug', errorMessage(error), ctx, uuid);
      await deleteAllocations();
      return false;
    }
    let cleanupError: unknown;
    await this.d.driver
      .destroy(driverContext(ctx), this.store.spec(instance), networkInfoOf(instance))
      .catch((e: unknown) => {
        // before image_ready the driver made nothing here: a cleanup that cannot run leaves nothing behind
        if (!build.imageReady) {
          this.store.log(
            'info',
            `The spawn failed before its image was ready; cleanup skipped: ${errorMessage(e)}`,
            ctx,
            uuid,
          );
          return;
        }
        cleanupError = e;
        this.store.log('error', `cleanup after a failed build failed: ${errorMessage(e)}`, ctx, uuid);
      });
    if (build.claimed) this.d.abortInstanceClaim(ctx, instance);
    let failure = classifyBuildFailure(uuid, error);
    if (failure.kind === 'reschedule' && cleanupError !== undefined) {
      this.store.log('warn', `Could not clean up failed build, not rescheduling. Error: ${errorMessage(cleanupError)}`);
      failure = {
        kind: 'abort',
        error: new NovaError(
          'BuildAbortException',
          `Build of instance ${uuid} aborted: ${failure.reason}`,
          { instance_uuid: uuid, reason: failure.reason },
          { cause: error, fields: { instance_uuid: uuid } },
        ),
      };
    }
    if (failure.kind === 'deleted') {
      await this.cleanupAllocatedNetworks(ctx, instance, build.requested);
      await deleteAllocations();
      this.store.log('info', 'Instance disappeared during build', ctx, uuid);
      return false;
    }
    if (failure.kind === 'reschedule') {
      if (retryOf(build.args.filter_properties) && this.d.computeTask) {
        try {
          await this.reschedule(ctx, instance, build, failure.reason, error);
          return true;
        } catch (err) {
          if (deletedMeanwhile(err)) {
            await deleteAllocations();
            this.store.log('info', 'Instance disappeared during build', ctx, uuid);
            return false;
          }
          this.store.log('error', `Could not reschedule the build: ${errorMessage(err)}`, ctx, uuid);
        }
      } else {
        this.store.log('debug', 'Retry info not present, will not reschedule', ctx, uuid);
      }
    }
    await this.cleanupAllocatedNetworks(ctx, instance, build.requested);
    await deleteAllocations();
    const err = failure.error;
    this.store.log('error', `Build of instance aborted: ${errorMessage(err)}`, ctx, uuid);
    await this.store.recordFault(ctx, uuid, err);
    try {
      await this.store.save(ctx, instance, { ...nilHostAndNode(), vm_state: VmState.ERROR, task_state: null });
    } catch (e) {
      this.store.log('error', `could not set the instance to ERROR: ${errorMessage(e)}`, ctx, uuid);
    }
    return false;
  }

  /**
   * _do_build_and_run_instance's RescheduledException with retry
   * information: the ports deallocated (Nova's drivers keep none across a
   * reschedule), the instance off this host and back to scheduling, the
   * allocations here removed (the conductor claims on the alternate), then
   * compute_task_api.build_instances with what the build received,
   * retry.exc and retry.exc_reason added, and host_lists = [host_list]: the
   * conductor tries the next alternate, or ends the build in ERROR
   * (MaxRetriesExceeded) when none is left or max_attempts is reached.
   */
  private async reschedule(
    ctx: RequestContext,
    instance: NovaObject,
    build: { args: RpcArgs; requested: NetworkRequestList | null },
    reason: string,
    error: unknown,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    const computeTask = this.d.computeTask;
    if (!computeTask) throw new Error('no conductor compute_task API to reschedule with');
    const args = build.args;
    const filterProperties = { ...(args.filter_properties as Record<string, unknown>) };
    const exc = error instanceof Error && error.stack ? error.stack : `${errorMessage(error)}\n`;
    filterProperties.retry = { ...retryOf(filterProperties), exc: [exc], exc_reason: reason };
    this.store.log('debug', `Build of instance ${uuid} was re-scheduled: ${reason}`, ctx, uuid);
    await this.cleanupAllocatedNetworks(ctx, instance, build.requested);
    await this.store.save(ctx, instance, { ...nilHostAndNode(), task_state: TaskState.SCHEDULING });
    // unclaimed before the cast, so an alternate host can claim the same resources
    await this.d.placement.deleteAllocations(ctx, uuid);
    await computeTask.buildInstances(ctx, {
      instances: [instance.toPrimitive()],
      image: args.image ?? null,
      filter_properties: filterProperties,
      admin_password: args.admin_password ?? null,
      injected_files: args.injected_files ?? null,
      requested_networks: args.requested_networks ?? null,
      security_groups: args.security_groups ?? null,
      block_device_mapping: args.block_device_mapping ?? null,
      request_spec: args.request_spec ?? null,
      host_lists: [args.host_list ?? null],
    });
    this.store.log('info', `Build rescheduled: ${reason}`, ctx, uuid);
  }

  /**
   * _allocate_network_async: nothing for `--nic none`; else the network
   * API's allocate_for_instance bound to this host, tried
   * `network_allocate_retries` more times with a doubling pause (1 s … 30 s).
   */
  private async allocateNetwork(
    ctx: RequestContext,
    instance: NovaObject,
    requested: NetworkRequestList | null,
    securityGroups: string[],
  ): Promise<NetworkInfo> {
    const uuid = instance.str('uuid') ?? '';
    if (requested?.noAllocate) {
      this.store.log('debug', "Not allocating networking since 'none' was specified.", ctx, uuid);
      return [];
    }
    const network = this.d.network;
    if (!network) {
      // a build that names no network on an agent without [neutron] boots without one, as before networking existed
      if (!requested || requested.requests.length === 0) {
        this.store.log(
          'warn',
          'Networking ([neutron]) is not configured on this host: the instance gets no network',
          ctx,
          uuid,
        );
        return [];
      }
      throw NetworkErrors.notConfigured();
    }
    this.store.log('debug', 'Allocating IP information in the background.', ctx, uuid);
    const attempts = (this.d.networkAllocateRetries ?? 0) + 1;
    let retryS = 1;
    for (let attempt = 1; ; attempt++) {
      try {
        return await network.allocateForInstance(ctx, instance, requested, {
          securityGroups,
          bindHostId: this.d.host,
        });
      } catch (err) {
        if (attempt >= attempts) {
          this.store.log(
            'error',
            `Instance failed network setup after ${attempts} attempt(s): ${errorMessage(err)}`,
            ctx,
            uuid,
          );
          throw err;
        }
        this.store.log('warn', `Instance failed network setup (attempt ${attempt} of ${attempts})`, ctx, uuid);
        await sleep(retryS * 1000);
        retryS = Math.min(retryS * 2, 30);
      }
    }
  }

  /**
   * _cleanup_allocated_networks after a failed build: the ports deleted, or
   * unbound when the user brought them (`requested`); a failure is logged,
   * the build's own error is what the user sees.
   */
  private async cleanupAllocatedNetworks(
    ctx: RequestContext,
    instance: NovaObject,
    requested: NetworkRequestList | null,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    if (!this.d.network) return;
    if (requested?.noAllocate) {
      this.store.log(
        'debug',
        'Skipping network deallocation for instance since networking was not requested.',
        ctx,
        uuid,
      );
      return;
    }
    try {
      await this.deallocateNetwork(ctx, instance, requested);
    } catch (err) {
      this.store.log('error', `Failed to deallocate networks: ${errorMessage(err)}`, ctx, uuid);
      return;
    }
    const sysmeta = (instance.get('system_metadata') as Record<string, unknown> | undefined) ?? {};
    this.store.apply(instance, { system_metadata: { ...sysmeta, network_allocated: 'False' } });
  }

  /** _deallocate_network: deallocate_for_instance, timed. */
  private async deallocateNetwork(
    ctx: RequestContext,
    instance: NovaObject,
    requested: NetworkRequestList | null = null,
  ): Promise<void> {
    if (!this.d.network) return;
    const uuid = instance.str('uuid') ?? '';
    this.store.log('debug', 'Deallocating network for instance', ctx, uuid);
    const t0 = performance.now();
    await this.d.network.deallocateForInstance(ctx, instance, requested);
    this.store.log(
      'info',
      `Took ${((performance.now() - t0) / 1000).toFixed(2)} seconds to deallocate network for instance.`,
      ctx,
      uuid,
    );
  }

  async terminateInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    const uuid = instance.str('uuid') ?? '';
    const event = 'compute_terminate_instance';
    await this.store.locks.run(uuid, () => this.lockedTerminateInstance(ctx, instance, uuid, event));
  }

  private async lockedTerminateInstance(
    ctx: RequestContext,
    instance: NovaObject,
    uuid: string,
    event: string,
  ): Promise<void> {
    try {
      await this.store.eventStart(ctx, uuid, event);
      const pending = this.d.events.clearForInstance(uuid);
      if (pending.length > 0) this.store.log('debug', `Events pending at deletion: ${pending.join(',')}`, ctx, uuid);
      await this.d.network?.ensureInfoCache(ctx, instance);
      await this.d.driver.destroy(driverContext(ctx), this.store.spec(instance), networkInfoOf(instance));
      // _shutdown_instance: the ports go after the guest (driver.destroy unplugged them), before the row
      await this.deallocateNetwork(ctx, instance);
      await this.store.save(ctx, instance, {
        vm_state: VmState.DELETED,
        task_state: null,
        power_state: PowerStateValue.NOSTATE,
        terminated_at: novaDateTime(),
      });
      await this.d.placement.deleteAllocations(ctx, uuid);
      await this.d.conductor.objectAction(ctx, instance, 'destroy');
      // _complete_deletion: the node's usage and stats without the instance
      this.d.usageChanged(ctx, instance);
      this.store.tellScheduler(ctx, uuid, () => this.d.scheduler.deleteInstanceInfo(ctx, this.d.host, uuid));
      this.store.log('info', 'Terminated instance', ctx, uuid);
      await this.store.eventFinish(ctx, uuid, event);
    } catch (err) {
      if (isRemote(err, 'InstanceNotFound')) {
        this.store.log('info', 'Instance already gone', ctx, uuid);
        await this.store.eventFinish(ctx, uuid, event);
        return;
      }
      this.store.log('error', `Setting instance vm_state to ERROR: ${errorMessage(err)}`, ctx, uuid);
      await this.store.recordFault(ctx, uuid, err);
      await this.store.save(ctx, instance, { vm_state: VmState.ERROR, task_state: null }).catch(() => undefined);
      await this.store.eventFinish(ctx, uuid, event, err);
    }
  }
}
