/**
 * nova.conf → the agent's parts: the driver ([DEFAULT] compute_driver: the
 * Docker driver with its client and image service, or the in-memory fake),
 * Keystone/Glance/Placement clients, conductor and the compute manager.
 * Wiring only: no behaviour lives here.
 */
import type { VifObserver } from './virt/docker/vif.js';
import type { Config } from './config/index.js';
import type { Logger } from './common/log.js';
import { DockerClient } from './clients/docker/index.js';
import type { DockerClientOptions } from './clients/docker/types.js';
import { GlanceClient } from './clients/glance/client.js';
import { KeystoneClient } from './clients/keystone/client.js';
import { NeutronClient } from './clients/neutron/client.js';
import { NetworkAPI } from './compute/network.js';
import { ConfigError } from './config/index.js';
import type { BootTiming, PlacementReporter } from './compute/collaborators.js';
import type { VifPlugging } from './compute/instance-events.js';
import { ComputeManager } from './compute/manager.js';
import { computeCaster, glanceImageAPI } from './compute/move-services.js';
import { schedulerNotifier } from './compute/scheduler-notifier.js';
import { ComputeTaskAPI, ConductorAPI } from './objects/conductor.js';
import type { NovaRelease } from './objects/releases.js';
import type { Messaging } from './rpc/messaging.js';
import { DockerDriver } from './virt/docker/driver.js';
import type { ComputeDriver } from './virt/driver.js';
import { FakeDriver } from './virt/fake/driver.js';
import { ImageService, type ImageCacheObserver } from './virt/docker/images.js';
import { RegistryClient } from './clients/registry/client.js';

export function dockerClientOptions(config: Config): DockerClientOptions {
  const d = config.docker;
  const url = d.host_url;
  if (url.startsWith('unix://')) return { socketPath: url.slice('unix://'.length) };
  const tls = d.ca_file || d.cert_file || d.key_file || url.startsWith('https://');
  return {
    baseURL: url,
    ...(tls
      ? {
          tls: {
            ...(d.ca_file ? { ca: d.ca_file } : {}),
            ...(d.cert_file ? { cert: d.cert_file } : {}),
            ...(d.key_file ? { key: d.key_file } : {}),
            insecure: d.api_insecure,
          },
        }
      : {}),
    ...(d.api_version ? { apiVersion: d.api_version } : {}),
  };
}

type AuthGroup = Pick<
  Config['placement'],
  | 'auth_url'
  | 'username'
  | 'password'
  | 'project_name'
  | 'user_domain_name'
  | 'project_domain_name'
  | 'region_name'
  | 'valid_interfaces'
>;

/** Keystone password auth from a keystoneauth group ([placement], [service_user], …). */
export function keystoneFromGroup(group: AuthGroup, name: string, logger: Logger): KeystoneClient {
  const missing = (['auth_url', 'username', 'password', 'project_name'] as const).filter((k) => !group[k]);
  if (missing.length > 0) throw new ConfigError(missing.map((k) => `[${name}] ${k}: required to talk to Keystone`));
  return new KeystoneClient(
    {
      authUrl: group.auth_url ?? '',
      username: group.username ?? '',
      password: group.password ?? '',
      projectName: group.project_name ?? '',
      userDomainName: group.user_domain_name ?? 'Default',
      projectDomainName: group.project_domain_name ?? 'Default',
      regionName: group.region_name,
      interfaces: group.valid_interfaces,
    },
    { logger },
  );
}

/** `[DEFAULT] compute_driver` naming Nova's in-memory driver: guests without containers, for scale tests. */
export const FAKE_DRIVER = 'fake.FakeDriver';

export interface Agent {
  driver: ComputeDriver;
  manager: ComputeManager;
  keystone: KeystoneClient;
}

/** Where the agent's parts report what they do (metrics); all optional. */
export interface AgentObservers {
  images?: ImageCacheObserver | undefined;
  boot?: ((timing: BootTiming) => void) | undefined;
  vifs?: VifObserver | undefined;
  vifWait?: VifPlugging['onWaited'];
}

export function buildAgent(
  config: Config,
  release: NovaRelease,
  messaging: Messaging,
  logger: Logger,
  makePlacement: (keystone: KeystoneClient) => PlacementReporter,
  configDirs: readonly string[] = [],
  observers: AgentObservers = {},
): Agent {
  const D = config.DEFAULT;
  const keystone = keystoneFromGroup(config.placement, 'placement', logger);
  const glance = new GlanceClient({
    apiServers: config.glance.api_servers.length > 0 ? config.glance.api_servers : undefined,
    keystone,
    endpoint: { interfaces: config.glance.valid_interfaces, region: config.glance.region_name },
    logger,
  });
  const driver =
    D.compute_driver === FAKE_DRIVER
      ? new FakeDriver({ host: D.host })
      : dockerDriver(config, glance, logger, observers);
  const conductor = new ConductorAPI(messaging.client('conductor'), release);
  const network = networkAPI(config, release, conductor, logger);
  const manager = new ComputeManager(
    conductor,
    driver,
    makePlacement(keystone),
    schedulerNotifier(messaging.client('scheduler'), release.objects.InstanceList ?? '2.6'),
    {
      host: D.host,
      release,
      statePath: D.state_path,
      configDirs,
      reportIntervalS: D.report_interval,
      // nova: 0 means the default periodic spacing (60 s), negative disables
      resourceIntervalS: D.update_resources_interval === 0 ? 60 : D.update_resources_interval,
      // nova: 0 means the default periodic spacing (60 s), negative disables
      syncPowerStateIntervalS: D.sync_power_state_interval === 0 ? 60 : D.sync_power_state_interval,
      resumeGuestsStateOnHostBoot: D.resume_guests_state_on_host_boot,
      orphanPolicy: config.docker.orphan_policy,
      runningDeleted: {
        action: D.running_deleted_instance_action,
        pollIntervalS: D.running_deleted_instance_poll_interval,
        timeoutS: D.running_deleted_instance_timeout,
      },
      shelvedOffloadTimeS: D.shelved_offload_time,
      shelvedPollIntervalS: D.shelved_poll_interval,
      schedulerSyncIntervalS: 120,
      myIp: D.my_ip,
      allocationRatios: {
        cpu: D.cpu_allocation_ratio ?? D.initial_cpu_allocation_ratio,
        ram: D.ram_allocation_ratio ?? D.initial_ram_allocation_ratio,
        disk: D.disk_allocation_ratio ?? D.initial_disk_allocation_ratio,
      },
      reservedHostMemoryMb: D.reserved_host_memory_mb,
      reservedHostDiskMb: D.reserved_host_disk_mb,
      reservedHostCpus: D.reserved_host_cpus,
      buildFailureReporting: config.compute.consecutive_build_service_disable_threshold,
      buildFailureDisableThreshold: config.docker.build_failure_disable_threshold,
      onBoot: observers.boot,
      vifPlugging: {
        timeoutS: D.vif_plugging_timeout,
        fatal: D.vif_plugging_is_fatal,
        onWaited: observers.vifWait,
      },
      networkAllocateRetries: D.network_allocate_retries,
    },
    logger,
    {
      images: glanceImageAPI(glance),
      compute: computeCaster(messaging.client('compute')),
      computeTask: new ComputeTaskAPI(messaging.client('conductor'), release),
      glance,
      ...(network ? { network } : {}),
    },
  );
  return { driver, manager, keystone };
}

/** The Docker driver of `[DEFAULT] compute_driver`'s Docker spellings: its Engine client and image cache. */
function dockerDriver(config: Config, glance: GlanceClient, logger: Logger, observers: AgentObservers): DockerDriver {
  const D = config.DEFAULT;
  const docker = new DockerClient(dockerClientOptions(config));
  const images = new ImageService(
    { docker, glance, logger, observer: observers.images },
    {
      registryUrl: config.docker.registry_url || null,
      registryAuth:
        config.docker.registry_username && config.docker.registry_password
          ? { username: config.docker.registry_username, password: config.docker.registry_password }
          : undefined,
      pullPolicy: config.docker.pull_policy,
    },
  );
  return new DockerDriver(
    docker,
    images,
    {
      host: D.host,
      privileged: config.docker.privileged,
      capAdd: [...config.docker.cap_add],
      allowHostMounts: config.docker.allow_host_mounts,
      cpuHardLimit: config.docker.cpu_hard_limit,
      pidsLimit: config.docker.pids_limit,
      consoleLogMaxBytes: config.docker.console_log_max_bytes,
      stopTimeoutS: config.docker.stop_timeout,
      spawnCheckMs: config.docker.spawn_check_ms,
      // nova's per-instance directory, where libvirt keeps console.log
      consoleLifecycleDir: D.instances_path,
      glance,
      ovsBridge: config.neutron.ovs_bridge,
      ...(observers.vifs ? { vifObserver: observers.vifs } : {}),
    },
    logger,
  );
}

/**
 * Nova's network API on Neutron, when `[neutron]` names credentials
 * (auth_url); without them only `--nic none` builds are possible. The admin
 * client authenticates with `[neutron]`; with `[service_user]
 * send_service_user_token` every call also carries a service token.
 */
export function networkAPI(
  config: Config,
  release: NovaRelease,
  conductor: ConductorAPI,
  logger: Logger,
): NetworkAPI | undefined {
  const n = config.neutron;
  if (!n.auth_url) return undefined;
  const neutron = new NeutronClient({
    admin: keystoneFromGroup(n, 'neutron', logger),
    serviceUser: config.service_user.send_service_user_token
      ? keystoneFromGroup(config.service_user, 'service_user', logger)
      : undefined,
    endpointOverride: n.endpoint_override,
    region: n.region_name,
    interfaces: n.valid_interfaces,
    httpRetries: n.http_retries,
    logger,
  });
  return new NetworkAPI({
    neutron,
    conductor,
    release,
    ovsBridge: n.ovs_bridge,
    extensionSyncIntervalS: n.extension_sync_interval,
    logger,
  });
}

/** Groups that may hold the credentials of the tools (registry-sync), in the order they are tried. */
export const TOOL_AUTH_GROUPS = ['glance', 'service_user', 'keystone_authtoken', 'placement'] as const;

/**
 * Keystone for the command-line tools: the first of [glance], [service_user],
 * [keystone_authtoken], [placement] that names an auth_url (the agent itself
 * uses [placement], so a nova.conf that runs the agent runs the tools too).
 */
export function toolKeystone(config: Config, logger: Logger): { keystone: KeystoneClient; group: string } {
  const group = TOOL_AUTH_GROUPS.find((g) => config[g].auth_url);
  if (!group) {
    throw new ConfigError([`[glance] auth_url: required (or in one of [${TOOL_AUTH_GROUPS.slice(1).join('], [')}])`]);
  }
  return { keystone: keystoneFromGroup(config[group], group, logger), group };
}

/** The registry and the Glance that `nova-docker registry-sync` reconciles. */
export function buildRegistrySync(
  config: Config,
  logger: Logger,
): { registry: RegistryClient; glance: GlanceClient; authGroup: string } {
  const d = config.docker;
  if (!d.registry_url) throw new ConfigError(['[docker] registry_url: required by registry-sync']);
  const registry = new RegistryClient({
    url: d.registry_url,
    auth:
      d.registry_username && d.registry_password
        ? { username: d.registry_username, password: d.registry_password }
        : undefined,
  });
  const { keystone, group } = toolKeystone(config, logger);
  const glance = new GlanceClient({
    apiServers: config.glance.api_servers.length > 0 ? config.glance.api_servers : undefined,
    keystone,
    endpoint: { interfaces: config.glance.valid_interfaces, region: config.glance.region_name },
    logger,
  });
  return { registry, glance, authGroup: group };
}
