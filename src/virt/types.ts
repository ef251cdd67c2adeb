/**
 * The minimal shapes of Nova's objects that a virt driver reads. Field names
 * are Nova's (snake_case), so the RPC layer can pass primitive-ised objects
 * through. Only what the drivers use is declared; extra fields are allowed.
 */
import type { VifModel } from './network-model.js';
import type { PowerState } from './power-state.js';

export interface Flavor {
  flavorid: string;
  name: string;
  memory_mb: number;
  vcpus: number;
  root_gb: number;
  ephemeral_gb: number;
  /** MiB; 0 = none. */
  swap: number;
  extra_specs: Record<string, string>;
}

export interface InstanceSpec {
  uuid: string;
  hostname?: string;
  display_name?: string;
  project_id?: string;
  user_id?: string;
  /** The compute host (service host name) the instance belongs to. */
  host: string;
  node?: string;
  metadata: Record<string, string>;
  flavor: Flavor;
  image_ref?: string;
}

export interface ImageMeta {
  id: string;
  name?: string;
  container_format?: string;
  disk_format?: string;
  properties: Record<string, unknown>;
  checksum?: string;
  os_hash_algo?: string;
  os_hash_value?: string;
  size?: number;
}

/** One VIF of Nova's network_info (nova.network.model.VIF). */
export type Vif = VifModel;

/** Nova's network_info: empty for `--nic none`. */
export type NetworkInfo = VifModel[];

/** Nova's block_device_info (driver_block_device output), reduced. */
export interface BlockDeviceInfo {
  root_device_name?: string;
  ephemerals?: unknown[];
  block_device_mapping?: unknown[];
  swap?: unknown;
}

/** An injected file: [path, contents] as Nova passes it. */
export type InjectedFile = [path: string, contents: string];

/** The request context as a driver needs it (a subset of nova.context.RequestContext). */
export interface DriverContext {
  authToken?: string;
  requestId?: string;
  globalRequestId?: string;
  userId?: string;
  projectId?: string;
  /** oslo.log's user_identity of the request ("user project domain user_domain project_domain"), for log lines. */
  userIdentity?: string;
  /**
   * spawn only: the manager's state saves before spawning (building →
   * spawning). spawn may fetch the image, create and start the guest while
   * they run, but succeeds only once this resolves; when it rejects (the
   * instance was deleted meanwhile, say), spawn removes the guest and
   * rethrows that reason, leaving nothing behind.
   */
  readyToStart?: Promise<void>;
  /**
   * spawn (and interface attach): Nova's ComputeVirtAPI.wait_for_instance_event.
   * Registers a waiter for each [event name, tag] (e.g. ['network-vif-plugged',
   * port id]) before running `body` (the plug), then resolves once all have
   * arrived. Rejects with VirtualInterfaceCreateException when one arrives
   * with status failed, or when `[DEFAULT] vif_plugging_timeout` passes and
   * `vif_plugging_is_fatal` is set (not fatal: resolves after the timeout).
   * Absent, or a timeout of 0: runs `body` and does not wait.
   */
  waitForInstanceEvents?: (events: Array<[name: string, tag: string]>, body: () => Promise<void>) => Promise<void>;
  /** spawn only: told when each preparation step is done (boot-phase metrics). Must not throw. */
  onProgress?: (mark: SpawnMark) => void;
}

/**
 * Steps of a spawn before the guest starts: the image is local, the guest exists (not started).
 * A driver makes nothing of the instance's on the host (guest, network, files) before image_ready:
 * a build that fails earlier has nothing to clean up, so a failed cleanup does not stop a reschedule.
 */
export type SpawnMark = 'image_ready' | 'guest_created';

export type RebootType = 'SOFT' | 'HARD';

/** Nova's InstanceInfo, reduced to what the compute manager reads. */
export interface InstanceInfo {
  power_state: PowerState;
}

/** Compute-task states passed to `snapshot`'s update callback. */
export type SnapshotTaskState = 'image_pending_upload' | 'image_uploading';

export type UpdateTaskState = (taskState: SnapshotTaskState, expectedState?: string) => Promise<void> | void;

/** [arch, hypervisor type, vm mode], as in ComputeNode.supported_hv_specs. */
export type SupportedInstance = [arch: string, hvType: string, vmMode: string];

/** get_available_resource's dict (the fields the resource tracker reads). */
export interface AvailableResource {
  vcpus: number;
  memory_mb: number;
  local_gb: number;
  vcpus_used: number;
  memory_mb_used: number;
  local_gb_used: number;
  hypervisor_type: string;
  /** Nova's version int: 20.10.24 → 20010024. */
  hypervisor_version: number;
  hypervisor_hostname: string;
  /** JSON string, never null. */
  cpu_info: string;
  /** Free disk in GB after over-subscription (libvirt's notion; here: free GB). */
  disk_available_least: number;
  numa_topology: null;
  supported_instances: SupportedInstance[];
}

/**
 * ComputeDriver.capabilities: the resource tracker turns these into traits
 * (COMPUTE_*). Keys and meaning as in nova/virt/driver.py.
 */
export type DriverCapabilities = Readonly<Record<string, boolean>>;

/**
 * What `server show --diagnostics` reports (nova/objects/diagnostics.py's
 * fields; memory in MiB, CPU time in ns, utilisation in percent), for
 * get_instance_diagnostics (microversion 2.48+) and the older free-form
 * get_diagnostics alike.
 */
export interface InstanceDiagnostics {
  power_state: PowerState;
  uptime: number | null;
  memory_details: { maximum: number | null; used: number | null };
  cpu_details: Array<{ id: number | null; time: number | null; utilisation: number | null }>;
  nic_details: Array<{
    mac_address: string | null;
    rx_octets: number | null;
    rx_errors: number | null;
    rx_drop: number | null;
    rx_packets: number | null;
    rx_rate: number | null;
    tx_octets: number | null;
    tx_errors: number | null;
    tx_drop: number | null;
    tx_packets: number | null;
    tx_rate: number | null;
  }>;
  disk_details: Array<{
    read_bytes: number | null;
    read_requests: number | null;
    write_bytes: number | null;
    write_requests: number | null;
    errors_count: number | null;
  }>;
  /** Processes in the guest: the legacy reply carries it, Nova's object has no field for it. */
  processes?: number;
}
