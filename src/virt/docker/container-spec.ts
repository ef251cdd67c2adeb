/**
 * Instance + flavor + image + driver options → the body of POST
 * /containers/create. Pure: no I/O, same input same output. Mapping documented
 * in docs/docker-driver.md.
 */
import type { DockerContainerCreateBody, DockerHostConfig, DockerResources } from '../../clients/docker/types.js';
import type { Flavor, ImageMeta, InstanceSpec } from '../types.js';
import { LABELS, MANAGED_BY_VALUE, ROLE_NET, containerName, holderName } from './labels.js';

const MiB = 1024 * 1024;

/** The options of the container spec (a subset of DockerDriverOptions, defaults applied). */
export interface ContainerSpecOptions {
  /** Compute host that owns the container (label). */
  host: string;
  privileged: boolean;
  /** Capabilities added on top of Docker's default set. */
  capAdd: readonly string[];
  /** Honour the flavor extra spec `docker:binds`. */
  allowHostMounts: boolean;
  /** Also cap CPU time at `vcpus` CPUs (NanoCpus), not only weight it (CpuShares). */
  cpuHardLimit: boolean;
  /** Max processes in the container; 0 = unlimited. */
  pidsLimit: number;
  /** json-file log rotation size in bytes. */
  logMaxBytes: number;
  /** Run docker-init as PID 1 (reaps zombies, forwards SIGTERM). */
  init: boolean;
  /** Added verbatim (e.g. a test-run label). Cannot override the driver's own labels. */
  extraLabels: Readonly<Record<string, string>>;
}

export interface ContainerSpecInput {
  instance: InstanceSpec;
  image: ImageMeta;
  /** The local docker reference the ImageResolver returned. */
  dockerRef: string;
  /**
   * The instance's network, when it has VIFs: the container joins the
   * namespace of its netns holder (NetworkMode container:<holder>), whose
   * hostname it gets; `resolvConf` and `hosts` are files of the driver
   * bind-mounted over the Engine's own, so they can be rewritten in place.
   * Absent: NetworkMode none (--nic none), the hostname set here.
   */
  network?: { holderId: string; resolvConf?: string; hosts?: string };
  options: ContainerSpecOptions;
}

export interface ContainerSpec {
  name: string;
  body: DockerContainerCreateBody;
}

/** Thrown for an instance the options do not allow (e.g. binds without allowHostMounts). */
export class ContainerSpecError extends Error {}

export const META_ENV_PREFIX = 'NOVA_META_';

/**
 * Metadata key → env name: upper-cased, every character outside [A-Z0-9_]
 * becomes `_`, prefixed NOVA_META_ (`app-mode` → NOVA_META_APP_MODE). Keys are
 * taken in sorted order; when two keys map to the same name the later wins.
 * NUL characters are dropped from values.
 */
export function metadataEnv(metadata: Readonly<Record<string, string>>): string[] {
  const env = new Map<string, string>();
  for (const key of Object.keys(metadata).sort()) {
    const name = META_ENV_PREFIX + key.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
    env.set(name, String(metadata[key] ?? '').replace(/\0/g, ''));
  }
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** RFC 1123 label-ish hostname from Nova's, at most 63 characters; undefined when nothing usable. */
export function containerHostname(instance: InstanceSpec): string | undefined {
  const h = (instance.hostname ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9.-]/g, '-')
    .slice(0, 63)
    .replace(/^[-.]+|[-.]+$/g, '');
  return h || undefined;
}

/** Flavor extra spec `docker:binds`: comma-separated `/host/path:/container/path[:ro|rw]`. */
export function parseBinds(spec: string | undefined): string[] {
  if (!spec?.trim()) return [];
  return spec.split(',').map((raw) => {
    const b = raw.trim();
    const parts = b.split(':');
    const [src, dst, mode] = parts;
    if (
      parts.length < 2 ||
      parts.length > 3 ||
      !src?.startsWith('/') ||
      !dst?.startsWith('/') ||
      (mode !== undefined && mode !== 'ro' && mode !== 'rw')
    ) {
      throw new ContainerSpecError(`invalid docker:binds entry ${JSON.stringify(b)}`);
    }
    return b;
  });
}

/**
 * The flavor's share of the host, as Engine resource limits: the same body
 * goes into create (HostConfig) and into a resize's container update.
 */
export function flavorResources(flavor: Flavor, options: Pick<ContainerSpecOptions, 'cpuHardLimit'>): DockerResources {
  const memory = flavor.memory_mb * MiB;
  const r: DockerResources = {
    Memory: memory,
    // Equal to Memory: no swap on top of the flavor's RAM (flavor.swap is not used).
    MemorySwap: memory,
    CpuShares: flavor.vcpus * 1024,
  };
  if (options.cpuHardLimit) r.NanoCpus = flavor.vcpus * 1e9;
  return r;
}

export function buildContainerSpec(input: ContainerSpecInput): ContainerSpec {
  const { instance, image, options } = input;
  const flavor = instance.flavor;

  const binds = parseBinds(flavor.extra_specs['docker:binds']);
  if (binds.length && !options.allowHostMounts) {
    throw new ContainerSpecError('flavor asks for host mounts (docker:binds) but the driver does not allow them');
  }

  const labels: Record<string, string> = {
    ...options.extraLabels,
    [LABELS.managedBy]: MANAGED_BY_VALUE,
    [LABELS.instanceUuid]: instance.uuid,
    [LABELS.host]: options.host,
    [LABELS.flavor]: flavor.name,
    [LABELS.flavorId]: flavor.flavorid,
    [LABELS.imageId]: image.id,
    [LABELS.memoryMb]: String(flavor.memory_mb),
    [LABELS.vcpus]: String(flavor.vcpus),
    [LABELS.rootGb]: String(flavor.root_gb),
    [LABELS.ephemeralGb]: String(flavor.ephemeral_gb),
  };
  if (instance.project_id) labels[LABELS.projectId] = instance.project_id;
  if (instance.user_id) labels[LABELS.userId] = instance.user_id;
  if (instance.node) labels[LABELS.node] = instance.node;
  if (instance.display_name) labels[LABELS.displayName] = instance.display_name;

  const hostConfig: DockerHostConfig = {
    ...flavorResources(flavor, options),
    Privileged: options.privileged,
    SecurityOpt: ['no-new-privileges'],
    NetworkMode: input.network ? `container:${input.network.holderId}` : 'none',
    RestartPolicy: { Name: 'no' },
    LogConfig: { Type: 'json-file', Config: { 'max-size': String(options.logMaxBytes), 'max-file': '1' } },
    Init: options.init,
  };
  if (options.pidsLimit > 0) hostConfig.PidsLimit = options.pidsLimit;
  if (options.capAdd.length) hostConfig.CapAdd = [...options.capAdd];
  const netBinds: string[] = [];
  if (input.network?.resolvConf) netBinds.push(`${input.network.resolvConf}:/etc/resolv.conf`);
  if (input.network?.hosts) netBinds.push(`${input.network.hosts}:/etc/hosts`);
  if (binds.length || netBinds.length) hostConfig.Binds = [...netBinds, ...binds];

  const body: DockerContainerCreateBody = {
    Image: input.dockerRef,
    Env: metadataEnv(instance.metadata),
    Labels: labels,
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    HostConfig: hostConfig,
  };
  // the Engine refuses a hostname in container: network mode; the holder's is used
  const hostname = containerHostname(instance);
  if (hostname && !input.network) body.Hostname = hostname;
  return { name: containerName(instance.uuid), body };
}

/** What the netns holder needs. */
export interface HolderSpecInput {
  instance: InstanceSpec;
  /** The pause image (pause-image.ts). */
  pauseRef: string;
  cmd: readonly string[];
  options: Pick<ContainerSpecOptions, 'host' | 'extraLabels' | 'logMaxBytes'>;
}

/** The holder's memory cap: it runs one sleeping static binary. */
const HOLDER_MEMORY = 16 * MiB;

/**
 * The netns holder of an instance with VIFs: owns the network namespace the
 * VIFs are plugged into and the instance container joins, so the network
 * exists before the instance's command starts and survives its restarts.
 * No network of Docker's (none), no capabilities, read-only, a few pids,
 * killed at once on stop (it has no state), IPv6 on (Docker disables it in
 * none-mode namespaces). Labelled as the instance's, plus LABELS.role, and
 * without the flavor sizes (it uses none of the flavor's resources).
 */
export function buildHolderSpec(input: HolderSpecInput): ContainerSpec {
  const { instance, options } = input;
  const labels: Record<string, string> = {
    ...options.extraLabels,
    [LABELS.managedBy]: MANAGED_BY_VALUE,
    [LABELS.instanceUuid]: instance.uuid,
    [LABELS.host]: options.host,
    [LABELS.role]: ROLE_NET,
  };
  if (instance.project_id) labels[LABELS.projectId] = instance.project_id;
  if (instance.node) labels[LABELS.node] = instance.node;
  if (instance.display_name) labels[LABELS.displayName] = instance.display_name;
  const body: DockerContainerCreateBody = {
    Image: input.pauseRef,
    Cmd: [...input.cmd],
    Labels: labels,
    StopSignal: 'SIGKILL',
    Tty: false,
    OpenStdin: false,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    HostConfig: {
      NetworkMode: 'none',
      RestartPolicy: { Name: 'no' },
      CapDrop: ['ALL'],
      SecurityOpt: ['no-new-privileges'],
      ReadonlyRootfs: true,
      Memory: HOLDER_MEMORY,
      MemorySwap: HOLDER_MEMORY,
      PidsLimit: 8,
      Init: false,
      LogConfig: {
        Type: 'json-file',
        Config: { 'max-size': String(Math.min(options.logMaxBytes, MiB)), 'max-file': '1' },
      },
      Sysctls: {
        'net.ipv6.conf.all.disable_ipv6': '0',
        'net.ipv6.conf.default.disable_ipv6': '0',
      },
    },
  };
  const hostname = containerHostname(instance);
  if (hostname) body.Hostname = hostname;
  return { name: holderName(instance.uuid), body };
}
