/**
 * Per-release numbers a compute must speak exactly (protocol ref §2.4, §3.1,
 * §5.3). A later release is one more entry here plus a recorded trace; Zed is
 * the one tested.
 */
export interface NovaRelease {
  name: string;
  /** nova.objects.service.SERVICE_VERSION */
  serviceVersion: number;
  /** Highest compute RPC API version served (ComputeManager.target). */
  computeRpcVersion: string;
  /** Conductor RPC API version we send. */
  conductorRpcVersion: string;
  /** Object name → version we send and expect. */
  objects: Readonly<Record<string, string>>;
}

const ZED_OBJECTS: Record<string, string> = {
  Instance: '2.7',
  InstanceList: '2.6',
  Service: '1.22',
  ServiceList: '1.19',
  ComputeNode: '1.19',
  ComputeNodeList: '1.17',
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

export const RELEASES: Readonly<Record<string, NovaRelease>> = {
  zed: {
    name: 'zed',
    serviceVersion: 64,
    computeRpcVersion: '6.1',
    conductorRpcVersion: '3.0',
    objects: ZED_OBJECTS,
  },
};

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
