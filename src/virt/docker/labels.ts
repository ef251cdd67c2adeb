/**
 * Labels on every container the Docker driver creates. The driver finds its
 * containers by label (one filtered list call), never by name pattern, and
 * each agent sees only containers labelled with its own compute `host`, so
 * several agents can share one dockerd.
 */
export const LABEL_PREFIX = 'org.openstack.nova.';

export const LABELS = {
  /** Always MANAGED_BY_VALUE. */
  managedBy: `${LABEL_PREFIX}managed-by`,
  instanceUuid: `${LABEL_PREFIX}instance-uuid`,
  /** Nova's display name at boot (informational: `nova-docker status`, `docker ps`; a rename does not follow). */
  displayName: `${LABEL_PREFIX}display-name`,
  projectId: `${LABEL_PREFIX}project-id`,
  userId: `${LABEL_PREFIX}user-id`,
  /** The compute host (nova service host) that owns the container. */
  host: `${LABEL_PREFIX}host`,
  node: `${LABEL_PREFIX}node`,
  /** Flavor name. */
  flavor: `${LABEL_PREFIX}flavor`,
  flavorId: `${LABEL_PREFIX}flavor-id`,
  imageId: `${LABEL_PREFIX}image-id`,
  /** Flavor sizes, so usage is summed from one list call without inspecting each container. */
  memoryMb: `${LABEL_PREFIX}memory-mb`,
  vcpus: `${LABEL_PREFIX}vcpus`,
  rootGb: `${LABEL_PREFIX}root-gb`,
  ephemeralGb: `${LABEL_PREFIX}ephemeral-gb`,
  /**
   * Set only on an instance's helper containers (ROLE_NET: its netns
   * holder); the instance's own container has none. Helpers are not
   * instances: listings, events and usage skip them.
   */
  role: `${LABEL_PREFIX}role`,
} as const;

/** LABELS.role of the netns holder container. */
export const ROLE_NET = 'net';

export const MANAGED_BY_VALUE = 'nova-docker';

/** Container name of an instance. */
export function containerName(uuid: string): string {
  return `nova-${uuid}`;
}

/** Container name of an instance's netns holder. */
export function holderName(uuid: string): string {
  return `nova-${uuid}-net`;
}

/** The `label` filter selecting the containers of one compute host. */
export function hostLabelFilter(host: string, extra: Record<string, string> = {}): string[] {
  return [
    `${LABELS.managedBy}=${MANAGED_BY_VALUE}`,
    `${LABELS.host}=${host}`,
    ...Object.entries(extra).map(([k, v]) => `${k}=${v}`),
  ];
}

/**
 * Whether a container's labels say it is the instance container of `host`
 * (and, if given, of instance `uuid`); helper containers (LABELS.role) are not.
 */
export function ownedBy(labels: Record<string, string> | null | undefined, host: string, uuid?: string): boolean {
  return ownedWithRole(labels, host, undefined, uuid);
}

/** Whether a container is the `role` helper (undefined: the instance container) of `host` (and `uuid`). */
export function ownedWithRole(
  labels: Record<string, string> | null | undefined,
  host: string,
  role: string | undefined,
  uuid?: string,
): boolean {
  if (!labels) return false;
  if (labels[LABELS.managedBy] !== MANAGED_BY_VALUE || labels[LABELS.host] !== host) return false;
  if (labels[LABELS.role] !== role) return false;
  return uuid === undefined || labels[LABELS.instanceUuid] === uuid;
}
