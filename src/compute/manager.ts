/**
 * The compute manager: what nova/compute/manager.py does for a host, on top
 * of a ComputeDriver. Service and ComputeNode records live in Nova through
 * the conductor; instance state moves through Nova's state machine with
 * `expected_task_state` on every save (protocol ref §6).
 */
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../common/log.js';
import { errorMessage, NovaError } from '../common/errors.js';
import { listObjects, NovaObject } from '../objects/base.js';
import { type ComputeTaskCaster, type Conductor, isRemote } from '../objects/conductor.js';
import type { NovaRelease } from '../objects/releases.js';
import { adminContext, type RequestContext } from '../rpc/context.js';
import type { Endpoint, RpcArgs, RpcHandler } from '../rpc/dispatcher.js';
import type { ComputeDriver } from '../virt/driver.js';
import { isHypervisorUnavailable } from '../virt/errors.js';
import type { DriverEvent } from '../virt/event.js';
import { PowerState } from '../virt/power-state.js';
import type { AvailableResource } from '../virt/types.js';
import { InstanceActions } from './actions.js';
import { BuildActions } from './build.js';
import type {
  BootTiming,
  ComputeCaster,
  ImageAPI,
  PlacementReporter,
  SchedulerNotifier,
  SnapshotImageApi,
} from './collaborators.js';
import { flavorOf } from './instance.js';
import { ExternalEvents, InstanceEvents, type VifPlugging } from './instance-events.js';
import { InterfaceAttach } from './interface-attach.js';
import type { NetworkAPI } from './network.js';
import { driverContext, InstanceStore, type LogLevel } from './instance-store.js';
import type { InstanceLocks } from './instance-lock.js';
import { diagnosticsMethods } from './diagnostics.js';
import { COMPUTE_ID_FILE, readNodeIdentity, writeNodeIdentity, type NodeIdentity } from './node-identity.js';
import { PowerStateSync } from './power-sync.js';
import { ResourceTracker, type ComputeNodeUsage, type InstanceUsage } from './resource-tracker-math.js';
import { cleanupRunningDeletedInstances, type RunningDeletedAction } from './running-deleted.js';
import { recoverHost, type OrphanPolicy, type RecoveryAction } from './recovery.js';
import { SnapshotActions } from './snapshot.js';
import { MoveActions } from './move.js';
import { ShelveActions } from './shelve.js';

export interface ComputeManagerOptions {
  host: string;
  /** hypervisor_hostname = placement provider name; default: the driver's first node */
  nodename?: string | undefined;
  release: NovaRelease;
  /** [DEFAULT] state_path: where `compute_id` (the stable node identity) lives; undefined = no file (tests). */
  statePath?: string | undefined;
  /** Where compute_id is looked for before state_path: the --config-file directories (as nova). */
  configDirs?: readonly string[] | undefined;
  reportIntervalS: number;
  /** update_available_resource period, s (nova: 60); ≤ 0 disables */
  resourceIntervalS: number;
  /** sync_power_state_interval, s; ≤ 0 disables */
  syncPowerStateIntervalS: number;
  /** scheduler_instance_sync_interval, s (nova: 120); ≤ 0 disables */
  schedulerSyncIntervalS: number;
  myIp: string;
  allocationRatios: { cpu: number; ram: number; disk: number };
  reservedHostMemoryMb: number;
  reservedHostDiskMb: number;
  /** [DEFAULT] reserved_host_cpus (default 0) */
  reservedHostCpus?: number;
  /**
   * [compute] consecutive_build_service_disable_threshold (Nova: 10): nonzero reports failed builds
   * (ComputeNode stats failed_builds, for the scheduler's BuildFailureWeigher); 0 does not.
   */
  buildFailureReporting?: number;
  /** [docker] build_failure_disable_threshold (ours, default 0 = never): disable the service after so many failed builds in a row. */
  buildFailureDisableThreshold?: number;
  /** [DEFAULT] resume_guests_state_on_host_boot (default false) */
  resumeGuestsStateOnHostBoot?: boolean;
  /** [docker] orphan_policy: containers of this host Nova does not know (default remove) */
  orphanPolicy?: OrphanPolicy;
  /** running_deleted_instance_action / _poll_interval (s; ≤ 0 disables) / _timeout (s) */
  runningDeleted?: { action: RunningDeletedAction; pollIntervalS: number; timeoutS: number };
  /** [DEFAULT] shelved_offload_time, s: 0 (nova's default) offloads with the shelve, < 0 never, > 0 after that long */
  shelvedOffloadTimeS?: number;
  /** [DEFAULT] shelved_poll_interval, s (nova: 3600); ≤ 0 disables the periodic offload */
  shelvedPollIntervalS?: number;
  /** Told about every finished boot, successful or not (metrics). Must not throw. */
  onBoot?: ((timing: BootTiming) => void) | undefined;
  /** Start-up: the first and the longest pause between tries of a hypervisor that does not answer (1 s, 5 s). */
  hypervisorRetryMs?: { first: number; max: number };
  /** [DEFAULT] vif_plugging_timeout (s, default 300; 0: no wait) and vif_plugging_is_fatal (default true). */
  vifPlugging?: VifPlugging;
  /** [DEFAULT] network_allocate_retries (default 0). */
  networkAllocateRetries?: number;
}

/**
 * 1, 2, 4, then every 5 s: serving within seconds of dockerd answering matters
 * more than the cost of a failed connect (one GET /version) every few seconds.
 */
const HYPERVISOR_RETRY_MS = { first: 1000, max: 5000 };

/** Calls a compute host answers with a failure instead of silence (compute RPC 6.x). */
export const UNSUPPORTED_CALLS = [
  'get_vnc_console',
  'get_spice_console',
  'get_rdp_console',
  'get_mks_console',
  'get_serial_console',
  'validate_console_port',
  'set_admin_password',
  'host_power_action',
  'host_maintenance_mode',
  'reserve_block_device_name',
  'check_can_live_migrate_destination',
  'check_can_live_migrate_source',
  'pre_live_migration',
  'supports_numa_live_migration',
  'check_instance_shared_storage',
  'remove_volume_connection',
  'volume_snapshot_create',
  'volume_snapshot_delete',
  'cache_images',
  'prep_snapshot_based_resize_at_dest',
  'prep_snapshot_based_resize_at_source',
  'finish_snapshot_based_resize_at_dest',
  'revert_snapshot_based_resize_at_dest',
  'confirm_snapshot_based_resize_at_source',
  'finish_revert_snapshot_based_resize_at_source',
];

/** Casts that come with a task_state set by the API: it must be cleared or the instance is stuck. */
export const UNSUPPORTED_INSTANCE_CASTS = [
  'soft_delete_instance',
  'restore_instance',
  'rescue_instance',
  'unrescue_instance',
  'live_migration',
  'detach_volume',
  'attach_volume',
  'swap_volume',
  'inject_network_info',
  'reset_network',
  'trigger_crash_dump',
  'change_instance_metadata',
];

export class ComputeManager {
  private service: NovaObject | undefined;
  private computeNode: NovaObject | undefined;
  /** The uuid in `$state_path/compute_id` (read at start, written once the node is known). */
  private nodeIdentity: NodeIdentity | undefined;
  private nodename = '';
  private readonly timers: NodeJS.Timeout[] = [];
  private reporting: Promise<void> | undefined;
  private syncing = false;
  private resyncWanted = false;
  /** Lifecycle events wait for recovery, then run one at a time per instance. */
  private recovered: Promise<void> = Promise.resolve();
  private readonly eventChains = new Map<string, Promise<void>>();
  readonly powerSync: PowerStateSync;
  /** What the start-up recovery did (init_host), for logs and tests. */
  lastRecovery: RecoveryAction[] = [];
  readonly store: InstanceStore;
  private readonly builds: BuildActions;
  private readonly actions: InstanceActions;
  private readonly snapshots: SnapshotActions;
  private readonly moves: MoveActions;
  private readonly shelves: ShelveActions;
  /** Nova's InstanceEvents: who waits for which external event (network-vif-plugged before a start). */
  readonly instanceEvents: InstanceEvents;
  private readonly externalEvents: ExternalEvents;
  private readonly interfaces: InterfaceAttach;
  /** Nova's ResourceTracker: the ComputeNode's usage and stats between and at the periodic updates. */
  readonly tracker: ResourceTracker;
  /** ComputeNode writes, one at a time: each sends the tracker's view as it is when its turn comes. */
  private nodeWrites: Promise<void> = Promise.resolve();
  /** Failed builds in a row, for [docker] build_failure_disable_threshold (reset by a success and by the disable). */
  private consecutiveFailedBuilds = 0;
  /** utils.synchronized(instance.uuid): build, terminate and every decorated action, move and snapshot. */
  private get locks(): InstanceLocks {
    return this.store.locks;
  }

  constructor(
    private readonly conductor: Conductor,
    private readonly driver: ComputeDriver,
    private readonly placement: PlacementReporter,
    private readonly scheduler: SchedulerNotifier,
    private readonly opts: ComputeManagerOptions,
    private readonly logger: Logger,
    /**
     * Glance (rebuild's image lookups, snapshot cleanups and backup rotation), compute casts between resize
     * steps, and Neutron (ports of the instances)
     */
    services: {
      images?: ImageAPI;
      compute?: ComputeCaster;
      glance?: SnapshotImageApi;
      network?: NetworkAPI;
      computeTask?: ComputeTaskCaster;
    } = {},
  ) {
    this.store = new InstanceStore(conductor, opts.release, opts.host, logger);
    this.tracker = new ResourceTracker({
      reserved_host_memory_mb: opts.reservedHostMemoryMb,
      reserved_host_disk_mb: opts.reservedHostDiskMb,
      reserved_host_cpus: opts.reservedHostCpus ?? 0,
    });
    this.instanceEvents = new InstanceEvents(logger);
    this.externalEvents = new ExternalEvents({
      store: this.store,
      events: this.instanceEvents,
      driver,
      network: services.network,
      logger,
    });
    this.interfaces = new InterfaceAttach({
      store: this.store,
      driver,
      network: services.network,
      events: this.instanceEvents,
      host: opts.host,
      vifPlugging: this.vifPlugging,
      logger,
    });
    this.builds = new BuildActions({
      store: this.store,
      driver,
      conductor,
      placement,
      scheduler,
      network: services.network,
      computeTask: services.computeTask,
      events: this.instanceEvents,
      vifPlugging: this.vifPlugging,
      host: opts.host,
      nodename: () => this.nodename,
      networkAllocateRetries: opts.networkAllocateRetries ?? 0,
      logger,
      onBoot: opts.onBoot,
      instanceClaim: (ctx, instance) => this.instanceClaim(ctx, instance),
      abortInstanceClaim: (ctx, instance) => this.abortInstanceClaim(ctx, instance),
      usageChanged: (ctx, instance) => this.usageChanged(ctx, instance),
      buildFinished: (ctx, ok) => this.buildFinished(ctx, ok),
    });
    this.actions = new InstanceActions(this.store, driver, services.glance);
    this.powerSync = new PowerStateSync(this.store, driver, opts.host);
    this.snapshots = new SnapshotActions(this.store, driver, services.glance);
    this.moves = new MoveActions({
      store: this.store,
      driver,
      placement,
      scheduler,
      host: opts.host,
      nodename: () => this.nodename,
      myIp: opts.myIp,
      images: services.images,
      compute: services.compute,
    });
    this.shelves = new ShelveActions({
      store: this.store,
      driver,
      placement,
      scheduler,
      images: services.glance,
      host: opts.host,
      nodename: () => this.nodename,
      shelvedOffloadTimeS: opts.shelvedOffloadTimeS ?? 0,
      usageChanged: (ctx, instance) => this.usageChanged(ctx, instance),
      instanceClaim: (ctx, instance) => this.instanceClaim(ctx, instance),
      abortInstanceClaim: (ctx, instance) => this.abortInstanceClaim(ctx, instance),
    });
  }

  private log(level: LogLevel, msg: string, ctx?: RequestContext, uuid?: string): void {
    this.store.log(level, msg, ctx, uuid);
  }

  // ------------------------------------------------------------------ startup

  /**
   * nova/service.py start(): conductor up, init_host (driver, lifecycle
   * events, recovery of what a previous run left), service record, compute
   * node, placement, one power-state sync and the scheduler's instance list,
   * then the periodic tasks. The caller starts consuming RPC after this.
   * Waits for the conductor and the hypervisor as long as it takes (or until
   * `signal` aborts): nothing is reported to Nova before both answer.
   */
  async start(signal?: AbortSignal): Promise<void> {
    const ctx = adminContext();
    await this.waitForConductor(ctx, signal);
    await this.waitForHypervisor(signal);
    const identityDirs = [
      ...(this.opts.configDirs ?? []),
      ...(this.opts.statePath !== undefined ? [this.opts.statePath] : []),
    ];
    this.nodeIdentity = readNodeIdentity(identityDirs);
    this.nodename = this.opts.nodename ?? (await this.driver.getAvailableNodes())[0] ?? osHostname();
    // init_virt_events before _init_instance: events of the recovery window are queued, not lost
    let release = (): void => undefined;
    this.recovered = new Promise((r) => (release = r));
    this.driver.registerEventListener((e) => this.onDriverEvent(e));
    try {
      this.lastRecovery = await recoverHost({
        store: this.store,
        driver: this.driver,
        placement: this.placement,
        scheduler: this.scheduler,
        host: this.opts.host,
        resumeGuestsStateOnHostBoot: this.opts.resumeGuestsStateOnHostBoot ?? false,
        orphanPolicy: this.opts.orphanPolicy ?? 'remove',
      });
    } finally {
      release();
    }
    await this.ensureService(ctx);
    // up from now, not one report_interval later: while a restarted host looks
    // down, the API deletes its instances itself and their containers run on
    await this.reportState();
    await this.updateAvailableResource(ctx);
    // _sync_power_states runs at start (run_immediately=True) unless disabled (a negative interval)
    if (this.opts.syncPowerStateIntervalS > 0) await this.syncPowerStates();
    await this.syncSchedulerInstanceInfo();
    this.timers.push(setInterval(() => void this.reportState(), this.opts.reportIntervalS * 1000));
    if (this.opts.resourceIntervalS > 0) {
      this.timers.push(
        setInterval(() => {
          void this.updateAvailableResource(adminContext()).catch((err: unknown) =>
            this.log('error', `update_available_resource failed: ${errorMessage(err)}`),
          );
        }, this.opts.resourceIntervalS * 1000),
      );
    }
    if (this.opts.schedulerSyncIntervalS > 0) {
      this.timers.push(
        setInterval(() => void this.syncSchedulerInstanceInfo(), this.opts.schedulerSyncIntervalS * 1000),
      );
    }
    if (this.opts.syncPowerStateIntervalS > 0) {
      this.timers.push(setInterval(() => void this.syncPowerStates(), this.opts.syncPowerStateIntervalS * 1000));
    }
    const shelvedPoll = this.opts.shelvedPollIntervalS ?? 3600;
    if ((this.opts.shelvedOffloadTimeS ?? 0) > 0 && shelvedPoll > 0) {
      this.timers.push(setInterval(() => void this.pollShelvedInstances(), shelvedPoll * 1000));
    }
    const rd = this.opts.runningDeleted;
    if (rd && rd.action !== 'noop' && rd.pollIntervalS > 0) {
      // not run at start as Nova's is: the start-up recovery already removed these
      this.timers.push(setInterval(() => void this.cleanupRunningDeletedInstances(), rd.pollIntervalS * 1000));
    }
  }

  /** The running_deleted_instance periodic task; returns the uuids acted on. Never throws. */
  async cleanupRunningDeletedInstances(): Promise<string[]> {
    const rd = this.opts.runningDeleted ?? { action: 'reap', pollIntervalS: 1800, timeoutS: 0 };
    try {
      return await cleanupRunningDeletedInstances({
        store: this.store,
        driver: this.driver,
        locks: this.locks,
        action: rd.action,
        timeoutS: rd.timeoutS,
      });
    } catch (err) {
      this.log('warn', `Unable to check for running deleted instances: ${errorMessage(err)}`);
      return [];
    }
  }

  /** The _poll_shelved_instances periodic task; returns the uuids offloaded. Never throws. */
  async pollShelvedInstances(now?: number): Promise<string[]> {
    return await this.shelves.pollShelvedInstances(now);
  }

  stop(): void {
    for (const t of this.timers.splice(0)) clearInterval(t);
    this.driver.registerEventListener(undefined);
    // cancel_all_events: a spawn waiting for network-vif-plugged fails now instead of at its timeout
    this.instanceEvents.cancelAll();
  }

  /** [DEFAULT] vif_plugging_timeout / vif_plugging_is_fatal */
  private get vifPlugging(): VifPlugging {
    return this.opts.vifPlugging ?? { timeoutS: 300, fatal: true };
  }

  /**
   * handle_events: a lifecycle event is handled after recovery, in order per
   * instance; missed events (the feed reconnected) mean one full sync.
   */
  private onDriverEvent(event: DriverEvent): void {
    if (event.kind === 'missed') {
      void this.recovered.then(() => this.syncPowerStates());
      return;
    }
    const uuid = event.uuid;
    const prev = this.eventChains.get(uuid) ?? this.recovered;
    const next = prev
      .then(() => this.powerSync.handleLifecycleEvent(event))
      .then(
        () => undefined,
        (err: unknown) => this.log('warn', `lifecycle event handling failed: ${errorMessage(err)}`, undefined, uuid),
      );
    this.eventChains.set(uuid, next);
    void next.then(() => {
      if (this.eventChains.get(uuid) === next) this.eventChains.delete(uuid);
    });
  }

  /** Resolves once every lifecycle event received so far has been handled (tests). */
  async eventsSettled(): Promise<void> {
    await this.recovered;
    while (this.eventChains.size > 0) await Promise.all([...this.eventChains.values()]);
  }

  private async waitForConductor(ctx: RequestContext, signal?: AbortSignal): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      try {
        await this.conductor.ping(ctx, 10);
        return;
      } catch (err) {
        signal?.throwIfAborted();
        this.log('warn', `Timed out waiting for nova-conductor (attempt ${attempt}): ${errorMessage(err)}`, ctx);
      }
    }
  }

  /**
   * init_host's driver check, tried again while the hypervisor does not answer
   * (dockerd starting after the agent at boot), with a doubling pause up to a
   * cap. One WARNING when the wait starts and whenever its reason changes, one
   * INFO when it ends; the tries in between only at DEBUG. Any other error
   * (the hypervisor refuses us) is thrown: waiting would not change it.
   */
  private async waitForHypervisor(signal?: AbortSignal): Promise<void> {
    const { first, max } = this.opts.hypervisorRetryMs ?? HYPERVISOR_RETRY_MS;
    const since = Date.now();
    let delay = first;
    let reason: string | undefined;
    for (;;) {
      signal?.throwIfAborted();
      try {
        await this.driver.initHost(this.opts.host);
        if (reason !== undefined) {
          const s = ((Date.now() - since) / 1000).toFixed(1);
          this.log('info', `The hypervisor answers after ${s} s of waiting; starting the compute service`);
        }
        return;
      } catch (err) {
        if (!isHypervisorUnavailable(err)) throw err;
        const why = err.cause === undefined ? err.message : `${err.message}: ${errorMessage(err.cause)}`;
        const retry = `trying again every ${first / 1000}-${max / 1000} s; not reporting the service up until it answers`;
        if (why !== reason) this.log('warn', `Waiting for the hypervisor (${why}); ${retry}`);
        this.log('debug', `The hypervisor does not answer; next try in ${delay} ms`);
        reason = why;
      }
      await sleep(delay, undefined, signal ? { signal } : undefined);
      delay = Math.min(delay * 2, max);
    }
  }

  private async ensureService(ctx: RequestContext): Promise<void> {
    const { host, release } = this.opts;
    let service = await this.conductor.classActionObject(ctx, 'Service', 'get_by_host_and_binary', [
      host,
      'nova-compute',
    ]);
    if (!service) {
      service = NovaObject.create('Service', release.objects.Service ?? '1.22', {
        host,
        binary: 'nova-compute',
        topic: 'compute',
        report_count: 0,
        version: release.serviceVersion,
      });
      await this.conductor.objectAction(ctx, service, 'create');
      this.log('info', `Created the nova-compute service record for host ${host}`, ctx);
    } else if (service.num('version') !== release.serviceVersion) {
      service.set('version', release.serviceVersion);
      await this.conductor.objectAction(ctx, service, 'save');
    }
    service.resetChanges();
    this.service = service;
  }

  /** servicegroup db driver: report_count + 1 every report_interval keeps the host "up". */
  private async reportState(): Promise<void> {
    const service = this.service;
    if (!service || this.reporting) return;
    this.reporting = (async () => {
      try {
        service.set('report_count', (service.num('report_count') ?? 0) + 1);
        await this.conductor.objectAction(adminContext(), service, 'save');
      } catch (err) {
        this.log('error', `report_state failed: ${errorMessage(err)}`);
      } finally {
        this.reporting = undefined;
      }
    })();
    await this.reporting;
  }

  /**
   * _update_resource_tracker (rt.update_usage): an instance of this host
   * changed state (deleted, offloaded); its usage and stats follow at once
   * rather than at the next periodic update. Before the first periodic
   * update there is nothing to adjust: the node is written in full then.
   * In the background; a failure is only logged.
   */
  private usageChanged(ctx: RequestContext, instance: NovaObject): void {
    if (!this.tracker.ready || !this.computeNode) {
      void this.updateAvailableResource(ctx).catch((err: unknown) =>
        this.log('warn', `could not update the node's usage: ${errorMessage(err)}`, ctx),
      );
      return;
    }
    if (this.tracker.updateUsage(instanceUsage(instance))) this.writeNodeUsage(ctx);
  }

  /** rt.instance_claim: the instance's flavor and state counted on this node now (the ComputeNode written behind). */
  private instanceClaim(ctx: RequestContext, instance: NovaObject): void {
    if (this.tracker.instanceClaim(instanceUsage(instance))) this.writeNodeUsage(ctx);
  }

  /** rt.abort_instance_claim: a failed build's (or unshelve's) usage taken back. */
  private abortInstanceClaim(ctx: RequestContext, instance: NovaObject): void {
    if (this.tracker.abortInstanceClaim(instanceUsage(instance))) this.writeNodeUsage(ctx);
  }

  /** ResourceTracker._update: the ComputeNode saved when the tracker's view changed it. Never throws. */
  private writeNodeUsage(ctx: RequestContext): void {
    void this.serializeNodeWrite(async () => {
      const cn = this.computeNode;
      if (!cn) return;
      cn.update(usageFields(this.tracker.view()));
      if (cn.changes.length === 0) return;
      await this.conductor.objectAction(ctx, cn, 'save');
      cn.resetChanges();
    }).catch((err: unknown) => this.log('warn', `could not update the node's usage: ${errorMessage(err)}`, ctx));
  }

  /** Resolves once every ComputeNode write queued so far is done (tests). */
  async nodeWritesSettled(): Promise<void> {
    await this.nodeWrites;
  }

  /** Runs `fn` after every ComputeNode write before it: two saves of one object never overlap. */
  private serializeNodeWrite<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.nodeWrites.then(fn);
    this.nodeWrites = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * A build's end, as _locked_do_build_and_run_instance counts it: a
   * success resets failed_builds, a failure (ERROR, deleted meanwhile, or
   * rescheduled) adds one when `[compute]
   * consecutive_build_service_disable_threshold` is nonzero. The count
   * reaches the ComputeNode with its next write (Nova: "wait for the next
   * update_available_resource() periodic to flush it"), or at once when
   * the build's own claim is still being written. With `[docker]
   * build_failure_disable_threshold` the service disables itself after that
   * many failures in a row, as nova-compute did before Rocky.
   */
  private async buildFinished(ctx: RequestContext, ok: boolean): Promise<void> {
    if (ok) {
      this.tracker.buildSucceeded();
      this.consecutiveFailedBuilds = 0;
      return;
    }
    if ((this.opts.buildFailureReporting ?? 10) !== 0) this.tracker.buildFailed();
    this.consecutiveFailedBuilds++;
    const limit = this.opts.buildFailureDisableThreshold ?? 0;
    if (limit > 0 && this.consecutiveFailedBuilds >= limit) {
      const fails = this.consecutiveFailedBuilds;
      // reset first: once the operator re-enables the service it starts afresh
      this.consecutiveFailedBuilds = 0;
      await this.disableService(ctx, fails);
    } else if (this.consecutiveFailedBuilds > 1) {
      this.log('warn', `${this.consecutiveFailedBuilds} consecutive build failures`, ctx);
    }
  }

  /**
   * The service disabled with nova-compute's (Queens) reason; the operator
   * re-enables it as any compute service (`openstack compute service set
   * --enable`). COMPUTE_STATUS_DISABLED follows on the provider at once.
   */
  private async disableService(ctx: RequestContext, fails: number): Promise<void> {
    const reason = `Auto-disabled due to ${fails} build failures`;
    this.log('error', `Disabling service due to ${fails} consecutive build failures`, ctx);
    try {
      const admin = adminContext();
      const fresh = await this.conductor.classActionObject(admin, 'Service', 'get_by_host_and_binary', [
        this.opts.host,
        'nova-compute',
      ]);
      if (!fresh) throw new Error(`no nova-compute service record for host ${this.opts.host}`);
      fresh.set('disabled', true);
      fresh.set('disabled_reason', reason);
      await this.conductor.objectAction(admin, fresh, 'save');
      // known here without marking it changed: the report_state saves do not resend it
      this.service?.applyUpdates({ disabled: true, disabled_reason: reason, obj_what_changed: this.service.changes });
      await this.updateAvailableResource(admin);
    } catch (err) {
      this.log('error', `could not disable the service: ${errorMessage(err)}`, ctx);
    }
  }

  /**
   * The periodic resource update (update_available_resource): the driver's
   * totals, the tracker's usage and stats from Nova's instances on this
   * node, the ComputeNode row, then Placement.
   */
  async updateAvailableResource(ctx: RequestContext): Promise<void> {
    const [r, instances, uptime] = await Promise.all([
      this.driver.getAvailableResource(this.nodename),
      this.nodeInstances(ctx),
      // nova 2025.2+ API reads the hypervisor uptime from the stats instead of a get_host_uptime call per host
      this.driver.getHostUptime(),
    ]);
    await this.serializeNodeWrite(() => this.writeComputeNode(ctx, r, instances, uptime));
    const cn = this.computeNode;
    const uuid = cn?.str('uuid');
    if (uuid && this.opts.statePath !== undefined && this.nodeIdentity?.uuid !== uuid) {
      writeNodeIdentity(this.opts.statePath, uuid);
      this.nodeIdentity = { uuid, file: join(this.opts.statePath, COMPUTE_ID_FILE) };
    }
    if (uuid)
      await this.placement.syncProvider(ctx, { uuid, name: this.nodename }, r, this.service?.get('disabled') === true);
    const v = this.tracker.view();
    // resource_tracker._report_final_resource_view, word for word: operators grep for it
    this.log(
      'info',
      `Final resource view: name=${this.nodename} phys_ram=${v.memory_mb}MB used_ram=${v.memory_mb_used}MB ` +
        `phys_disk=${v.local_gb}GB used_disk=${v.local_gb_used}GB total_vcpus=${v.vcpus} ` +
        `used_vcpus=${v.vcpus_used}`,
    );
  }

  private async writeComputeNode(
    ctx: RequestContext,
    r: AvailableResource,
    instances: InstanceUsage[],
    uptime: string,
  ): Promise<void> {
    const usage = this.tracker.updateAvailableResource(r, instances, { uptime });
    const fields: Record<string, unknown> = { ...this.computeNodeFields(r), ...usageFields(usage) };
    let cn = this.computeNode ?? (await this.findComputeNode(ctx));
    if (!cn) {
      cn = NovaObject.create('ComputeNode', this.opts.release.objects.ComputeNode ?? '1.19', {
        host: this.opts.host,
        hypervisor_hostname: this.nodename,
        ...(this.nodeIdentity ? { uuid: this.nodeIdentity.uuid } : {}),
        ...(this.service?.get('id') !== undefined ? { service_id: this.service.get('id') } : {}),
        ...fields,
      });
      await this.conductor.objectAction(ctx, cn, 'create');
      this.log(
        'info',
        `Compute node record created for ${this.opts.host}:${this.nodename} with uuid ${cn.str('uuid')}`,
      );
    } else {
      cn.update(fields);
      if (cn.changes.length > 0) await this.conductor.objectAction(ctx, cn, 'save');
    }
    cn.resetChanges();
    this.computeNode = cn;
    this.store.computeNodeId = cn.num('id') ?? null;
  }

  /**
   * The node this host has in Nova: by the uuid of `$state_path/compute_id`
   * when there is one (nova 27+ looks nodes up by uuid), else by host and
   * nodename (a host that predates the file gets it written from the row).
   * A uuid that names another host's node stops the agent, as nova-compute's
   * _check_for_host_rename does.
   */
  private async findComputeNode(ctx: RequestContext): Promise<NovaObject | null> {
    const uuid = this.nodeIdentity?.uuid;
    const lookup = async (method: string, args: unknown[]): Promise<NovaObject | null> => {
      try {
        return await this.conductor.classActionObject(ctx, 'ComputeNode', method, args);
      } catch (err) {
        if (isRemote(err, 'ComputeHostNotFound', 'NotFound')) return null;
        throw err;
      }
    };
    if (uuid) {
      const cn = await lookup('get_by_uuid', [uuid]);
      if (cn && (cn.str('host') !== this.opts.host || cn.str('hypervisor_hostname') !== this.nodename)) {
        throw new NovaError(
          'InvalidConfiguration',
          `${this.nodeIdentity?.file ?? COMPUTE_ID_FILE} names compute node ${uuid} of ` +
            `${cn.str('host')}:${cn.str('hypervisor_hostname')}, but this host is ${this.opts.host}:${this.nodename}: ` +
            'a renamed host keeps its node; move the file away only if this is really a new host',
        );
      }
      if (cn) return cn;
    }
    return await lookup('get_by_host_and_nodename', [this.opts.host, this.nodename]);
  }

  /**
   * The instances the tracker counts: Nova's on this node
   * (InstanceList.get_by_host_and_node, deleted rows excluded), with their
   * flavors.
   */
  private async nodeInstances(ctx: RequestContext): Promise<InstanceUsage[]> {
    const list = await this.conductor.classAction(
      ctx,
      'InstanceList',
      'get_by_host_and_node',
      [this.opts.host, this.nodename],
      { expected_attrs: ['flavor'] },
    );
    return listObjects(list).map(instanceUsage);
  }

  /** update_from_virt_driver: what the driver reports (the usage fields are the tracker's, usageFields). */
  private computeNodeFields(r: AvailableResource): Record<string, unknown> {
    return {
      disk_available_least: r.disk_available_least,
      hypervisor_type: r.hypervisor_type,
      hypervisor_version: r.hypervisor_version,
      cpu_info: r.cpu_info,
      supported_hv_specs: r.supported_instances.map(([arch, hv_type, vm_mode]) => ({
        'nova_object.name': 'HVSpec',
        'nova_object.namespace': 'nova',
        'nova_object.version': this.opts.release.objects.HVSpec ?? '1.2',
        'nova_object.data': { arch, hv_type, vm_mode },
      })),
      cpu_allocation_ratio: this.opts.allocationRatios.cpu,
      ram_allocation_ratio: this.opts.allocationRatios.ram,
      disk_allocation_ratio: this.opts.allocationRatios.disk,
      host_ip: this.opts.myIp,
      metrics: '[]',
      numa_topology: null,
    };
  }

  /**
   * _sync_power_states: our containers' states in one driver call against the
   * instances Nova has on this host, each through _sync_instance_power_state
   * (power-sync.ts). A sync asked for while one runs runs again afterwards.
   * Returns how many instances were changed.
   */
  async syncPowerStates(): Promise<number> {
    if (this.syncing) {
      this.resyncWanted = true;
      return 0;
    }
    this.syncing = true;
    const ctx = adminContext();
    let changed = 0;
    try {
      const list = await this.conductor.classAction(ctx, 'InstanceList', 'get_by_host', [this.opts.host], {
        expected_attrs: [],
        use_slave: true,
      });
      const states = await this.driver.listInstancePowerStates();
      for (const instance of listObjects(list)) {
        const uuid = instance.str('uuid') ?? '';
        try {
          const outcome = await this.powerSync.syncInstance(ctx, instance, states.get(uuid) ?? PowerState.NOSTATE);
          if (outcome === 'saved' || outcome === 'stopped') changed++;
        } catch (err) {
          this.log('warn', `power state sync failed: ${errorMessage(err)}`, ctx, uuid);
        }
      }
    } catch (err) {
      this.log('error', `power state sync failed: ${errorMessage(err)}`, ctx);
    } finally {
      this.syncing = false;
    }
    if (this.resyncWanted) {
      this.resyncWanted = false;
      changed += await this.syncPowerStates();
    }
    return changed;
  }

  /** _sync_scheduler_instance_info: the uuids Nova has on this host, to every scheduler. */
  private async syncSchedulerInstanceInfo(): Promise<void> {
    const ctx = adminContext();
    try {
      const list = await this.conductor.classAction(ctx, 'InstanceList', 'get_by_host', [this.opts.host], {
        expected_attrs: [],
        use_slave: true,
      });
      const uuids = listObjects(list).map((i) => i.str('uuid') ?? '');
      await this.scheduler.syncInstanceInfo(ctx, this.opts.host, uuids);
    } catch (err) {
      this.log('warn', `scheduler instance sync failed: ${errorMessage(err)}`, ctx);
    }
  }

  /** Scheduler notices are advisory (affinity filters): a failure is logged, never fails the operation. */
  // ------------------------------------------------------------------ RPC endpoint

  endpoint(): Endpoint {
    const methods: Record<string, RpcHandler> = {
      get_host_uptime: () => this.driver.getHostUptime(),
      get_console_output: (ctx, a) => this.getConsoleOutput(ctx, a),
      set_host_enabled: (ctx, a) => this.setHostEnabled(ctx, a.enabled === true),
      // compute RPC 6.4 (nova 2025.1): Manila shares through virtiofs
      allow_share: (ctx, a) => this.refuseShare(ctx, 'allow_share', a),
      deny_share: (ctx, a) => this.refuseShare(ctx, 'deny_share', a),
    };
    for (const m of UNSUPPORTED_CALLS) {
      methods[m] = () => {
        throw new NovaError('NotImplementedError', `nova-docker does not support ${m}`, {}, { novaModule: 'builtins' });
      };
    }
    for (const m of UNSUPPORTED_INSTANCE_CASTS) methods[m] = (ctx, a) => this.unsupportedInstanceAction(ctx, m, a);
    Object.assign(methods, this.builds.methods());
    Object.assign(methods, this.actions.methods());
    Object.assign(methods, this.snapshots.methods());
    Object.assign(methods, this.moves.methods());
    Object.assign(methods, this.shelves.methods());
    Object.assign(methods, diagnosticsMethods(this.store, this.driver));
    Object.assign(methods, this.externalEvents.methods());
    Object.assign(methods, this.interfaces.methods());
    return { namespace: null, version: this.opts.release.computeRpcVersion, methods };
  }

  /** build_and_run_instance (tests call it directly; RPC goes through endpoint()). */
  async buildAndRunInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    await this.builds.buildAndRunInstance(ctx, args);
  }

  async terminateInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    await this.builds.terminateInstance(ctx, args);
  }

  /** Boot timings of the last boots (bench/boot reads them from the log). */
  get bootTimings(): readonly BootTiming[] {
    return this.builds.bootTimings;
  }

  private async getConsoleOutput(ctx: RequestContext, args: RpcArgs): Promise<string> {
    const instance = this.store.instanceArg(args);
    const tail = tailLength(args.tail_length);
    if (tail === 0) return '';
    const output = await this.driver.getConsoleOutput(driverContext(ctx), this.store.spec(instance), tail);
    return tail === undefined ? output : novaTail(output, tail);
  }

  /**
   * An action we do not do: clear the task the API set, record why as a
   * fault and on the action event (`openstack server event show`), never
   * leave the instance stuck.
   */
  /**
   * set_host_enabled (the API calls it when an operator disables or enables
   * the compute service): COMPUTE_STATUS_DISABLED on the node's provider at
   * once, so the scheduler's pre-filter stops (or resumes) picking this host
   * without waiting for the periodic update. Answers as nova-compute does
   * with a driver that cannot switch the hypervisor itself.
   */
  async setHostEnabled(ctx: RequestContext, enabled: boolean): Promise<string> {
    this.service?.set('disabled', !enabled);
    try {
      await this.updateAvailableResource(ctx);
    } catch (err) {
      this.log('warn', `Unable to add/remove trait COMPUTE_STATUS_DISABLED: ${errorMessage(err)}`, ctx);
    }
    return enabled ? 'enabled' : 'disabled';
  }

  /**
   * allow_share/deny_share (compute RPC 6.4): this host never reports
   * COMPUTE_STORAGE_VIRTIO_FS, so the API refuses shares before casting; a
   * stray cast still ends cleanly: the share mapping in error, the action
   * event finished with the reason.
   */
  private async refuseShare(ctx: RequestContext, method: string, args: RpcArgs): Promise<void> {
    const err = new NovaError(
      'NotImplementedError',
      'nova-docker does not support shares (virtiofs)',
      {},
      {
        novaModule: 'builtins',
      },
    );
    const instance = this.store.instanceArg(args);
    const uuid = instance.str('uuid') ?? '';
    this.log('warn', `${method}: ${err.message}`, ctx, uuid);
    await this.store.withEvent(ctx, uuid, method, async () => {
      const mapping = NovaObject.fromPrimitive(args.share_mapping, 'ShareMapping');
      mapping.set('status', 'error');
      await this.conductor
        .objectAction(ctx, mapping, 'save')
        .catch((e: unknown) =>
          this.log('error', `could not set the share mapping to error: ${errorMessage(e)}`, ctx, uuid),
        );
      throw err;
    });
  }

  private async unsupportedInstanceAction(ctx: RequestContext, method: string, args: RpcArgs): Promise<void> {
    const err = new NovaError(
      'NotImplementedError',
      `nova-docker does not support ${method}`,
      {},
      { novaModule: 'builtins' },
    );
    let instance: NovaObject;
    try {
      instance = this.store.instanceArg(args);
    } catch {
      throw err;
    }
    const uuid = instance.str('uuid') ?? '';
    this.log('warn', err.message, ctx, uuid);
    await this.store.withEvent(ctx, uuid, method, async () => {
      await this.store.recordFault(ctx, uuid, err);
      await this.store
        .save(ctx, instance, { task_state: null })
        .catch((e: unknown) => this.log('error', `could not reset task_state: ${errorMessage(e)}`, ctx, uuid));
      throw err;
    });
  }
}

/**
 * Nova's _tail_log: the last `n` pieces of the output split at "\n", so
 * `--lines 3` of an output ending in a newline shows two lines and the empty
 * piece after them (Tempest's console tests count exactly that).
 */
export function novaTail(output: string, n: number): string {
  return n <= 0 ? '' : output.split('\n').slice(-n).join('\n');
}

/**
 * get_console_output's tail_length (`--lines`): the API passes an int or a
 * numeric string; None or a negative (the API's -1) means everything; like
 * nova's _tail_log, anything else that is not a number means 0 lines.
 */
export function tailLength(v: unknown): number | undefined {
  if (v === null || v === undefined) return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : 0;
  if (!Number.isFinite(n)) return 0;
  return n < 0 ? undefined : Math.trunc(n);
}

/** What the resource tracker reads of an instance: its uuid, states, os_type, project and flavor. */
export function instanceUsage(instance: NovaObject): InstanceUsage {
  const f = flavorOf(instance);
  return {
    uuid: instance.str('uuid') ?? '',
    vm_state: instance.str('vm_state') ?? '',
    task_state: instance.str('task_state'),
    os_type: instance.str('os_type'),
    project_id: instance.str('project_id'),
    flavor: { memory_mb: f.memory_mb, vcpus: f.vcpus, root_gb: f.root_gb, ephemeral_gb: f.ephemeral_gb, swap: f.swap },
  };
}

/** The ComputeNode fields the tracker keeps (its totals are the driver's, as update_from_virt_driver copies them). */
function usageFields(u: ComputeNodeUsage): Record<string, unknown> {
  return { ...u };
}
