/**
 * FakeDriver: guests in memory, like nova.virt.fake.FakeDriver. Honours the
 * same contract as the real drivers (../driver.ts), so the compute manager
 * and the contract tests can run without a hypervisor.
 */
import { AgentError } from '../../common/errors.js';
import { CONTAINER_DRIVER_CAPABILITIES, type ComputeDriver, formatUptime } from '../driver.js';
import {
  guestExited,
  imageNotFound,
  instanceDeployFailure,
  instanceExists,
  instanceInvalidState,
  instanceNotFound,
  resizeError,
  vifPlugFailure,
} from '../errors.js';
import { expectedPlugEvents, type VifModel } from '../network-model.js';
import { type DriverEvent, type DriverEventListener, LifecycleTransition } from '../event.js';
import { POWER_STATE_NAMES, PowerState } from '../power-state.js';
import type {
  AvailableResource,
  BlockDeviceInfo,
  DriverCapabilities,
  DriverContext,
  Flavor,
  ImageMeta,
  InjectedFile,
  InstanceDiagnostics,
  InstanceInfo,
  InstanceSpec,
  NetworkInfo,
  RebootType,
  UpdateTaskState,
  Vif,
} from '../types.js';

export interface FakeDriverOptions {
  host: string;
  nodename?: string;
  /** Whether an image exists. Default: every image. */
  imageExists?: (image: ImageMeta) => boolean;
  vcpus?: number;
  memory_mb?: number;
  local_gb?: number;
  /** Version string reported as hypervisor_version. Default '1.0'. */
  version?: string;
}

export interface FakeGuest {
  instance: InstanceSpec;
  image: ImageMeta;
  state: PowerState;
  console: string[];
  networkInfo: NetworkInfo;
  /** Booted with VIFs: it has a network namespace to plug into (as the docker driver's netns holder). */
  netns?: boolean;
}

/** Why the fake refuses to plug a VIF (a failed binding, a vnic_type other than normal), or undefined. */
export function fakeUnpluggable(vif: VifModel): string | undefined {
  if (vif.type === 'binding_failed' || vif.type === 'unbound') return `its binding failed (vif type ${vif.type})`;
  if ((vif.vnic_type ?? 'normal') !== 'normal') return `vnic_type '${vif.vnic_type}' is not supported`;
  return undefined;
}

export const FAKE_CONSOLE = ['FAKE CONSOLE OUTPUT', 'ANOTHER', 'LAST LINE'];

export class FakeDriver implements ComputeDriver {
  readonly capabilities: DriverCapabilities = Object.freeze({
    ...CONTAINER_DRIVER_CAPABILITIES,
    supports_attach_interface: true,
  });
  /** The host devices plugged, by port id → instance uuid (the taps a real driver makes; tests may look). */
  readonly plugged = new Map<string, string>();
  /** The guests, by uuid (tests may look). */
  readonly guests = new Map<string, FakeGuest>();
  /** Snapshots taken: Glance image id → instance uuid. */
  readonly snapshots = new Map<string, string>();
  private readonly nodename: string;
  private listener: DriverEventListener | undefined;

  constructor(private readonly opts: FakeDriverOptions) {
    this.nodename = opts.nodename ?? opts.host;
  }

  initHost(_host: string): Promise<void> {
    return Promise.resolve();
  }

  registerEventListener(listener: DriverEventListener | undefined): void {
    this.listener = listener;
  }

  /** Test hook: passes `event` to the registered listener (as a hypervisor would). */
  emitEvent(event: DriverEvent): void {
    this.listener?.(event);
  }

  /**
   * Test hook: the guest changes state outside Nova (e.g. `docker kill`), and
   * the matching lifecycle event is emitted; `undefined` removes the guest.
   */
  simulateExternal(uuid: string, state: PowerState | undefined): void {
    const g = this.guests.get(uuid);
    if (state === undefined) this.guests.delete(uuid);
    else if (g) g.state = state;
    const transition =
      state === PowerState.RUNNING
        ? LifecycleTransition.STARTED
        : state === PowerState.PAUSED
          ? LifecycleTransition.PAUSED
          : state === PowerState.SUSPENDED
            ? LifecycleTransition.SUSPENDED
            : LifecycleTransition.STOPPED;
    this.emitEvent({ kind: 'lifecycle', uuid, transition, timestamp: Date.now() });
  }

  listInstanceUuids(): Promise<string[]> {
    return Promise.resolve([...this.guests.keys()]);
  }

  listInstancePowerStates(): Promise<Map<string, PowerState>> {
    return Promise.resolve(new Map([...this.guests].map(([uuid, g]) => [uuid, g.state])));
  }

  /** The flavor's memory as the maximum, nothing used yet. */
  async getDiagnostics(instance: InstanceSpec): Promise<InstanceDiagnostics> {
    const g = this.must(instance);
    return await Promise.resolve({
      power_state: g.state,
      uptime: 0,
      memory_details: { maximum: g.instance.flavor.memory_mb, used: 0 },
      cpu_details: [{ id: 0, time: 0, utilisation: 0 }],
      nic_details: [],
      disk_details: [],
    });
  }

  async getInfo(instance: InstanceSpec): Promise<InstanceInfo> {
    return Promise.resolve({ power_state: this.must(instance).state });
  }

  async spawn(
    ctx: DriverContext,
    instance: InstanceSpec,
    imageMeta: ImageMeta,
    _injectedFiles: InjectedFile[],
    _adminPassword: string | undefined,
    _allocations: Record<string, unknown> | undefined,
    networkInfoArg: NetworkInfo | Promise<NetworkInfo>,
    _blockDeviceInfo?: BlockDeviceInfo,
  ): Promise<void> {
    const networkInfo = await networkInfoArg;
    if (this.guests.has(instance.uuid)) throw instanceExists(instance.uuid, instance.uuid);
    if (!(this.opts.imageExists?.(imageMeta) ?? true)) throw imageNotFound(imageMeta.id);
    const fail = imageMeta.properties['fake_fail_spawn'];
    if (fail) throw instanceDeployFailure(instance.uuid, typeof fail === 'string' ? fail : 'fake spawn failure');
    // a guest whose command ends at once (the docker driver's spawn check): fails on any host
    const exits = imageMeta.properties['fake_exit_at_once'];
    if (exits) throw guestExited(instance.uuid, typeof exits === 'string' ? exits : 'the command exited at once');
    this.checkPluggable(instance.uuid, networkInfo);
    try {
      const plug = () => {
        this.plug(instance.uuid, networkInfo);
        return Promise.resolve();
      };
      const events = expectedPlugEvents(networkInfo);
      if (ctx.waitForInstanceEvents && events.length > 0) await ctx.waitForInstanceEvents(events, plug);
      else await plug();
      await ctx.readyToStart;
    } catch (err) {
      this.unplugAll(instance.uuid);
      throw err;
    }
    this.guests.set(instance.uuid, {
      instance,
      image: imageMeta,
      state: PowerState.RUNNING,
      console: [...FAKE_CONSOLE],
      networkInfo,
      netns: networkInfo.length > 0,
    });
  }

  destroy(
    _ctx: DriverContext,
    instance: InstanceSpec,
    _networkInfo: NetworkInfo,
    _blockDeviceInfo?: BlockDeviceInfo,
  ): Promise<void> {
    this.guests.delete(instance.uuid);
    this.unplugAll(instance.uuid);
    return Promise.resolve();
  }

  async powerOff(instance: InstanceSpec, _timeoutS?: number): Promise<void> {
    this.must(instance).state = PowerState.SHUTDOWN;
    this.unplugAll(instance.uuid);
    return Promise.resolve();
  }

  async powerOn(_ctx: DriverContext, instance: InstanceSpec, networkInfo: NetworkInfo): Promise<void> {
    const g = this.must(instance);
    this.replug(g, networkInfo);
    g.state = PowerState.RUNNING;
    return Promise.resolve();
  }

  async reboot(
    _ctx: DriverContext,
    instance: InstanceSpec,
    networkInfo: NetworkInfo,
    _rebootType: RebootType,
  ): Promise<void> {
    const g = this.must(instance);
    this.replug(g, networkInfo);
    g.state = PowerState.RUNNING;
    return Promise.resolve();
  }

  async plugVifs(instance: InstanceSpec, networkInfo: NetworkInfo): Promise<void> {
    const g = this.guests.get(instance.uuid);
    if (!g?.netns) return Promise.resolve();
    if (g.state === PowerState.SHUTDOWN || g.state === PowerState.CRASHED) {
      if (networkInfo.length > 0) g.networkInfo = networkInfo;
      return Promise.resolve();
    }
    this.replug(g, networkInfo);
    return Promise.resolve();
  }

  async attachInterface(_ctx: DriverContext, instance: InstanceSpec, _imageMeta: ImageMeta, vif: Vif): Promise<void> {
    const g = this.must(instance);
    this.checkPluggable(instance.uuid, [vif]);
    if (!g.netns) throw vifPlugFailure(instance.uuid, vif.id, 'the instance was booted without a network');
    g.networkInfo = [...g.networkInfo.filter((v) => v.id !== vif.id), vif];
    if (g.state !== PowerState.SHUTDOWN && g.state !== PowerState.CRASHED) this.plug(instance.uuid, [vif]);
    return Promise.resolve();
  }

  async detachInterface(_ctx: DriverContext, instance: InstanceSpec, vif: Vif): Promise<void> {
    const g = this.must(instance);
    g.networkInfo = g.networkInfo.filter((v) => v.id !== vif.id);
    if (this.plugged.get(vif.id) === instance.uuid) this.plugged.delete(vif.id);
    return Promise.resolve();
  }

  async pause(instance: InstanceSpec): Promise<void> {
    this.transition(instance, 'pause', [PowerState.RUNNING, PowerState.PAUSED], PowerState.PAUSED);
    return Promise.resolve();
  }

  async unpause(instance: InstanceSpec): Promise<void> {
    this.transition(
      instance,
      'unpause',
      [PowerState.PAUSED, PowerState.SUSPENDED, PowerState.RUNNING],
      PowerState.RUNNING,
    );
    return Promise.resolve();
  }

  async suspend(_ctx: DriverContext, instance: InstanceSpec): Promise<void> {
    this.transition(
      instance,
      'suspend',
      [PowerState.RUNNING, PowerState.PAUSED, PowerState.SUSPENDED],
      PowerState.SUSPENDED,
    );
    return Promise.resolve();
  }

  async resume(_ctx: DriverContext, instance: InstanceSpec, _networkInfo: NetworkInfo): Promise<void> {
    this.transition(
      instance,
      'resume',
      [PowerState.SUSPENDED, PowerState.PAUSED, PowerState.RUNNING],
      PowerState.RUNNING,
    );
    return Promise.resolve();
  }

  async migrateDiskAndPowerOff(
    _ctx: DriverContext,
    instance: InstanceSpec,
    _destHost: string,
    _flavor: Flavor,
    _timeoutS?: number,
  ): Promise<string> {
    this.must(instance).state = PowerState.SHUTDOWN;
    this.unplugAll(instance.uuid);
    return Promise.resolve('');
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
    this.resizeTo(instance, networkInfo, powerOn);
    return Promise.resolve();
  }

  confirmMigration(_ctx: DriverContext, _instance: InstanceSpec): Promise<void> {
    return Promise.resolve();
  }

  async finishRevertMigration(
    _ctx: DriverContext,
    instance: InstanceSpec,
    networkInfo: NetworkInfo,
    powerOn: boolean,
  ): Promise<void> {
    this.resizeTo(instance, networkInfo, powerOn);
    return Promise.resolve();
  }

  /**
   * Moves the task through image_pending_upload and image_uploading and
   * records the image. The guest's image property `fake_fail_snapshot` makes
   * it fail after the upload started.
   */
  async snapshot(
    _ctx: DriverContext,
    instance: InstanceSpec,
    imageId: string,
    updateTaskState: UpdateTaskState,
  ): Promise<void> {
    const guest = this.must(instance);
    await updateTaskState('image_pending_upload');
    await updateTaskState('image_uploading', 'image_pending_upload');
    const fail = guest.image.properties['fake_fail_snapshot'];
    if (fail) throw new AgentError(typeof fail === 'string' ? fail : 'fake snapshot failure');
    if (!this.guests.has(instance.uuid)) throw instanceNotFound(instance.uuid);
    this.snapshots.set(imageId, instance.uuid);
  }

  async getConsoleOutput(_ctx: DriverContext, instance: InstanceSpec, tailLines?: number): Promise<string> {
    const lines = this.must(instance).console;
    const shown = tailLines === undefined ? lines : lines.slice(Math.max(0, lines.length - tailLines));
    return Promise.resolve(shown.map((l) => `${l}\n`).join(''));
  }

  getAvailableResource(_nodename: string): Promise<AvailableResource> {
    let vcpusUsed = 0;
    let memUsed = 0;
    let diskUsed = 0;
    for (const g of this.guests.values()) {
      vcpusUsed += g.instance.flavor.vcpus;
      memUsed += g.instance.flavor.memory_mb;
      diskUsed += g.instance.flavor.root_gb + g.instance.flavor.ephemeral_gb;
    }
    const version = (this.opts.version ?? '1.0').split('.').map((p) => parseInt(p, 10) || 0);
    return Promise.resolve({
      vcpus: this.opts.vcpus ?? 1000,
      memory_mb: this.opts.memory_mb ?? 800_000,
      local_gb: this.opts.local_gb ?? 600_000,
      vcpus_used: vcpusUsed,
      memory_mb_used: memUsed,
      local_gb_used: diskUsed,
      hypervisor_type: 'fake',
      hypervisor_version: version.reduce((a, p) => a * 1000 + p, 0),
      hypervisor_hostname: this.nodename,
      cpu_info: '{}',
      disk_available_least: (this.opts.local_gb ?? 600_000) - diskUsed,
      numa_topology: null,
      supported_instances: [['x86_64', 'fake', 'hvm']],
    });
  }

  getHostUptime(): Promise<string> {
    return Promise.resolve(formatUptime(3600, [0, 0, 0]));
  }

  getAvailableNodes(_refresh?: boolean): Promise<string[]> {
    return Promise.resolve([this.nodename]);
  }

  /** Test hook: the next finishMigration / finishRevertMigration fails with this reason. */
  failNextResize: string | undefined;

  /** Test hook: the guest dies abnormally. */
  simulateCrash(uuid: string): void {
    const g = this.guests.get(uuid);
    if (g) g.state = PowerState.CRASHED;
  }

  private resizeTo(instance: InstanceSpec, networkInfo: NetworkInfo, powerOn: boolean): void {
    const g = this.must(instance);
    const fail = this.failNextResize;
    if (fail !== undefined) {
      this.failNextResize = undefined;
      throw resizeError(instance.uuid, fail);
    }
    g.instance = { ...g.instance, flavor: instance.flavor };
    if (powerOn) {
      this.replug(g, networkInfo);
      g.state = PowerState.RUNNING;
    }
  }

  /** Port ids plugged for `uuid` (test hook). */
  pluggedFor(uuid: string): string[] {
    return [...this.plugged].filter(([, u]) => u === uuid).map(([p]) => p);
  }

  private checkPluggable(uuid: string, vifs: readonly VifModel[]): void {
    for (const vif of vifs) {
      const reason = fakeUnpluggable(vif);
      if (reason) throw vifPlugFailure(uuid, vif.id, reason);
    }
  }

  private plug(uuid: string, vifs: readonly VifModel[]): void {
    for (const v of vifs) {
      const owner = this.plugged.get(v.id);
      if (owner !== undefined && owner !== uuid) throw vifPlugFailure(uuid, v.id, `its device belongs to ${owner}`);
    }
    for (const v of vifs) this.plugged.set(v.id, uuid);
  }

  /** The guest's VIFs plugged again where missing (empty networkInfo: the ones it had). */
  private replug(g: FakeGuest, networkInfo: NetworkInfo): void {
    if (!g.netns) return;
    const use = networkInfo.length > 0 ? networkInfo : g.networkInfo;
    this.checkPluggable(g.instance.uuid, use);
    this.plug(g.instance.uuid, use);
    g.networkInfo = use;
  }

  private unplugAll(uuid: string): void {
    for (const [port, owner] of [...this.plugged]) if (owner === uuid) this.plugged.delete(port);
  }

  private must(instance: InstanceSpec): FakeGuest {
    const g = this.guests.get(instance.uuid);
    if (!g) throw instanceNotFound(instance.uuid);
    return g;
  }

  private transition(instance: InstanceSpec, method: string, from: PowerState[], to: PowerState): void {
    const g = this.must(instance);
    if (!from.includes(g.state)) throw instanceInvalidState(instance.uuid, POWER_STATE_NAMES[g.state], method);
    g.state = to;
  }
}
