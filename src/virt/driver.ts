/**
 * The virt driver contract, modelled on nova/virt/driver.py's ComputeDriver.
 * The TSDoc of each method is the contract every driver honours and
 * test/contract/driver.contract.ts checks.
 *
 * General rules:
 * - Errors are NovaError (src/virt/errors.ts) so they cross RPC as Nova
 *   exceptions; the underlying cause (e.g. a docker HttpError) stays reachable
 *   through `cause` / `findCause`. A hypervisor that does not answer gives
 *   HypervisorUnavailable with an UnavailableError cause (retryable).
 * - "Missing instance" means the driver has no guest for the uuid on this
 *   driver's host (guests of other hosts sharing a hypervisor are invisible).
 * - Methods may be called concurrently for different instances; the compute
 *   manager serialises operations on one instance.
 */
import type { DriverEventListener } from './event.js';
import type { PowerState } from './power-state.js';
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
} from './types.js';

export type { PowerState };

export interface ComputeDriver {
  /** Feature flags the resource tracker reports as traits. Constant for the driver's lifetime. */
  readonly capabilities: DriverCapabilities;

  /**
   * Called at service start, before anything else. Checks the hypervisor
   * answers. Throws HypervisorUnavailable when it does not (the manager waits
   * and calls it again); any other error means it cannot be used as
   * configured, which waiting does not change. Idempotent.
   */
  initHost(host: string): Promise<void>;

  /**
   * register_event_listener: from now on, lifecycle transitions of this
   * host's guests (including those made outside Nova) are passed to
   * `listener`, in the order the hypervisor reports them per guest, plus an
   * EventsMissed whenever the event source had to reconnect. Undefined stops
   * the feed (cleanup_host). Never throws; the listener must not either.
   */
  registerEventListener(listener: DriverEventListener | undefined): void;

  /** Uuids of all guests of this host, in any power state. One hypervisor call. */
  listInstanceUuids(): Promise<string[]>;

  /**
   * Power state of every guest of this host, by uuid, in one hypervisor call
   * (the periodic power-state sync). Guests not listed are missing (NOSTATE).
   */
  listInstancePowerStates(): Promise<Map<string, PowerState>>;

  /**
   * Current power state. Throws InstanceNotFound when the guest is missing.
   * Never changes anything.
   */
  getInfo(instance: InstanceSpec): Promise<InstanceInfo>;

  /**
   * Creates and starts the guest; resolves once it runs (power state RUNNING).
   * Preconditions: no guest for the uuid exists (else InstanceExists).
   * On any failure (image not found → ImageNotFound; hypervisor error, or a
   * guest that dies at once → InstanceDeployFailure with the reason) nothing
   * is left behind, VIF devices included. `networkInfo` empty means no
   * network; it may be a promise (Nova's NetworkInfoAsyncWrapper: the ports
   * are allocated while the image is fetched): spawn awaits it before
   * plugging and, when it rejects, cleans up and rethrows that reason.
   * Networking: every VIF is plugged before the guest's own processes start,
   * the plug running as the body of `ctx.waitForInstanceEvents` with
   * expectedPlugEvents(vifs) (no wait when that hook is absent); its
   * rejection (VirtualInterfaceCreateException) fails the spawn. A VIF the
   * driver cannot plug (vif type, vnic_type, failed binding) or a plug that
   * fails → VirtualInterfacePlugException naming the port. `injectedFiles`,
   * `adminPassword` and `allocations` may be ignored by drivers that cannot
   * use them.
   */
  spawn(
    ctx: DriverContext,
    instance: InstanceSpec,
    imageMeta: ImageMeta,
    injectedFiles: InjectedFile[],
    adminPassword: string | undefined,
    allocations: Record<string, unknown> | undefined,
    networkInfo: NetworkInfo | Promise<NetworkInfo>,
    blockDeviceInfo?: BlockDeviceInfo,
  ): Promise<void>;

  /**
   * Removes the guest and everything the driver created for it, whatever its
   * state, its VIF devices (host taps, veths, OVS ports) included, and
   * nothing that is not its own. Idempotent: a missing guest succeeds.
   * Afterwards the uuid is no longer listed and getInfo throws
   * InstanceNotFound.
   */
  destroy(
    ctx: DriverContext,
    instance: InstanceSpec,
    networkInfo: NetworkInfo,
    blockDeviceInfo?: BlockDeviceInfo,
  ): Promise<void>;

  /**
   * Stops the guest: asks it to shut down and forces it after `timeoutS`
   * seconds (driver default when omitted; 0 = force at once). Afterwards
   * SHUTDOWN, and its VIFs pass no traffic (as a VM that is off; the agent
   * may report the ports down). Idempotent on a stopped guest. Works on a
   * paused guest. InstanceNotFound when missing.
   */
  powerOff(instance: InstanceSpec, timeoutS?: number): Promise<void>;

  /**
   * Starts a stopped (or crashed, or paused) guest; afterwards RUNNING, with
   * the VIFs of `networkInfo` plugged again before its processes start (no
   * wait for network-vif-plugged, as libvirt's power_on). Empty
   * `networkInfo`: the VIFs last plugged. Idempotent on a running guest.
   * InstanceNotFound when missing.
   */
  powerOn(ctx: DriverContext, instance: InstanceSpec, networkInfo: NetworkInfo): Promise<void>;

  /**
   * SOFT: graceful restart of a running guest; falls back to HARD when the
   * guest is not running. HARD: from any state, force-stop and start.
   * The guest keeps its configuration (limits, security options) and its
   * network (`networkInfo` replugged where missing, as powerOn). Afterwards
   * RUNNING. InstanceNotFound when missing.
   */
  reboot(ctx: DriverContext, instance: InstanceSpec, networkInfo: NetworkInfo, rebootType: RebootType): Promise<void>;

  /**
   * plug_vifs (agent start, Nova's _init_instance): makes the host side of
   * `networkInfo` exist for a guest that runs, plugging only what is missing
   * (never a duplicate device); a stopped guest gets them at powerOn. Also
   * refreshes what the guest derives from network_info (DNS), so it is the
   * call after a network-changed. A guest without network or a missing guest:
   * nothing to do. VirtualInterfacePlugException when a plug fails.
   */
  plugVifs(instance: InstanceSpec, networkInfo: NetworkInfo): Promise<void>;

  /**
   * attach_interface: plugs `vif` into a running guest at once (the next
   * free device) and into a stopped one at its next powerOn (Nova has the
   * VIF in network_info by then). Does not wait for network-vif-plugged
   * (libvirt does not either). VirtualInterfacePlugException when the VIF
   * cannot be plugged (type, a guest booted without network);
   * InstanceNotFound when missing. Only when capabilities
   * supports_attach_interface.
   */
  attachInterface(ctx: DriverContext, instance: InstanceSpec, imageMeta: ImageMeta, vif: Vif): Promise<void>;

  /**
   * detach_interface: removes `vif`'s devices from the guest and the host.
   * Idempotent (a VIF not plugged succeeds). InstanceNotFound when the guest
   * is missing.
   */
  detachInterface(ctx: DriverContext, instance: InstanceSpec, vif: Vif): Promise<void>;

  /** Freezes a running guest; afterwards PAUSED. Idempotent on a paused guest. InstanceInvalidState when not running. */
  pause(instance: InstanceSpec): Promise<void>;

  /** Thaws a paused guest; afterwards RUNNING. Idempotent on a running guest. InstanceInvalidState when stopped. */
  unpause(instance: InstanceSpec): Promise<void>;

  /** Suspends a running guest; afterwards SUSPENDED. Idempotent. InstanceInvalidState when stopped. */
  suspend(ctx: DriverContext, instance: InstanceSpec): Promise<void>;

  /** Resumes a suspended (or paused) guest; afterwards RUNNING. Idempotent on a running guest. */
  resume(ctx: DriverContext, instance: InstanceSpec, networkInfo: NetworkInfo): Promise<void>;

  /**
   * Captures the guest into image `imageId` (already created in Glance by the
   * API), calling `updateTaskState` as it progresses. Drivers without an
   * upload path throw NotImplementedError.
   */
  snapshot(
    ctx: DriverContext,
    instance: InstanceSpec,
    imageId: string,
    updateTaskState: UpdateTaskState,
  ): Promise<void>;

  /**
   * First half of a resize (migrate_disk_and_power_off), on the source host:
   * powers the guest off (`timeoutS` as powerOff) and returns the disk_info
   * string Nova hands to finishMigration on the destination. `flavor` is the
   * new flavor. Drivers that keep the guest's disk in place return ''.
   * Afterwards SHUTDOWN. InstanceNotFound when missing.
   */
  migrateDiskAndPowerOff(
    ctx: DriverContext,
    instance: InstanceSpec,
    destHost: string,
    flavor: Flavor,
    timeoutS?: number,
  ): Promise<string>;

  /**
   * Second half of a resize (finish_migration), on the destination: the guest
   * gets the resources of `instance.flavor` (already the new flavor) and
   * runs when `powerOn` (its VIFs of `networkInfo` plugged as powerOn does),
   * else stays SHUTDOWN. On failure the guest keeps its old resources.
   * InstanceNotFound when missing; ResizeError otherwise.
   */
  finishMigration(
    ctx: DriverContext,
    instance: InstanceSpec,
    diskInfo: string,
    networkInfo: NetworkInfo,
    imageMeta: ImageMeta,
    resizeInstance: boolean,
    powerOn: boolean,
  ): Promise<void>;

  /**
   * confirm_migration, on the source: drops what was kept for a revert.
   * Idempotent, also when the guest is missing.
   */
  confirmMigration(ctx: DriverContext, instance: InstanceSpec): Promise<void>;

  /**
   * finish_revert_migration, on the source: the guest gets the resources of
   * `instance.flavor` (the old flavor again) back and runs when `powerOn`
   * (VIFs as powerOn), else stays SHUTDOWN. InstanceNotFound when missing;
   * ResizeError otherwise.
   */
  finishRevertMigration(
    ctx: DriverContext,
    instance: InstanceSpec,
    networkInfo: NetworkInfo,
    powerOn: boolean,
  ): Promise<void>;

  /**
   * The guest's console log (UTF-8, at most the driver's cap, the newest
   * part), optionally only the last `tailLines` lines. InstanceNotFound when
   * missing.
   */
  getConsoleOutput(ctx: DriverContext, instance: InstanceSpec, tailLines?: number): Promise<string>;

  /**
   * Inventory and usage of `nodename` for the resource tracker. Usage counts
   * every guest of this host, stopped ones too.
   */
  getAvailableResource(nodename: string): Promise<AvailableResource>;

  /**
   * Diagnostics of a running guest (resource usage now). InstanceNotFound
   * when missing.
   */
  getDiagnostics(instance: InstanceSpec): Promise<InstanceDiagnostics>;

  /** The host's uptime in the format of `uptime(1)`. */
  getHostUptime(): Promise<string>;

  /** Nodes this driver manages: one, the hypervisor hostname. */
  getAvailableNodes(refresh?: boolean): Promise<string[]>;
}

/** Capabilities shared by the container drivers (fake and docker). */
export const CONTAINER_DRIVER_CAPABILITIES: DriverCapabilities = Object.freeze({
  has_imagecache: false,
  supports_evacuate: false,
  supports_migrate_to_same_host: false,
  supports_attach_interface: false,
  supports_device_tagging: false,
  supports_tagged_attach_interface: false,
  supports_tagged_attach_volume: false,
  supports_extend_volume: false,
  supports_multiattach: false,
  supports_trusted_certs: false,
  supports_pcpus: false,
  supports_accelerators: false,
  supports_bfv_rescue: false,
  supports_vtpm: false,
  supports_secure_boot: false,
  supports_socket_pci_numa_affinity: false,
  supports_remote_managed_ports: false,
  supports_address_space_passthrough: false,
  supports_address_space_emulated: false,
  supports_stateless_firmware: false,
  supports_virtio_fs: false,
  supports_mem_backing_file: false,
  // Docker images are stored in Glance as disk_format=raw, container_format=docker.
  supports_image_type_raw: true,
  supports_image_type_aki: false,
  supports_image_type_ami: false,
  supports_image_type_ari: false,
  supports_image_type_iso: false,
  supports_image_type_qcow2: false,
  supports_image_type_vdi: false,
  supports_image_type_vhd: false,
  supports_image_type_vhdx: false,
  supports_image_type_vmdk: false,
  supports_image_type_ploop: false,
});

/** Nova's version int: '20.10.24+dfsg1' → 20010024 (each part × 1000). */
export function versionToInt(version: string): number {
  const parts = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(version.trim());
  if (!parts) return 0;
  return [parts[1], parts[2], parts[3]].reduce((acc, p) => acc * 1000 + parseInt(p ?? '0', 10), 0);
}

/** `uptime(1)`-style line from seconds up, load averages and a clock. */
export function formatUptime(upSeconds: number, load: number[], now: Date = new Date(), users = 0): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  const clock = `${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
  const days = Math.floor(upSeconds / 86400);
  const hours = Math.floor((upSeconds % 86400) / 3600);
  const mins = Math.floor((upSeconds % 3600) / 60);
  let up = days > 0 ? `${days} day${days === 1 ? '' : 's'}, ` : '';
  up += hours > 0 ? `${String(hours).padStart(2)}:${pad(mins)}` : `${mins} min`;
  const la = [0, 1, 2].map((i) => (load[i] ?? 0).toFixed(2)).join(', ');
  return ` ${clock} up ${up},  ${users} user${users === 1 ? '' : 's'},  load average: ${la}`;
}
