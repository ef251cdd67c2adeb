/**
 * FakeDriver: guests in memory, like nova.virt.fake.FakeDriver. Honours the
 * same contract as the real drivers (../driver.ts), so the compute manager
 * and the contract tests can run without a hypervisor.
 */
import { AgentError } from '../../common/errors.js';
import { CONTAINER_DRIVER_CAPABILITIES, type ComputeDriver, formatUptime } from '../driver.js';
import {
  imageNotFound,
  instanceDeployFailure,
  instanceExists,
  instanceInvalidState,
  instanceNotFound,
  resizeError,
} from '../errors.js';
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
}

export const FAKE_CONSOLE = ['FAKE CONSOLE OUTPUT', 'ANOTHER', 'LAST LINE'];

export class FakeDriver implements ComputeDriver {
  readonly capabilities: DriverCapabilities = CONTAINER_DRIVER_CAPABILITIES;
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
    await ctx.readyToStart;
    this.guests.set(instance.uuid, {
      instance,
      image: imageMeta,
      state: PowerState.RUNNING,
      console: [...FAKE_CONSOLE],
      networkInfo,
    });
  }

  destroy(
    _ctx: DriverContext,
    instance: InstanceSpec,
    _networkInfo: NetworkInfo,
    _blockDeviceInfo?: BlockDeviceInfo,
  ): Promise<void> {
    this.guests.delete(instance.uuid);
    return Promise.resolve();
  }

  async powerOff(instance: InstanceSpec, _timeoutS?: number): Promise<void> {
    this.must(instance).state = PowerState.SHUTDOWN;
    return Promise.resolve();
  }

  async powerOn(_ctx: DriverContext, instance: InstanceSpec): Promise<void> {
    this.must(instance).state = PowerState.RUNNING;
    return Promise.resolve();
  }

  async reboot(_ctx: DriverContext, instance: InstanceSpec, _rebootType: RebootType): Promise<void> {
    this.must(instance).state = PowerState.RUNNING;
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
    return Promise.resolve('');
  }

  async finishMigration(
    _ctx: DriverContext,
    instance: InstanceSpec,
    _diskInfo: string,
    _imageMeta: ImageMeta,
    _resizeInstance: boolean,
    powerOn: boolean,
  ): Promise<void> {
    this.resizeTo(instance, powerOn);
    return Promise.resolve();
  }

  confirmMigration(_ctx: DriverContext, _instance: InstanceSpec): Promise<void> {
    return Promise.resolve();
  }

  async finishRevertMigration(_ctx: DriverContext, instance: InstanceSpec, powerOn: boolean): Promise<void> {
    this.resizeTo(instance, powerOn);
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

  private resizeTo(instance: InstanceSpec, powerOn: boolean): void {
    const g = this.must(instance);
    const fail = this.failNextResize;
    if (fail !== undefined) {
      this.failNextResize = undefined;
      throw resizeError(instance.uuid, fail);
    }
    g.instance = { ...g.instance, flavor: instance.flavor };
    if (powerOn) g.state = PowerState.RUNNING;
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
