/**
 * Per-release numbers a compute must speak exactly: one table per Nova
 * release this agent joins (Zed, 2025.1 Epoxy, 2026.1 Gazpacho), read from
 * that release's Nova source (nova/objects/service.py SERVICE_VERSION and
 * OLDEST_SUPPORTED_SERVICE_VERSION, ComputeManager.target, each object's
 * VERSION). A new release is one more entry here.
 */
export interface NovaRelease {
  /** The name operators use ([docker] nova_release): zed, 2025.1, 2026.1. */
  name: string;
  /** nova.objects.service.SERVICE_VERSION: what our Service record reports. */
  serviceVersion: number;
  /** SERVICE_VERSION_ALIASES[OLDEST_SUPPORTED_SERVICE_VERSION]: the oldest compute this release's control plane accepts. */
  oldestSupportedServiceVersion: number;
  /** Highest compute RPC API version served (ComputeManager.target). */
  computeRpcVersion: string;
  /** Conductor RPC API version we send. */
  conductorRpcVersion: string;
  /**
   * The conductor's compute_task API version of a reschedule's build_instances
   * (nova/conductor/rpcapi.py ComputeTaskAPI.build_instances: 1.19, with
   * request_spec and host_lists, in every release here).
   */
  computeTaskRpcVersion: string;
  /**
   * The topics the compute serves, each as `<topic>` and `<topic>.<host>` plus
   * its fanout: `compute-alt` from service version 71 (the second RPC server
   * nova 2026.1 routes external events, resize steps and console checks to).
   */
  computeTopics: readonly string[];
  /** Object name → version we send and expect. */
  objects: Readonly<Record<string, string>>;
  /**
   * What a subnet of the network_info model carries in its meta
   * (nova/network/neutron.py _get_subnets_from_port), which the release's
   * metadata API reads: `dhcp_server` (Zed: the DHCP port's address, else the
   * gateway when DHCP is on) or `enable_dhcp` (2025.1+, nova bug 2055245:
   * `enable_dhcp` always, `dhcp_server` only from a DHCP port).
   */
  subnetDhcpMeta: 'dhcp_server' | 'enable_dhcp';
}

const ZED_OBJECTS: Record<string, string> = {
  Instance: '2.7',
  InstanceList: '2.6',
  Service: '1.22',
  ServiceList: '1.19',
  ComputeNode: '1.19',
  ComputeNodeList: '1.17',
  ConsoleAuthToken: '1.1',
  Flavor: '1.2',
  ImageMeta: '1.8',
  ImageMetaProps: '1.34',
  BlockDeviceMapping: '1.21',
  BlockDeviceMappingList: '1.18',
  RequestSpec: '1.14',
  Selection: '1.1',
  InstanceAction: '1.2',
  InstanceActionEvent: '1.4',
  Migration: '1.7',
  MigrationList: '1.5',
  InstanceFault: '1.2',
  InstanceInfoCache: '1.5',
  InstanceExternalEvent: '1.5',
  NetworkRequest: '1.3',
  NetworkRequestList: '1.1',
  VirtualInterface: '1.3',
  VirtualInterfaceList: '1.0',
  SecurityGroup: '1.2',
  SecurityGroupList: '1.1',
  TagList: '1.1',
  Tag: '1.1',
  KeyPair: '1.4',
  KeyPairList: '1.3',
  EC2Ids: '1.0',
  HVSpec: '1.2',
  PciDevicePool: '1.1',
  PciDevicePoolList: '1.1',
  DeviceBus: '1.0',
  DeviceMetadata: '1.0',
  InstanceDeviceMetadata: '1.0',
  InstanceNUMACell: '1.6',
  InstanceNUMATopology: '1.3',
  InstancePCIRequest: '1.4',
  InstancePCIRequests: '1.1',
  MigrationContext: '1.2',
  PciDevice: '1.7',
  PciDeviceList: '1.3',
  Resource: '1.0',
  ResourceList: '1.0',
  ResourceMetadata: '1.0',
  TrustedCerts: '1.0',
  VirtCPUFeature: '1.0',
  VirtCPUModel: '1.0',
  VirtCPUTopology: '1.0',
};

/** Epoxy: Instance 2.8 (compute_id), Migration 1.8 (dest_compute_id), RequestSpec 1.15, shares. */
const EPOXY_OBJECTS: Record<string, string> = {
  ...ZED_OBJECTS,
  Instance: '2.8',
  Migration: '1.8',
  ImageMetaProps: '1.39',
  RequestSpec: '1.15',
  ConsoleAuthToken: '1.3',
  ShareMapping: '1.2',
  ShareMappingList: '1.0',
};

/** Gazpacho: only ImageMetaProps moved (sound/USB models, vTPM secret security). */
const GAZPACHO_OBJECTS: Record<string, string> = { ...EPOXY_OBJECTS, ImageMetaProps: '1.42' };

export const ZED: NovaRelease = {
  name: 'zed',
  serviceVersion: 64,
  oldestSupportedServiceVersion: 61, // 'Yoga'
  computeRpcVersion: '6.1',
  conductorRpcVersion: '3.0',
  computeTaskRpcVersion: '1.19',
  computeTopics: ['compute'],
  objects: ZED_OBJECTS,
  subnetDhcpMeta: 'dhcp_server',
};

/** The releases this agent can be, oldest first. */
export const RELEASES: readonly NovaRelease[] = [
  ZED,
  {
    name: '2025.1',
    serviceVersion: 68,
    oldestSupportedServiceVersion: 66, // 'Caracal'
    computeRpcVersion: '6.4',
    conductorRpcVersion: '3.0',
    computeTaskRpcVersion: '1.19',
    computeTopics: ['compute'],
    objects: EPOXY_OBJECTS,
    subnetDhcpMeta: 'enable_dhcp',
  },
  {
    name: '2026.1',
    serviceVersion: 72,
    oldestSupportedServiceVersion: 68, // 'Epoxy'
    computeRpcVersion: '6.5',
    conductorRpcVersion: '3.0',
    computeTaskRpcVersion: '1.19',
    computeTopics: ['compute', 'compute-alt'],
    objects: GAZPACHO_OBJECTS,
    subnetDhcpMeta: 'enable_dhcp',
  },
];

/** The table named `name` (zed, 2025.1, 2026.1), or undefined. */
export function releaseNamed(name: string): NovaRelease | undefined {
  return RELEASES.find((r) => r.name === name);
}

/**
 * Every Nova release since Zed as its control plane sees computes:
 * SERVICE_VERSION and the oldest compute service version it accepts
 * (nova/objects/service.py of each tag). Used to name a control plane from
 * its conductor's service version and to refuse what it would refuse.
 */
export const CONTROL_PLANES: ReadonlyArray<{ name: string; serviceVersion: number; oldestSupported: number }> = [
  { name: 'zed', serviceVersion: 64, oldestSupported: 61 },
  { name: '2023.1', serviceVersion: 66, oldestSupported: 61 },
  { name: '2023.2', serviceVersion: 66, oldestSupported: 66 },
  { name: '2024.1', serviceVersion: 67, oldestSupported: 66 },
  { name: '2024.2', serviceVersion: 67, oldestSupported: 66 },
  { name: '2025.1', serviceVersion: 68, oldestSupported: 66 },
  { name: '2025.2', serviceVersion: 70, oldestSupported: 68 },
  { name: '2026.1', serviceVersion: 72, oldestSupported: 68 },
];

/** True when object version `a` (major.minor) is at least `b`. */
export function versionAtLeast(a: string, b: string): boolean {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am !== bm ? am > bm : an >= bn;
}

/** Objects reachable from each class, for the `object_versions` manifest (obj_tree_get_versions). */
const TREES: Record<string, readonly string[]> = {
  Instance: [
    'Instance',
    'ComputeNode',
    'DeviceBus',
    'DeviceMetadata',
    'EC2Ids',
    'Flavor',
    'HVSpec',
    'InstanceDeviceMetadata',
    'InstanceFault',
    'InstanceInfoCache',
    'InstanceNUMACell',
    'InstanceNUMATopology',
    'InstancePCIRequest',
    'InstancePCIRequests',
    'KeyPair',
    'KeyPairList',
    'MigrationContext',
    'PciDevice',
    'PciDeviceList',
    'PciDevicePool',
    'PciDevicePoolList',
    'Resource',
    'ResourceList',
    'ResourceMetadata',
    'SecurityGroup',
    'SecurityGroupList',
    'Service',
    'ServiceList',
    'Tag',
    'TagList',
    'TrustedCerts',
    'VirtCPUFeature',
    'VirtCPUModel',
    'VirtCPUTopology',
  ],
  Service: ['Service', 'ComputeNode', 'HVSpec', 'PciDevicePool', 'PciDevicePoolList'],
  ComputeNode: ['ComputeNode', 'HVSpec', 'PciDevicePool', 'PciDevicePoolList'],
  InstanceActionEvent: ['InstanceActionEvent'],
  Migration: ['Migration'],
  MigrationContext: [
    'MigrationContext',
    'InstanceNUMACell',
    'InstanceNUMATopology',
    'InstancePCIRequest',
    'InstancePCIRequests',
    'PciDevice',
    'PciDeviceList',
    'Resource',
    'ResourceList',
    'ResourceMetadata',
    'VirtCPUTopology',
  ],
  InstanceFault: ['InstanceFault'],
};
TREES.InstanceList = ['InstanceList', ...(TREES.Instance ?? [])];
TREES.BlockDeviceMappingList = ['BlockDeviceMapping', 'BlockDeviceMappingList', ...(TREES.Instance ?? [])];

/** The manifest sent with object_class_action_versions for `objname`. */
export function objectManifest(release: NovaRelease, objname: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of TREES[objname] ?? [objname]) {
    const v = release.objects[name];
    if (v) out[name] = v;
  }
  return out;
}
