/**
 * The resource tracker's arithmetic, pure, as Zed's nova does it (python3-nova
 * 26.2.2, Debian bookworm):
 *
 * - placement inventories: the drivers' update_provider_tree
 *   (nova/virt/fake.py, nova/virt/libvirt/driver.py) with
 *   ComputeDriver._get_allocation_ratios and
 *   _get_reserved_host_disk_gb_from_config (nova/virt/driver.py);
 * - ComputeNode usage fields: ResourceTracker._update_usage_from_instances,
 *   _update_usage_from_instance and _update_usage
 *   (nova/compute/resource_tracker.py) with nova/compute/stats.py;
 * - allocation ratios of the ComputeNode: ResourceTracker._copy_resources;
 * - traits: ComputeDriver.capabilities_as_traits / CAPABILITY_TRAITS_MAP
 *   (nova/virt/driver.py) and ResourceTracker._get_traits.
 */
import type { InventoryRecord } from '../clients/placement/types.js';

/** Host totals from the driver (get_available_resource). */
export interface HostResources {
  vcpus: number;
  memory_mb: number;
  local_gb: number;
}

/** The nova.conf [DEFAULT] options the tracker reads. Ratios: unset = undefined or null. */
export interface TrackerOptions {
  cpu_allocation_ratio?: number | null | undefined;
  ram_allocation_ratio?: number | null | undefined;
  disk_allocation_ratio?: number | null | undefined;
  initial_cpu_allocation_ratio: number;
  initial_ram_allocation_ratio: number;
  initial_disk_allocation_ratio: number;
  reserved_host_memory_mb: number;
  reserved_host_disk_mb: number;
  reserved_host_cpus: number;
}

/** Nova's Zed defaults (nova/conf/compute.py; src/config/options.ts has the same). */
export const ZED_TRACKER_DEFAULTS: Readonly<TrackerOptions> = Object.freeze({
  initial_cpu_allocation_ratio: 16.0,
  initial_ram_allocation_ratio: 1.5,
  initial_disk_allocation_ratio: 1.0,
  reserved_host_memory_mb: 512,
  reserved_host_disk_mb: 0,
  reserved_host_cpus: 0,
});

export type StandardResourceClass = 'VCPU' | 'MEMORY_MB' | 'DISK_GB';
export type NodeInventories = Partial<Record<StandardResourceClass, InventoryRecord>>;

/** Python's int() of a float: truncation toward zero (what IntegerField.coerce does). */
function pyInt(n: number): number {
  return Math.trunc(n);
}

/** nova.compute.utils.convert_mb_to_ceil_gb: 0 for 0, else ceil(mb / 1024). */
export function convertMbToCeilGb(mb: number): number {
  return mb ? Math.ceil(mb / 1024) : 0;
}

const RATIO_KEYS = [
  ['VCPU', 'cpu_allocation_ratio', 'initial_cpu_allocation_ratio'],
  ['MEMORY_MB', 'ram_allocation_ratio', 'initial_ram_allocation_ratio'],
  ['DISK_GB', 'disk_allocation_ratio', 'initial_disk_allocation_ratio'],
] as const;

/**
 * ComputeDriver._get_allocation_ratios: per class, `[DEFAULT] *_allocation_ratio`
 * when set (Python truthiness: null and 0.0 both count as unset), else the
 * ratio already in placement's inventory for that class, else
 * `initial_*_allocation_ratio`.
 */
export function allocationRatios(
  opts: TrackerOptions,
  existing: Readonly<Record<string, Pick<InventoryRecord, 'allocation_ratio'>>> = {},
): Record<StandardResourceClass, number> {
  const out = {} as Record<StandardResourceClass, number>;
  for (const [rc, conf, initial] of RATIO_KEYS) {
    const set = opts[conf];
    const cur = existing[rc];
    out[rc] = set ? set : cur ? cur.allocation_ratio : opts[initial];
  }
  return out;
}

/**
 * The compute node provider's inventories, as the libvirt driver reports
 * them (the fake driver does the same, minus the total=0 guard): VCPU
 * reserved reserved_host_cpus, MEMORY_MB reserved reserved_host_memory_mb,
 * DISK_GB reserved ceil(reserved_host_disk_mb / 1024); min_unit 1,
 * max_unit = total, step_size 1; a class whose total is 0 is left out
 * (placement refuses total=0). `existing` is the provider's current
 * inventory (for the ratio precedence); omit it for a new provider.
 */
export function computeInventories(
  resources: HostResources,
  opts: TrackerOptions,
  existing?: Readonly<Record<string, Pick<InventoryRecord, 'allocation_ratio'>>>,
): NodeInventories {
  const ratios = allocationRatios(opts, existing);
  const reserved: Record<StandardResourceClass, number> = {
    VCPU: opts.reserved_host_cpus,
    MEMORY_MB: opts.reserved_host_memory_mb,
    DISK_GB: convertMbToCeilGb(opts.reserved_host_disk_mb),
  };
  const totals: Record<StandardResourceClass, number> = {
    VCPU: pyInt(resources.vcpus),
    MEMORY_MB: pyInt(resources.memory_mb),
    DISK_GB: pyInt(resources.local_gb),
  };
  const out: NodeInventories = {};
  for (const rc of ['VCPU', 'MEMORY_MB', 'DISK_GB'] as const) {
    const total = totals[rc];
    if (!total) continue;
    out[rc] = {
      total,
      min_unit: 1,
      max_unit: total,
      step_size: 1,
      allocation_ratio: ratios[rc],
      reserved: reserved[rc],
    };
  }
  return out;
}

/** What the tracker reads from one instance of the node (Instance fields and its flavor). */
export interface InstanceUsage {
  uuid: string;
  vm_state: string;
  task_state?: string | null | undefined;
  os_type?: string | null | undefined;
  project_id?: string | null | undefined;
  flavor: { memory_mb: number; vcpus: number; root_gb: number; ephemeral_gb: number; swap: number };
  /** Boot from volume: the root disk is not local (root_gb counts 0). */
  is_volume_backed?: boolean | undefined;
}

export interface ComputeNodeUsage {
  vcpus: number;
  memory_mb: number;
  local_gb: number;
  vcpus_used: number;
  memory_mb_used: number;
  local_gb_used: number;
  free_ram_mb: number;
  free_disk_gb: number;
  running_vms: number;
  current_workload: number;
  /** ComputeNode.stats (DictOfNullableStringsField: every value a string), in nova's key order. */
  stats: Record<string, string>;
}

/** vm_states.allow_resource_removal: instances whose resources are not counted. */
export function allowResourceRemoval(vmState: string, taskState?: string | null): boolean {
  return vmState === 'deleted' || (vmState === 'shelved_offloaded' && taskState !== 'spawning');
}

/**
 * The instances _update_usage_from_instances counts (ComputeNode.running_vms
 * is their number): those whose resources are not being removed
 * (allowResourceRemoval), once per uuid.
 */
export function countedInstances<T extends Pick<InstanceUsage, 'uuid' | 'vm_state' | 'task_state'>>(
  instances: readonly T[],
): T[] {
  const seen = new Set<string>();
  return instances.filter((inst) => {
    if (allowResourceRemoval(inst.vm_state, inst.task_state ?? null) || seen.has(inst.uuid)) return false;
    seen.add(inst.uuid);
    return true;
  });
}

/** Stats.io_workload: vm building + these task states. */
const IO_TASK_STATES = [
  'resize_migrating',
  'rebuilding',
  'resize_prep',
  'image_snapshot',
  'image_backup',
  'rescuing',
  'unshelving',
];

/** What Stats remembers of a tracked instance (_extract_state_from_instance). */
interface TrackedState {
  vm_state: string;
  task_state: string;
  os_type: string;
  project_id: string;
}

/** Python's %s of an optional string: None for null/undefined. */
function pyStr(v: string | null | undefined): string {
  return v ?? 'None';
}

/**
 * nova/compute/stats.py Stats: the ComputeNode `stats` dict the scheduler
 * reads (num_instances, num_vm_<state>, num_task_<state>,
 * num_os_type_<type>, num_proj_<project>, io_workload, failed_builds), kept
 * incrementally as instances change. A key once set stays (at 0) until the
 * next clear, as in Nova's dict; insertion order is the dict's.
 */
export class Stats {
  private readonly values = new Map<string, number | string>();
  private readonly states = new Map<string, TrackedState>();

  /** clear(): every key and tracked state gone. */
  clear(): void {
    this.values.clear();
    this.states.clear();
  }

  /** digest_stats: what the driver reports (get_available_resource's `stats`), as it is. */
  digest(stats: Readonly<Record<string, string>> | undefined): void {
    for (const [k, v] of Object.entries(stats ?? {})) this.values.set(k, v);
  }

  get(key: string): number {
    const v = this.values.get(key);
    return typeof v === 'number' ? v : 0;
  }

  set(key: string, value: number): void {
    this.values.set(key, value);
  }

  get numInstances(): number {
    return this.get('num_instances');
  }

  private inc(key: string, by = 1): void {
    this.values.set(key, this.get(key) + by);
  }

  /** update_stats_for_instance: the instance's previous state out, its current one in (unless removed). */
  updateForInstance(
    inst: Pick<InstanceUsage, 'uuid' | 'vm_state' | 'task_state' | 'os_type' | 'project_id'>,
    isRemoved: boolean,
  ): void {
    const old = this.states.get(inst.uuid);
    if (old) {
      this.inc(`num_vm_${old.vm_state}`, -1);
      this.inc(`num_task_${old.task_state}`, -1);
      this.inc(`num_os_type_${old.os_type}`, -1);
      this.inc(`num_proj_${old.project_id}`, -1);
    } else {
      this.inc('num_instances');
    }
    const now: TrackedState = {
      vm_state: inst.vm_state,
      task_state: pyStr(inst.task_state),
      os_type: pyStr(inst.os_type),
      project_id: pyStr(inst.project_id),
    };
    this.states.set(inst.uuid, now);
    if (isRemoved || allowResourceRemoval(inst.vm_state, inst.task_state ?? null)) {
      this.inc('num_instances', -1);
      this.states.delete(inst.uuid);
    } else {
      this.inc(`num_vm_${now.vm_state}`);
      this.inc(`num_task_${now.task_state}`);
      this.inc(`num_os_type_${now.os_type}`);
      this.inc(`num_proj_${now.project_id}`);
    }
    this.values.set('io_workload', this.ioWorkload());
  }

  /** io_workload: building instances plus the I/O-heavy tasks (IoOpsFilter, IoOpsWeigher). */
  ioWorkload(): number {
    let n = this.get('num_vm_building');
    for (const t of IO_TASK_STATES) n += this.get(`num_task_${t}`);
    return n;
  }

  /** calculate_workload: every num_task_* but num_task_None. */
  calculateWorkload(): number {
    let workload = 0;
    for (const [k, v] of this.values) {
      if (k.startsWith('num_task') && !k.endsWith('None') && typeof v === 'number') workload += v;
    }
    return workload;
  }

  buildFailed(): void {
    this.inc('failed_builds');
  }

  buildSucceeded(): void {
    this.values.set('failed_builds', 0);
  }

  /** ComputeNode.stats: DictOfNullableStringsField, every value a string, in the dict's order. */
  toRecord(): Record<string, string> {
    return Object.fromEntries([...this.values].map(([k, v]) => [k, String(v)]));
  }
}

/**
 * nova/compute/resource_tracker.py ResourceTracker for one node, without
 * I/O: the usage fields of the ComputeNode (vcpus_used, memory_mb_used,
 * local_gb_used, free_*, running_vms, current_workload) and its Stats, as
 * the periodic update (updateAvailableResource) computes them from the
 * node's instances and as claims (instanceClaim, abortInstanceClaim) and
 * instance changes (updateUsage) move them in between. The manager writes
 * `view()` to the ComputeNode after each.
 */
export class ResourceTracker {
  readonly stats = new Stats();
  /** tracked_instances: uuid → the usage it added (what a removal takes back). */
  private readonly tracked = new Map<string, InstanceUsage>();
  private totals: { vcpus: number; memory_mb: number; local_gb: number } | undefined;
  private used = { vcpus: 0, memory_mb: 0, local_gb: 0 };
  private runningVms = 0;
  private currentWorkload = 0;

  constructor(
    private readonly opts: Pick<
      TrackerOptions,
      'reserved_host_memory_mb' | 'reserved_host_disk_mb' | 'reserved_host_cpus'
    >,
  ) {}

  /** False until the first periodic update (Nova's `disabled(nodename)`: claims then change nothing). */
  get ready(): boolean {
    return this.totals !== undefined;
  }

  isTracked(uuid: string): boolean {
    return this.tracked.has(uuid);
  }

  /**
   * _update_available_resource: _copy_resources (stats cleared but for
   * failed_builds, then the driver's), then _update_usage_from_instances
   * (usage from the reserved amounts, each instance not being removed added
   * once).
   */
  updateAvailableResource(
    resources: HostResources,
    instances: readonly InstanceUsage[],
    driverStats?: Readonly<Record<string, string>>,
  ): ComputeNodeUsage {
    const failed = this.stats.get('failed_builds');
    this.stats.clear();
    this.stats.set('failed_builds', failed);
    this.stats.digest(driverStats);
    this.totals = {
      vcpus: pyInt(resources.vcpus),
      memory_mb: pyInt(resources.memory_mb),
      local_gb: pyInt(resources.local_gb),
    };
    this.tracked.clear();
    this.used = {
      local_gb: pyInt(this.opts.reserved_host_disk_mb / 1024),
      memory_mb: pyInt(this.opts.reserved_host_memory_mb),
      vcpus: pyInt(this.opts.reserved_host_cpus),
    };
    this.currentWorkload = 0;
    this.runningVms = 0;
    for (const inst of instances) {
      if (!allowResourceRemoval(inst.vm_state, inst.task_state ?? null)) this.updateUsageFromInstance(inst);
    }
    return this.view();
  }

  /** instance_claim: the instance's usage and stats added (undefined before the first periodic update). */
  instanceClaim(inst: InstanceUsage): ComputeNodeUsage | undefined {
    if (!this.ready) return undefined;
    this.updateUsageFromInstance(inst);
    return this.view();
  }

  /** abort_instance_claim: a failed build's usage and stats taken back. */
  abortInstanceClaim(inst: InstanceUsage): ComputeNodeUsage | undefined {
    if (!this.ready) return undefined;
    this.updateUsageFromInstance(inst, true);
    return this.view();
  }

  /** update_usage: an instance that changed state (deleted, offloaded, …); only one this node tracks. */
  updateUsage(inst: InstanceUsage): ComputeNodeUsage | undefined {
    if (!this.ready || !this.tracked.has(inst.uuid)) return undefined;
    this.updateUsageFromInstance(inst);
    return this.view();
  }

  buildFailed(): void {
    this.stats.buildFailed();
  }

  buildSucceeded(): void {
    this.stats.buildSucceeded();
  }

  /** _update_usage_from_instance */
  private updateUsageFromInstance(inst: InstanceUsage, isRemoved = false): void {
    const isNew = !this.tracked.has(inst.uuid);
    const isRemovedInstance = !isNew && (isRemoved || allowResourceRemoval(inst.vm_state, inst.task_state ?? null));
    // a removal takes back what the claim added (Nova reads the same flavor off the instance)
    const counted = this.tracked.get(inst.uuid) ?? inst;
    if (isNew) this.tracked.set(inst.uuid, inst);
    if (isRemovedInstance) this.tracked.delete(inst.uuid);
    this.stats.updateForInstance(inst, isRemovedInstance);
    if (isNew) this.updateUsageTotals(inst, 1);
    else if (isRemovedInstance) this.updateUsageTotals(counted, -1);
    this.currentWorkload = this.stats.calculateWorkload();
  }

  /** _update_usage: each field an IntegerField, so int() at every step. */
  private updateUsageTotals(inst: InstanceUsage, sign: 1 | -1): void {
    const f = inst.flavor;
    this.used.memory_mb = pyInt(this.used.memory_mb + sign * f.memory_mb);
    this.used.local_gb = pyInt(this.used.local_gb + sign * (inst.is_volume_backed ? 0 : f.root_gb));
    this.used.local_gb = pyInt(this.used.local_gb + sign * f.ephemeral_gb);
    this.used.local_gb = pyInt(this.used.local_gb + (sign * f.swap) / 1024);
    this.used.vcpus = pyInt(this.used.vcpus + sign * f.vcpus);
    this.runningVms = this.stats.numInstances;
  }

  /** The ComputeNode usage fields and stats as they stand. */
  view(): ComputeNodeUsage {
    const t = this.totals ?? { vcpus: 0, memory_mb: 0, local_gb: 0 };
    return {
      vcpus: t.vcpus,
      memory_mb: t.memory_mb,
      local_gb: t.local_gb,
      vcpus_used: this.used.vcpus,
      memory_mb_used: this.used.memory_mb,
      local_gb_used: this.used.local_gb,
      free_ram_mb: t.memory_mb - this.used.memory_mb,
      free_disk_gb: t.local_gb - this.used.local_gb,
      running_vms: this.runningVms,
      current_workload: this.currentWorkload,
      stats: this.stats.toRecord(),
    };
  }
}

/**
 * The ComputeNode usage fields after a periodic update_available_resource
 * (ResourceTracker.updateAvailableResource on a fresh tracker):
 * usage starts at the reserved amounts (local_gb_used = int(reserved_host_disk_mb / 1024),
 * memory_mb_used = reserved_host_memory_mb, vcpus_used = reserved_host_cpus),
 * then each instance not being removed (allowResourceRemoval), counted once
 * per uuid, adds its flavor: memory_mb, vcpus, root_gb (0 when volume-backed),
 * ephemeral_gb and swap / 1024, each step truncated to an int as the
 * IntegerField does. free_* = total − used (may be negative). Migrations are
 * not counted (no resize support).
 */
export function computeNodeUsage(
  resources: HostResources,
  instances: readonly InstanceUsage[],
  opts: Pick<TrackerOptions, 'reserved_host_memory_mb' | 'reserved_host_disk_mb' | 'reserved_host_cpus'>,
  failedBuilds = 0,
): ComputeNodeUsage {
  const rt = new ResourceTracker(opts);
  rt.stats.set('failed_builds', failedBuilds);
  return rt.updateAvailableResource(resources, instances);
}

/**
 * ComputeNode cpu/ram/disk_allocation_ratio (ResourceTracker._copy_resources):
 * a new node (`current` undefined) takes initial_*; an existing one takes the
 * configured *_allocation_ratio when set (not null and not 0.0), else keeps
 * its current value.
 */
export function nodeAllocationRatios(
  opts: TrackerOptions,
  current?: { cpu_allocation_ratio: number; ram_allocation_ratio: number; disk_allocation_ratio: number },
): { cpu_allocation_ratio: number; ram_allocation_ratio: number; disk_allocation_ratio: number } {
  const pick = (conf: number | null | undefined, initial: number, cur: number | undefined): number => {
    const v = current ? conf : initial;
    return v ? v : (cur ?? initial);
  };
  return {
    cpu_allocation_ratio: pick(
      opts.cpu_allocation_ratio,
      opts.initial_cpu_allocation_ratio,
      current?.cpu_allocation_ratio,
    ),
    ram_allocation_ratio: pick(
      opts.ram_allocation_ratio,
      opts.initial_ram_allocation_ratio,
      current?.ram_allocation_ratio,
    ),
    disk_allocation_ratio: pick(
      opts.disk_allocation_ratio,
      opts.initial_disk_allocation_ratio,
      current?.disk_allocation_ratio,
    ),
  };
}

/** nova/virt/driver.py CAPABILITY_TRAITS_MAP (Zed): capability → os-traits trait. */
export const CAPABILITY_TRAITS_MAP: Readonly<Record<string, string>> = Object.freeze({
  supports_attach_interface: 'COMPUTE_NET_ATTACH_INTERFACE',
  supports_device_tagging: 'COMPUTE_DEVICE_TAGGING',
  supports_tagged_attach_interface: 'COMPUTE_NET_ATTACH_INTERFACE_WITH_TAG',
  supports_tagged_attach_volume: 'COMPUTE_VOLUME_ATTACH_WITH_TAG',
  supports_extend_volume: 'COMPUTE_VOLUME_EXTEND',
  supports_multiattach: 'COMPUTE_VOLUME_MULTI_ATTACH',
  supports_trusted_certs: 'COMPUTE_TRUSTED_CERTS',
  supports_accelerators: 'COMPUTE_ACCELERATORS',
  supports_image_type_aki: 'COMPUTE_IMAGE_TYPE_AKI',
  supports_image_type_ami: 'COMPUTE_IMAGE_TYPE_AMI',
  supports_image_type_ari: 'COMPUTE_IMAGE_TYPE_ARI',
  supports_image_type_iso: 'COMPUTE_IMAGE_TYPE_ISO',
  supports_image_type_qcow2: 'COMPUTE_IMAGE_TYPE_QCOW2',
  supports_image_type_raw: 'COMPUTE_IMAGE_TYPE_RAW',
  supports_image_type_vdi: 'COMPUTE_IMAGE_TYPE_VDI',
  supports_image_type_vhd: 'COMPUTE_IMAGE_TYPE_VHD',
  supports_image_type_vhdx: 'COMPUTE_IMAGE_TYPE_VHDX',
  supports_image_type_vmdk: 'COMPUTE_IMAGE_TYPE_VMDK',
  supports_image_type_ploop: 'COMPUTE_IMAGE_TYPE_PLOOP',
  supports_migrate_to_same_host: 'COMPUTE_SAME_HOST_COLD_MIGRATE',
  supports_bfv_rescue: 'COMPUTE_RESCUE_BFV',
  supports_secure_boot: 'COMPUTE_SECURITY_UEFI_SECURE_BOOT',
  supports_socket_pci_numa_affinity: 'COMPUTE_SOCKET_PCI_NUMA_AFFINITY',
  supports_remote_managed_ports: 'COMPUTE_REMOTE_MANAGED_PORTS',
  supports_ephemeral_encryption: 'COMPUTE_EPHEMERAL_ENCRYPTION',
  supports_ephemeral_encryption_luks: 'COMPUTE_EPHEMERAL_ENCRYPTION_LUKS',
  supports_ephemeral_encryption_plain: 'COMPUTE_EPHEMERAL_ENCRYPTION_PLAIN',
});

export const COMPUTE_NODE_TRAIT = 'COMPUTE_NODE';
export const COMPUTE_STATUS_DISABLED_TRAIT = 'COMPUTE_STATUS_DISABLED';

export interface TraitOptions {
  /** `[compute] image_type_exclude_list`: image types (raw, qcow2, …) reported as unsupported. */
  imageTypeExcludeList?: readonly string[] | undefined;
}

/**
 * ComputeDriver.capabilities_as_traits: every mapped capability → supported?
 * (an image type on the exclude list is unsupported). Capabilities missing
 * from `capabilities` count as false (the base driver's default).
 * COMPUTE_REMOTE_MANAGED_PORTS is never supported here: nova also requires
 * remote-managed PCI devices, which a container host has not.
 */
export function capabilitiesAsTraits(
  capabilities: Readonly<Record<string, boolean>>,
  opts: TraitOptions = {},
): Map<string, boolean> {
  const exclude = new Set(opts.imageTypeExcludeList ?? []);
  const out = new Map<string, boolean>();
  for (const [cap, trait] of Object.entries(CAPABILITY_TRAITS_MAP)) {
    let supported = capabilities[cap] === true;
    if (cap.startsWith('supports_image_type_')) {
      supported &&= !exclude.has(cap.slice('supports_image_type_'.length));
    }
    if (trait === 'COMPUTE_REMOTE_MANAGED_PORTS') supported = false;
    out.set(trait, supported);
  }
  return out;
}

/**
 * The traits the compute node provider gets from this service for a new
 * provider (or one without external traits): COMPUTE_NODE, the supported
 * capability traits (in CAPABILITY_TRAITS_MAP order), and
 * COMPUTE_STATUS_DISABLED when the service is disabled.
 */
export function driverTraits(
  capabilities: Readonly<Record<string, boolean>>,
  opts: TraitOptions & { disabled?: boolean | undefined } = {},
): string[] {
  const out = [COMPUTE_NODE_TRAIT];
  for (const [trait, supported] of capabilitiesAsTraits(capabilities, opts)) if (supported) out.push(trait);
  if (opts.disabled) out.push(COMPUTE_STATUS_DISABLED_TRAIT);
  return out;
}

/**
 * ResourceTracker._get_traits: the provider's traits after a sync, from
 * those it has in placement now. Traits set by others (e.g. CUSTOM_* by an
 * operator) stay; capability traits are added or removed to match the
 * driver; COMPUTE_NODE is always there; COMPUTE_STATUS_DISABLED follows
 * `disabled` (left as is when `disabled` is undefined: nova does that when
 * the service record is missing).
 */
export function mergeProviderTraits(
  current: readonly string[],
  capabilities: Readonly<Record<string, boolean>>,
  opts: TraitOptions & { disabled?: boolean | undefined } = {},
): string[] {
  const traits = new Set(current);
  for (const [trait, supported] of capabilitiesAsTraits(capabilities, opts)) {
    if (supported) traits.add(trait);
    else traits.delete(trait);
  }
  traits.add(COMPUTE_NODE_TRAIT);
  if (opts.disabled === true) traits.add(COMPUTE_STATUS_DISABLED_TRAIT);
  else if (opts.disabled === false) traits.delete(COMPUTE_STATUS_DISABLED_TRAIT);
  return [...traits];
}
