/**
 * DockerDriver: one container per instance, named `nova-<uuid>`, labelled
 * (labels.ts) with its compute host so several agents can share a dockerd.
 * Behaviour and mappings: docs/docker-driver.md; contract: ../driver.ts.
 */
import type { DockerClient } from '../../clients/docker/client.js';
import type { DockerContainerInspect, DockerContainerSummary, DockerEvent } from '../../clients/docker/types.js';
import { ConflictError, NotFoundError, UnavailableError } from '../../clients/errors.js';
import { HttpRequestError } from '../../clients/http.js';
import { NovaError, errorMessage, findCause } from '../../common/errors.js';
import { type Logger, nullLogger } from '../../common/log.js';
import { pollUntil } from '../../common/poll.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONTAINER_DRIVER_CAPABILITIES, type ComputeDriver } from '../driver.js';
import {
  HypervisorRefusedError,
  guestExited,
  hypervisorUnavailable,
  imageNotFound,
  imageServiceUnavailable,
  instanceDeployFailure,
  instanceExists,
  instanceInvalidState,
  instanceNotFound,
  notImplemented,
  resizeError,
  type LifecycleFailure,
} from '../errors.js';
import { expectedPlugEvents } from '../network-model.js';
import type { DriverEventListener } from '../event.js';
import { POWER_STATE_NAMES, PowerState } from '../power-state.js';
import type {
  AvailableResource,
  BlockDeviceInfo,
  DriverCapabilities,
  DriverContext,
  Flavor,
  ImageMeta,
  InjectedFile,
  InstanceInfo,
  InstanceDiagnostics,
  InstanceSpec,
  NetworkInfo,
  RebootType,
  UpdateTaskState,
  Vif,
} from '../types.js';
import {
  ContainerSpecError,
  buildContainerSpec,
  flavorResources,
  type ContainerSpecOptions,
} from './container-spec.js';
import {
  capBytes,
  fixedTime,
  lastLines,
  mergeConsole,
  observedRun,
  reconcile,
  timeFromNanos,
  type ExitHint,
} from './console-log.js';
import type { ImageResolver } from './image-resolver.js';
import { LifecycleJournal } from './lifecycle-journal.js';
import { diagnosticsFromStats } from './diagnostics.js';
import { engineError, guardEngineCall } from './engine-errors.js';
import { ContainerEventWatcher } from './events.js';
import { HostResources } from './host-resources.js';
import { LABELS, containerName, hostLabelFilter, ownedBy } from './labels.js';
import { powerStateOf, powerStateOfSummary } from './power-state.js';
import { SnapshotPipeline, type SnapshotGlance } from './snapshot.js';
import { InstanceNetworks, type NetworkFiles } from './instance-network.js';
import { DEFAULT_PAUSE_BINARY, PauseImage } from './pause-image.js';
import {
  DEFAULT_OVS_BRIDGE,
  type HostNet,
  ProcessHostNet,
  VifPlugger,
  type VifObserver,
  checkPluggable,
} from './vif.js';

export interface DockerDriverOptions {
  /** The compute host (nova service `host`); the driver sees only containers labelled with it. */
  host: string;
  /** hypervisor_hostname / node name. Default: `host`. */
  nodename?: string;
  /** Run containers privileged. Default false. */
  privileged?: boolean;
  /** Capabilities added to Docker's default set. Default none. */
  capAdd?: string[];
  /** Honour the flavor extra spec `docker:binds`. Default false. */
  allowHostMounts?: boolean;
  /** Cap CPU time at the flavor's vcpus (NanoCpus) on top of CpuShares. Default false. */
  cpuHardLimit?: boolean;
  /** Max processes per container; 0 = unlimited. Default 1024. */
  pidsLimit?: number;
  /** Cap of getConsoleOutput, bytes (the newest part is kept). Default 100 KiB, as Nova's libvirt. */
  consoleLogMaxBytes?: number;
  /** Grace period of a power off / soft reboot before SIGKILL, seconds. Default 10. */
  stopTimeoutS?: number;
  /** json-file log rotation size, bytes. Default 10 MiB. */
  logMaxBytes?: number;
  /** docker-init as PID 1. Default true. */
  init?: boolean;
  /**
   * After start, how long to watch for a command that exits at once with a
   * non-zero status (spawn then fails); an inspect after the window decides, so
   * exits slower than the wait's round trip are caught too. 0 disables. Default 100 ms.
   */
  spawnCheckMs?: number;
  /** Extra labels on every container (e.g. a test-run id). */
  extraLabels?: Record<string, string>;
  /** First reconnect delay of the event stream, ms (doubles up to 30 s). Default 500. */
  eventsBackoffMs?: number;
  /** Where snapshots are uploaded. Without it, snapshot throws NotImplementedError. */
  glance?: SnapshotGlance;
  /**
   * Where each instance's console lifecycle lines are kept
   * (`<dir>/<uuid>/console-lifecycle.jsonl`; the agent passes instances_path).
   * Without it they are kept in memory and lost with the agent.
   */
  consoleLifecycleDir?: string;
  /**
   * Runs the host's network tools (ip, ethtool, nsenter, ovs-vsctl) for VIF
   * plugging. Default: processes on this machine (the agent needs
   * CAP_NET_ADMIN and CAP_SYS_ADMIN, i.e. root).
   */
  hostNet?: HostNet;
  /** The integration bridge when a VIF's binding names none ([neutron] ovs_bridge). Default br-int. */
  ovsBridge?: string;
  /** The static binary the netns holder image is built from. Default /bin/busybox (busybox-static). */
  pauseBinary?: string;
  /** Where each instance's resolv.conf/hosts are kept. Default: consoleLifecycleDir, else a temporary directory. */
  networkStateDir?: string;
  /** Plug timings (the metrics). */
  vifObserver?: VifObserver;
}

const DEFAULTS = {
  privileged: false,
  allowHostMounts: false,
  cpuHardLimit: false,
  pidsLimit: 1024,
  consoleLogMaxBytes: 100 * 1024,
  stopTimeoutS: 10,
  logMaxBytes: 10 * 1024 * 1024,
  init: true,
  spawnCheckMs: 100,
  eventsBackoffMs: 500,
};

const FAILED_SPAWN_LOG_LINES = 20;

type Resolved = Required<
  Omit<
    DockerDriverOptions,
    | 'nodename'
    | 'glance'
    | 'consoleLifecycleDir'
    | 'hostNet'
    | 'ovsBridge'
    | 'pauseBinary'
    | 'networkStateDir'
    | 'vifObserver'
  >
> & {
  nodename: string;
};

/**
 * What spawn raises when the image could not be made present: the image
 * pipeline's NovaErrors as they are; Glance not answering (or failing with a
 * 5xx) as Nova's GlanceConnectionFailed, so the instance fault says the image
 * service is down rather than blaming the image.
 */
export function imageFailure(uuid: string, imageId: string, err: unknown): NovaError {
  if (err instanceof NovaError) return err;
  if (findCause(err, NotFoundError)) return imageNotFound(imageId, err);
  const down = findCause(err, UnavailableError);
  if (down?.service === 'glance') return imageServiceUnavailable(imageId, err);
  return instanceDeployFailure(uuid, `image ${imageId} unavailable: ${errorMessage(err)}`, err);
}

export class DockerDriver implements ComputeDriver {
  readonly capabilities: DriverCapabilities = Object.freeze({
    ...CONTAINER_DRIVER_CAPABILITIES,
    supports_attach_interface: true,
  });
  private readonly opts: Resolved;
  private readonly specOptions: ContainerSpecOptions;
  /** Uuids the driver suspended (Docker pauses them); lost on restart, then they read PAUSED. */
  private readonly suspended = new Set<string>();
  /** Uuids the driver stopped since it last started them. */
  private readonly stopped = new Set<string>();
  private watcher: ContainerEventWatcher | undefined;
  private readonly log: Logger;
  /** What getAvailableResource reports (host-resources.ts). */
  private readonly resources: HostResources;
  /** The snapshot pipeline (snapshot.ts); undefined without options.glance. */
  private readonly snapshots: SnapshotPipeline | undefined;
  /** The lifecycle lines of the consoles (console-log.ts). */
  private readonly journal: LifecycleJournal;
  /** Container ids with an oom event since their last start (the die after it says OOM killed). */
  private readonly oomSeen = new Set<string>();
  /** The instances' netns holders and VIFs (instance-network.ts). */
  private readonly networks: InstanceNetworks;

  constructor(
    private readonly docker: DockerClient,
    private readonly images: ImageResolver,
    options: DockerDriverOptions,
    log: Logger = nullLogger(),
  ) {
    this.log = log.child({ logger: 'nova_docker.virt.docker.driver' });
    if (!options.host) throw new TypeError('DockerDriver needs options.host');
    this.opts = {
      ...DEFAULTS,
      capAdd: [],
      extraLabels: {},
      ...stripUndefined(options),
      host: options.host,
      nodename: options.nodename ?? options.host,
    };
    this.journal = new LifecycleJournal(options.consoleLifecycleDir, this.log);
    this.resources = new HostResources(
      docker,
      () => this.ours(),
      { host: this.opts.host, nodename: this.opts.nodename },
      this.log,
    );
    this.snapshots = options.glance
      ? new SnapshotPipeline(
          docker,
          options.glance,
          this.journal,
          { host: this.opts.host, extraLabels: this.opts.extraLabels },
          this.log,
        )
      : undefined;
    const plugger = new VifPlugger(
      options.hostNet ?? new ProcessHostNet(),
      { defaultBridge: options.ovsBridge ?? DEFAULT_OVS_BRIDGE, observer: options.vifObserver },
      this.log,
    );
    this.networks = new InstanceNetworks(
      docker,
      plugger,
      new PauseImage(docker, options.pauseBinary ?? DEFAULT_PAUSE_BINARY),
      {
        host: this.opts.host,
        extraLabels: this.opts.extraLabels,
        logMaxBytes: this.opts.logMaxBytes,
        stateDir:
          options.networkStateDir ??
          options.consoleLifecycleDir ??
          join(tmpdir(), `nova-docker-net-${this.opts.host.replace(/[^\w.-]/g, '_')}`),
      },
      this.log,
    );
    this.specOptions = {
      host: this.opts.host,
      privileged: this.opts.privileged,
      capAdd: this.opts.capAdd,
      allowHostMounts: this.opts.allowHostMounts,
      cpuHardLimit: this.opts.cpuHardLimit,
      pidsLimit: this.opts.pidsLimit,
      logMaxBytes: this.opts.logMaxBytes,
      init: this.opts.init,
      extraLabels: this.opts.extraLabels,
    };
  }

  async initHost(host: string): Promise<void> {
    if (host !== this.opts.host) {
      this.log.warn(`initHost(${host}) but the driver is configured for host ${this.opts.host}`);
    }
    try {
      const v = await this.docker.version();
      const prefix = await this.docker.apiPrefix();
      this.log.info(`docker engine ${v.Version} (API ${v.ApiVersion}, using ${prefix})`);
    } catch (err) {
      if (findCause(err, UnavailableError) && !refusedForGood(err)) throw hypervisorUnavailable(this.opts.host, err);
      throw new HypervisorRefusedError(`the Docker Engine cannot be used: ${errorMessage(err)}`, { cause: err });
    }
    // built now so the first boot with a port does not wait for it; instances without network never need it
    try {
      this.log.info(`netns holder image ${await this.networks.ensurePauseImage()}`);
    } catch (err) {
      this.log.error(`the netns holder image could not be built; instances with ports will fail: ${errorMessage(err)}`);
    }
  }

  registerEventListener(listener: DriverEventListener | undefined): void {
    const old = this.watcher;
    this.watcher = undefined;
    if (old) void old.stop();
    if (!listener) return;
    this.watcher = new ContainerEventWatcher(
      this.docker,
      listener,
      {
        host: this.opts.host,
        initialBackoffMs: this.opts.eventsBackoffMs,
        isSuspended: (uuid) => this.suspended.has(uuid),
        onContainerEvent: (e, uuid) => this.recordEvent(e, uuid),
        // a holder started behind our back has a new, empty namespace
        onHolderEvent: (e, uuid) => {
          if (e.Action === 'start') void this.networks.holderStarted(uuid);
        },
      },
      this.log,
    );
    this.watcher.start();
  }

  async listInstanceUuids(): Promise<string[]> {
    const list = await this.ours();
    return list.map((c) => c.Labels?.[LABELS.instanceUuid]).filter((u): u is string => !!u);
  }

  async listInstancePowerStates(): Promise<Map<string, PowerState>> {
    const out = new Map<string, PowerState>();
    for (const c of await this.ours()) {
      const uuid = c.Labels?.[LABELS.instanceUuid];
      if (!uuid) continue;
      out.set(
        uuid,
        powerStateOfSummary(c.State, c.Status, {
          suspended: this.suspended.has(uuid),
          stoppedByDriver: this.stopped.has(uuid),
        }),
      );
    }
    return out;
  }

  async getInfo(instance: InstanceSpec): Promise<InstanceInfo> {
    const c = await this.find(instance.uuid);
    if (!c) throw instanceNotFound(instance.uuid);
    return { power_state: this.stateOf(c) };
  }

  async spawn(
    ctx: DriverContext,
    instance: InstanceSpec,
    imageMeta: ImageMeta,
    injectedFiles: InjectedFile[],
    adminPassword: string | undefined,
    _allocations: Record<string, unknown> | undefined,
    networkInfoArg: NetworkInfo | Promise<NetworkInfo>,
    _blockDeviceInfo?: BlockDeviceInfo,
  ): Promise<void> {
    try {
      await this.spawnGuest(ctx, instance, imageMeta, injectedFiles, adminPassword, networkInfoArg);
    } catch (err) {
      // the instance goes to ERROR or to another host: its console lines go too, unless its guest is already here
      if (!(err instanceof NovaError && err.novaClass === 'InstanceExists')) await this.journal.remove(instance.uuid);
      throw err;
    }
  }

  private async spawnGuest(
    ctx: DriverContext,
    instance: InstanceSpec,
    imageMeta: ImageMeta,
    injectedFiles: InjectedFile[],
    adminPassword: string | undefined,
    networkInfoArg: NetworkInfo | Promise<NetworkInfo>,
  ): Promise<void> {
    const uuid = instance.uuid;
    // the request's log context, so these lines read like the manager's
    const meta = {
      instance_uuid: uuid,
      ...(ctx.requestId ? { request_id: ctx.requestId } : {}),
      ...(ctx.globalRequestId ? { global_request_id: ctx.globalRequestId } : {}),
      ...(ctx.userIdentity ? { user_identity: ctx.userIdentity } : {}),
    };
    if (injectedFiles.length) this.log.warn(`ignoring ${injectedFiles.length} injected file(s)`, meta);
    if (adminPassword) this.log.debug('the admin password was ignored (containers have none to set)', meta);
    const f = instance.flavor;
    void this.journal.note(
      uuid,
      `spawning: image ${imageMeta.name ?? imageMeta.id} (${imageMeta.id}), flavor ${f.name}: ` +
        `${f.vcpus} vCPU, ${f.memory_mb} MB RAM, ${f.root_gb} GB disk`,
    );

    // the image is fetched while the ports are allocated (Nova's NetworkInfoAsyncWrapper)
    const resolverCtx = {
      ...(ctx.authToken ? { authToken: ctx.authToken } : {}),
      ...(ctx.requestId ? { requestId: ctx.requestId } : {}),
    };
    const image = this.images.ensureImage(resolverCtx, imageMeta).then(
      (r) => {
        ctx.onProgress?.('image_ready');
        return r.dockerRef;
      },
      (err: unknown) => {
        throw imageFailure(uuid, imageMeta.id, err);
      },
    );
    image.catch(() => undefined); // awaited below unless the network fails first
    const networkInfo = await networkInfoArg;
    checkPluggable(uuid, networkInfo);
    const dockerRef = await image;

    // the network exists (and network-vif-plugged arrived) before the guest's command starts
    let net: (NetworkFiles & { holder: string }) | undefined;
    if (networkInfo.length > 0) {
      try {
        net = await this.networks.create(instance, networkInfo, async (plug) => {
          const events = expectedPlugEvents(networkInfo);
          if (ctx.waitForInstanceEvents && events.length > 0) await ctx.waitForInstanceEvents(events, plug);
          else await plug();
        });
        void this.journal.note(
          uuid,
          `network: ${networkInfo.length} port(s) plugged (${networkInfo.map((v) => v.id).join(', ')})`,
        );
      } catch (err) {
        await this.removeNetwork(uuid, networkInfo, meta);
        throw err;
      }
    }

    let spec;
    try {
      spec = buildContainerSpec({
        instance,
        image: imageMeta,
        dockerRef,
        ...(net ? { network: { holderId: net.holder, resolvConf: net.resolvConf, hosts: net.hosts } } : {}),
        options: this.specOptions,
      });
    } catch (err) {
      await this.removeNetwork(uuid, networkInfo, meta);
      if (err instanceof ContainerSpecError) throw instanceDeployFailure(uuid, err.message, err);
      throw err;
    }

    let id: string;
    try {
      const created = await this.docker.createContainer(spec.name, spec.body);
      id = created.Id;
      void this.journal.note(uuid, `container ${spec.name} created from ${dockerRef} (id ${id.slice(0, 12)})`, id);
      ctx.onProgress?.('guest_created');
      for (const w of created.Warnings ?? []) this.log.warn(`docker: ${w}`, meta);
    } catch (err) {
      // an existing guest keeps its network (its holder's name clashed first, so none was made here)
      if (err instanceof ConflictError) throw instanceExists(spec.name, uuid);
      await this.removeNetwork(uuid, networkInfo, meta);
      if (err instanceof NotFoundError) throw imageNotFound(imageMeta.id, err);
      throw instanceDeployFailure(uuid, `creating the container failed: ${errorMessage(err)}`, err);
    }

    try {
      this.stopped.delete(uuid);
      this.suspended.delete(uuid);
      try {
        await this.docker.startContainer(id);
      } catch (err) {
        throw instanceDeployFailure(uuid, `starting the container failed: ${errorMessage(err)}`, err);
      }
      // the early-exit window runs while the manager's state saves finish; a failed save removes the guest below
      const watch = this.earlyExit(uuid, id);
      watch.catch(() => undefined); // awaited below unless the gate fails first
      await ctx.readyToStart;
      const exit = await watch;
      if (exit !== undefined) {
        const tail = await this.lastLines(id, FAILED_SPAWN_LOG_LINES);
        throw guestExited(
          uuid,
          `the container's command exited at once with status ${exit.code}${exit.oom ? ' (out of memory)' : ''}` +
            (tail ? `; last output:\n${tail}` : '; no output'),
        );
      }
      this.log.info(`spawned container ${spec.name} (${id.slice(0, 12)}) from ${dockerRef}`, meta);
    } catch (err) {
      // its events that arrive after the removal must not bring the console lines back (spawn removes them)
      this.journal.forgetContainer(id);
      await this.docker.removeContainer(id, { force: true, v: true }).catch((e: unknown) => {
        this.log.error(`could not remove the container of a failed spawn: ${errorMessage(e)}`, meta);
      });
      await this.removeNetwork(uuid, networkInfo, meta);
      throw err;
    }
  }

  /** A failed spawn's network: holder, devices, files; logged, never thrown (the spawn's own error wins). */
  private async removeNetwork(uuid: string, vifs: NetworkInfo, meta: Record<string, string>): Promise<void> {
    if (vifs.length === 0) return;
    await this.networks.remove(uuid, vifs).catch((e: unknown) => {
      this.log.error(`could not remove the network of a failed spawn: ${errorMessage(e)}`, meta);
    });
  }

  async destroy(
    _ctx: DriverContext,
    instance: InstanceSpec,
    networkInfo: NetworkInfo,
    _blockDeviceInfo?: BlockDeviceInfo,
  ): Promise<void> {
    const uuid = instance.uuid;
    const c = await this.find(uuid);
    this.suspended.delete(uuid);
    this.stopped.delete(uuid);
    // the console's lines go with the instance, as libvirt's console.log with its directory
    const forgotten = this.journal.remove(uuid, c?.Id);
    if (c) await this.removeInstanceContainer(uuid, c);
    // after the guest: its processes leave the namespace first; a spawn cut short may have left a holder only
    await this.guard(uuid, 'InstanceTerminationFailure', () => this.networks.remove(uuid, networkInfo));
    await forgotten;
  }

  private async removeInstanceContainer(uuid: string, c: DockerContainerInspect): Promise<void> {
    await this.guard(uuid, 'InstanceTerminationFailure', async () => {
      try {
        await this.docker.removeContainer(c.Id, { force: true, v: true });
      } catch (err) {
        // 409: a removal is already in progress; wait for it to finish.
        if (!(err instanceof ConflictError)) throw err;
        await pollUntil(async () => ((await this.find(uuid)) ? undefined : true), {
          timeoutMs: 30_000,
          intervalMs: 200,
          what: `removal of ${containerName(uuid)}`,
        });
      }
    });
  }

  async powerOff(instance: InstanceSpec, timeoutS?: number): Promise<void> {
    const c = await this.mustFind(instance.uuid);
    const grace = timeoutS ?? this.opts.stopTimeoutS;
    void this.journal.note(instance.uuid, `stop requested by Nova: stop signal, SIGKILL after ${grace} s`, c.Id);
    await this.guard(instance.uuid, 'InstancePowerOffFailure', async () => {
      this.stopped.add(instance.uuid);
      this.suspended.delete(instance.uuid);
      // The Engine stops paused containers too (signal, then thaw).
      await this.docker.stopContainer(c.Id, grace);
      // a SHUTOFF instance has no network, as a VM that is off: the namespace goes with its holder
      if (this.usesHolder(c)) await this.networks.stop(instance.uuid);
    });
  }

  /** Whether the instance container lives in a netns holder's namespace (it was booted with ports). */
  private usesHolder(c: DockerContainerInspect): boolean {
    return (c.HostConfig?.NetworkMode ?? '').startsWith('container:');
  }

  /** Before the guest starts: its holder running and its VIFs plugged (powerOn, reboot, a resize's power on). */
  private async networkUp(instance: InstanceSpec, c: DockerContainerInspect, networkInfo: NetworkInfo): Promise<void> {
    if (!this.usesHolder(c)) return;
    await this.networks.ensureUp(instance, networkInfo, true);
  }

  async powerOn(_ctx: DriverContext, instance: InstanceSpec, networkInfo: NetworkInfo): Promise<void> {
    const c = await this.mustFind(instance.uuid);
    void this.journal.note(instance.uuid, `start requested by Nova${c.State.Paused ? ': thawing' : ''}`, c.Id);
    await this.guard(instance.uuid, 'InstancePowerOnFailure', async () => {
      this.stopped.delete(instance.uuid);
      this.suspended.delete(instance.uuid);
      await this.networkUp(instance, c, networkInfo);
      if (c.State.Paused) await this.docker.unpauseContainer(c.Id);
      else await this.docker.startContainer(c.Id);
    });
  }

  async reboot(
    _ctx: DriverContext,
    instance: InstanceSpec,
    networkInfo: NetworkInfo,
    rebootType: RebootType,
  ): Promise<void> {
    const c = await this.mustFind(instance.uuid);
    await this.guard(instance.uuid, 'InstanceRebootFailure', async () => {
      this.stopped.delete(instance.uuid);
      this.suspended.delete(instance.uuid);
      // the namespace outlives the guest's restart; only a stopped holder (a stopped guest) needs a replug
      await this.networkUp(instance, c, networkInfo);
      const soft = rebootType === 'SOFT' && c.State.Running && !c.State.Paused;
      void this.journal.note(
        instance.uuid,
        `reboot (${rebootType}) requested by Nova: ` +
          (soft
            ? `stop signal, SIGKILL after ${this.opts.stopTimeoutS} s, start`
            : 'stop signal, SIGKILL at once, start'),
        c.Id,
      );
      // The same container restarts, so its configuration (limits, security) is unchanged.
      await this.docker.restartContainer(c.Id, soft ? this.opts.stopTimeoutS : 0);
    });
  }

  async pause(instance: InstanceSpec): Promise<void> {
    await this.freeze(instance, false);
  }

  async unpause(instance: InstanceSpec): Promise<void> {
    await this.thaw(instance, 'unpause');
  }

  async suspend(_ctx: DriverContext, instance: InstanceSpec): Promise<void> {
    await this.freeze(instance, true);
  }

  /**
   * Thaws the suspended guest. A guest whose processes died while suspended
   * (dockerd restarted: the Engine stops paused containers too, and the
   * holder with its namespace) starts afresh, as libvirt's resume defines the
   * domain again with its VIFs plugged: holder and VIFs first, as at power
   * on, since the guest joins the holder's namespace when it starts.
   */
  async resume(_ctx: DriverContext, instance: InstanceSpec, networkInfo: NetworkInfo): Promise<void> {
    const c = await this.mustFind(instance.uuid);
    if (c.State.Paused || c.State.Running) {
      // the guest kept its namespace (a dead holder's lives on with the guest's processes): only lost taps come back
      if (this.usesHolder(c)) {
        await this.guard(instance.uuid, 'InstanceResumeFailure', async () => {
          await this.networks.ensureUp(instance, networkInfo, false);
        });
      }
      await this.thaw(instance, 'resume');
      return;
    }
    void this.journal.note(instance.uuid, 'resume requested by Nova: the suspended guest is gone, starting it', c.Id);
    await this.guard(instance.uuid, 'InstanceResumeFailure', async () => {
      this.stopped.delete(instance.uuid);
      this.suspended.delete(instance.uuid);
      await this.networkUp(instance, c, networkInfo);
      await this.docker.startContainer(c.Id);
    });
  }

  async migrateDiskAndPowerOff(
    _ctx: DriverContext,
    instance: InstanceSpec,
    _destHost: string,
    _flavor: Flavor,
    timeoutS?: number,
  ): Promise<string> {
    // The container's filesystem stays where it is: there is no disk to copy, only the guest to stop.
    await this.powerOff(instance, timeoutS);
    return '';
  }

  async finishMigration(
    _ctx: DriverContext,
    instance: InstanceSpec,
    _diskInfo: string,
    networkInfo: NetworkInfo,
    _imageMeta: ImageMeta,
    _resizeInstance: boolean,
    powerOn: boolean,
  ): Promise<void> {
    await this.applyFlavor(instance, networkInfo, powerOn);
  }

  confirmMigration(_ctx: DriverContext, _instance: InstanceSpec): Promise<void> {
    // Nothing was kept aside: the same container serves before and after the resize.
    return Promise.resolve();
  }

  async finishRevertMigration(
    _ctx: DriverContext,
    instance: InstanceSpec,
    networkInfo: NetworkInfo,
    powerOn: boolean,
  ): Promise<void> {
    await this.applyFlavor(instance, networkInfo, powerOn);
  }

  async plugVifs(instance: InstanceSpec, networkInfo: NetworkInfo): Promise<void> {
    const c = await this.find(instance.uuid);
    if (!c || !this.usesHolder(c)) return;
    // a stopped guest's holder stays stopped: its VIFs are plugged at power on
    await this.networks.ensureUp(instance, networkInfo, false);
  }

  async attachInterface(_ctx: DriverContext, instance: InstanceSpec, _imageMeta: ImageMeta, vif: Vif): Promise<void> {
    await this.mustFind(instance.uuid);
    await this.networks.attach(instance, vif);
    void this.journal.note(instance.uuid, `network: port ${vif.id} attached`);
  }

  async detachInterface(_ctx: DriverContext, instance: InstanceSpec, vif: Vif): Promise<void> {
    await this.mustFind(instance.uuid);
    await this.networks.detach(instance, vif);
    void this.journal.note(instance.uuid, `network: port ${vif.id} detached`);
  }

  /** The snapshot pipeline (snapshot.ts) on the instance's container. */
  async snapshot(
    ctx: DriverContext,
    instance: InstanceSpec,
    imageId: string,
    updateTaskState: UpdateTaskState,
  ): Promise<void> {
    if (!this.snapshots) throw notImplemented('snapshot');
    const c = await this.mustFind(instance.uuid);
    await this.snapshots.take(ctx, instance, c, imageId, updateTaskState);
  }

  /**
   * The container's log, bytes untouched, with the lifecycle lines between
   * them by time (console-log.ts): the newest `tailLines` lines, the newest
   * whole lines within consoleLogMaxBytes.
   */
  async getConsoleOutput(_ctx: DriverContext, instance: InstanceSpec, tailLines?: number): Promise<string> {
    const c = await this.mustFind(instance.uuid);
    let entries;
    try {
      entries = await this.docker.containerLogEntries(c.Id, {
        tty: c.Config.Tty ?? false,
        tail: tailLines ?? 'all',
        maxBytes: this.opts.consoleLogMaxBytes,
      });
    } catch (err) {
      if (err instanceof NotFoundError) throw instanceNotFound(instance.uuid, err);
      throw this.wrap(instance.uuid, err);
    }
    const newest = fixedTime(entries.at(-1)?.time);
    const hint: ExitHint = newest !== undefined ? { lastOutputAt: newest } : {};
    // what the Engine did while no event reached us (agent down, stream lost) is filled in here
    const records = await this.journal.update(instance.uuid, (r) => reconcile(r, observedRun(c), hint), c.Id);
    const text = mergeConsole(entries, records);
    return capBytes(tailLines === undefined ? text : lastLines(text, tailLines), this.opts.consoleLogMaxBytes);
  }

  /**
   * A container event → the console's lifecycle lines: start and die are
   * read back with inspect (image, command, the Engine's own times), an oom
   * is a line of its own and marks the exit that follows.
   */
  private recordEvent(e: DockerEvent, uuid: string): void {
    const cid = e.Actor.ID;
    const at = typeof e.timeNano === 'number' ? timeFromNanos(e.timeNano) : timeFromNanos(e.time * 1e9);
    switch (e.Action) {
      case 'start':
        this.oomSeen.delete(cid);
        void this.journal.update(uuid, (r) => this.reconcileWith(cid, r, {}), cid);
        return;
      case 'die': {
        const code = Number(e.Actor.Attributes['exitCode']);
        const hint: ExitHint = { dieAt: at, oom: this.oomSeen.delete(cid) };
        if (Number.isInteger(code)) hint.exitCode = code;
        void this.journal.update(uuid, (r) => this.reconcileWith(cid, r, hint), cid);
        return;
      }
      case 'oom':
        this.oomSeen.add(cid);
        void this.journal.update(
          uuid,
          (r) => {
            if (r.some((x) => x.kind === 'oom' && x.ref === at)) return false;
            r.push({
              t: at,
              kind: 'oom',
              ref: at,
              text: 'out of memory: the kernel killed a process of the container',
            });
            return true;
          },
          cid,
        );
        return;
      case 'destroy':
        this.oomSeen.delete(cid);
        return;
      default:
        return;
    }
  }

  private async reconcileWith(cid: string, records: Parameters<typeof reconcile>[0], hint: ExitHint): Promise<boolean> {
    let c: DockerContainerInspect;
    try {
      c = await this.docker.inspectContainer(cid);
    } catch (err) {
      // removed meanwhile: nothing to record; the Engine down: the next read fills it in
      if (!(err instanceof NotFoundError)) this.log.debug(`inspect for the console failed: ${errorMessage(err)}`);
      return false;
    }
    return reconcile(records, observedRun(c), hint);
  }

  getAvailableResource(nodename: string): Promise<AvailableResource> {
    return this.resources.getAvailableResource(nodename);
  }

  async getDiagnostics(instance: InstanceSpec): Promise<InstanceDiagnostics> {
    const c = await this.mustFind(instance.uuid);
    let stats;
    try {
      stats = await this.docker.containerStats(c.Id);
    } catch (err) {
      throw this.wrap(instance.uuid, err);
    }
    return diagnosticsFromStats(c, stats, this.stateOf(c));
  }

  getHostUptime(): Promise<string> {
    return this.resources.getHostUptime();
  }

  getAvailableNodes(_refresh?: boolean): Promise<string[]> {
    return Promise.resolve([this.opts.nodename]);
  }

  // ---- internals ----------------------------------------------------------

  /**
   * A resize in place: the Engine's container update sets the flavor's
   * memory and CPU limits (labels cannot change, so usage is read from the
   * limits, see sizesOf), then the guest starts when asked.
   */
  private async applyFlavor(instance: InstanceSpec, networkInfo: NetworkInfo, powerOn: boolean): Promise<void> {
    const uuid = instance.uuid;
    const c = await this.mustFind(uuid);
    const f = instance.flavor;
    void this.journal.note(
      uuid,
      `resize by Nova: flavor ${f.name}, limits ${f.vcpus} vCPU, ${f.memory_mb} MB RAM`,
      c.Id,
    );
    try {
      const warnings = await this.docker.updateContainer(c.Id, flavorResources(instance.flavor, this.specOptions));
      for (const w of warnings) this.log.warn(`docker: ${w}`, { instance_uuid: uuid });
    } catch (err) {
      if (err instanceof NotFoundError) throw instanceNotFound(uuid, err);
      if (findCause(err, UnavailableError)) throw hypervisorUnavailable(this.opts.host, err);
      throw resizeError(uuid, `updating the container's limits failed: ${errorMessage(err)}`, err);
    } finally {
      this.resources.limitsChanged(c.Id);
    }
    if (powerOn) await this.powerOn({}, instance, networkInfo);
  }

  private stateOf(c: DockerContainerInspect): PowerState {
    const uuid = c.Config.Labels?.[LABELS.instanceUuid] ?? '';
    return powerStateOf(c.State, { suspended: this.suspended.has(uuid), stoppedByDriver: this.stopped.has(uuid) });
  }

  /** Our containers, one label-filtered list call. */
  private async ours(): Promise<DockerContainerSummary[]> {
    try {
      const list = await this.docker.listContainers({
        all: true,
        filters: { label: hostLabelFilter(this.opts.host) },
      });
      return list.filter((c) => ownedBy(c.Labels, this.opts.host));
    } catch (err) {
      throw this.wrap(undefined, err);
    }
  }

  /** The instance's container if it exists and belongs to this host. */
  private async find(uuid: string): Promise<DockerContainerInspect | undefined> {
    try {
      const c = await this.docker.inspectContainer(containerName(uuid));
      if (ownedBy(c.Config.Labels, this.opts.host, uuid)) return c;
      this.log.debug(`container ${containerName(uuid)} exists but is not ours (other host or unmanaged)`);
      return undefined;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw this.wrap(uuid, err);
    }
  }

  private async mustFind(uuid: string): Promise<DockerContainerInspect> {
    const c = await this.find(uuid);
    if (!c) throw instanceNotFound(uuid);
    return c;
  }

  private async freeze(instance: InstanceSpec, suspend: boolean): Promise<void> {
    const c = await this.mustFind(instance.uuid);
    const method = suspend ? 'suspend' : 'pause';
    if (c.State.Paused) {
      if (suspend) this.suspended.add(instance.uuid);
      return;
    }
    if (!c.State.Running) throw instanceInvalidState(instance.uuid, POWER_STATE_NAMES[this.stateOf(c)], method);
    void this.journal.note(
      instance.uuid,
      `${method} requested by Nova: processes frozen${suspend ? ', their memory stays allocated' : ''}`,
      c.Id,
    );
    await this.guard(instance.uuid, suspend ? 'InstanceSuspendFailure' : undefined, async () => {
      await this.docker.pauseContainer(c.Id);
      if (suspend) this.suspended.add(instance.uuid);
    });
  }

  private async thaw(instance: InstanceSpec, method: 'unpause' | 'resume'): Promise<void> {
    const c = await this.mustFind(instance.uuid);
    if (!c.State.Paused) {
      this.suspended.delete(instance.uuid);
      if (c.State.Running) return;
      throw instanceInvalidState(instance.uuid, POWER_STATE_NAMES[this.stateOf(c)], method);
    }
    void this.journal.note(instance.uuid, `${method} requested by Nova: processes thawed`, c.Id);
    await this.guard(instance.uuid, method === 'resume' ? 'InstanceResumeFailure' : undefined, async () => {
      await this.docker.unpauseContainer(c.Id);
      this.suspended.delete(instance.uuid);
    });
  }

  private guard(uuid: string, klass: LifecycleFailure | undefined, fn: () => Promise<void>): Promise<void> {
    return guardEngineCall(this.opts.host, uuid, klass, fn);
  }

  private wrap(uuid: string | undefined, err: unknown): Error {
    return engineError(this.opts.host, uuid, err);
  }

  /** Exit status if the container stops with a non-zero status within spawnCheckMs. */
  private async earlyExit(uuid: string, id: string): Promise<{ code: number; oom: boolean } | undefined> {
    if (this.opts.spawnCheckMs <= 0) return undefined;
    try {
      await this.docker.waitContainer(id, { signal: AbortSignal.timeout(this.opts.spawnCheckMs) });
    } catch (err) {
      // the window passed (or the wait's own round trip was slow on a loaded host): the inspect below decides
      if (!(err instanceof DOMException && (err.name === 'TimeoutError' || err.name === 'AbortError'))) {
        throw instanceDeployFailure(uuid, `watching the new container failed: ${errorMessage(err)}`, err);
      }
    }
    const state = (await this.docker.inspectContainer(id)).State;
    if (state.Running || (state.ExitCode === 0 && !state.OOMKilled)) return undefined;
    return { code: state.ExitCode, oom: state.OOMKilled };
  }

  private async lastLines(id: string, n: number): Promise<string> {
    try {
      const b = await this.docker.containerLogs(id, { tty: false, tail: n, maxBytes: 4096 });
      return b.toString('utf8').trimEnd();
    } catch {
      return '';
    }
  }
}

/**
 * No answer from the Engine's address that waiting will not change: the
 * socket's permissions (the agent's user is not in group docker) or a TLS
 * peer whose certificate does not verify. A socket that is missing or
 * refuses connections is dockerd not (yet) running.
 */
const REFUSED_FOR_GOOD =
  /^(EACCES|EPERM|CERT_|ERR_TLS_CERT|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_(GET|VERIFY)_)/;

function refusedForGood(err: unknown): boolean {
  const code = findCause(err, HttpRequestError)?.code;
  return code !== undefined && REFUSED_FOR_GOOD.test(code);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
