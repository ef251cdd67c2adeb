/**
 * The one table of every option nova-docker reads from nova.conf. It drives
 * parsing, type coercion, validation, the static `Config` type, the sample
 * file (etc/nova-docker.conf.sample) and the reference in
 * docs/configuration.md. Names, groups, types and defaults follow nova /
 * oslo.messaging / keystoneauth, so an existing nova.conf works unchanged;
 * options marked "(nova-docker)" are ours.
 *
 * After editing: `npm run build && npm run gen-config`.
 */
import { hostname } from 'node:os';

export type OptType = 'str' | 'int' | 'float' | 'bool' | 'list' | 'multistr' | 'uri' | 'enum' | 'port';

/** Where else oslo looks for an option (cfg.DeprecatedOpt): group and/or name. */
export interface DeprecatedName {
  readonly group?: string;
  readonly name?: string;
}

export interface OptionSpec {
  readonly group: string;
  /** oslo spelling, as written in nova.conf. */
  readonly name: string;
  readonly type: OptType;
  /**
   * Typed default; a function for defaults computed at load time (then
   * `sampleDefault` is what the sample and docs show). String defaults get
   * `$var` substitution, as in oslo. Absent: the option is unset (`undefined`),
   * except bool (false) and list/multistr ([]).
   */
  readonly default?: string | number | boolean | readonly string[] | (() => string);
  readonly sampleDefault?: string;
  readonly help: string;
  /** Masked in renderConfig and never echoed in errors. */
  readonly secret?: boolean;
  readonly min?: number;
  readonly max?: number;
  readonly choices?: readonly string[];
  /** Appended to the "is not one of" error, to say what to do instead. */
  readonly choicesHint?: string;
  /** Must be set (non-empty) for the agent to start. */
  readonly required?: boolean;
  readonly deprecatedNames?: readonly DeprecatedName[];
}

/** keystoneauth password-plugin options, as nova.conf names them. */
function ksaAuthOptions<G extends string>(group: G) {
  return [
    {
      group,
      name: 'auth_type',
      type: 'str',
      help: 'Authentication type to load.',
      deprecatedNames: [{ name: 'auth_plugin' }],
    },
    { group, name: 'auth_url', type: 'str', help: 'Authentication URL.' },
    { group, name: 'username', type: 'str', help: 'Username.', deprecatedNames: [{ name: 'user_name' }] },
    { group, name: 'password', type: 'str', secret: true, help: "User's password." },
    {
      group,
      name: 'project_name',
      type: 'str',
      help: 'Project name to scope to.',
      deprecatedNames: [{ name: 'tenant_name' }],
    },
    { group, name: 'user_domain_name', type: 'str', help: "User's domain name." },
    { group, name: 'project_domain_name', type: 'str', help: 'Domain name containing project.' },
    { group, name: 'user_domain_id', type: 'str', help: "User's domain id." },
    { group, name: 'project_domain_id', type: 'str', help: 'Domain ID containing project.' },
  ] as const;
}

/** keystoneauth session options. */
function ksaSessionOptions<G extends string>(group: G) {
  return [
    {
      group,
      name: 'insecure',
      type: 'bool',
      default: false,
      help: 'Skip TLS certificate verification of HTTPS connections.',
    },
    {
      group,
      name: 'cafile',
      type: 'str',
      help: 'PEM encoded Certificate Authority to use when verifying HTTPs connections.',
    },
  ] as const;
}

/** keystoneauth password-plugin, session and adapter options, as nova.conf names them. */
function ksaOptions<G extends string>(group: G) {
  return [
    ...ksaAuthOptions(group),
    { group, name: 'region_name', type: 'str', help: 'The default region_name for endpoint URL discovery.' },
    {
      group,
      name: 'valid_interfaces',
      type: 'list',
      default: ['internal', 'public'],
      help: 'List of interfaces, in order of preference, for endpoint URL.',
    },
    ...ksaSessionOptions(group),
  ] as const;
}

export const OPTIONS = [
  // ---------------------------------------------------------------- [DEFAULT]
  {
    group: 'DEFAULT',
    name: 'transport_url',
    type: 'uri',
    secret: true,
    required: true,
    help:
      'The network address and optional user credentials for connecting to the messaging backend, in URL format: ' +
      'rabbit://user:pass@host:port[,userN:passN@hostN:portN]/virtual_host?query',
  },
  {
    group: 'DEFAULT',
    name: 'host',
    type: 'str',
    default: () => hostname(),
    sampleDefault: '<current_hostname>',
    help: 'Hostname, FQDN or IP address of this host; the name nova knows this compute service by and its RPC queue name.',
  },
  {
    group: 'DEFAULT',
    name: 'control_exchange',
    type: 'str',
    default: 'nova',
    help: 'The default exchange under which topics are scoped.',
  },
  {
    group: 'DEFAULT',
    name: 'rpc_response_timeout',
    type: 'int',
    default: 60,
    help: 'Seconds to wait for a response from a call.',
  },
  {
    group: 'DEFAULT',
    name: 'report_interval',
    type: 'int',
    default: 10,
    help: 'Number of seconds indicating how frequently the state of services on a given hypervisor is reported.',
  },
  {
    group: 'DEFAULT',
    name: 'service_down_time',
    type: 'int',
    default: 60,
    help: 'Maximum time in seconds since last check-in for up service.',
  },
  {
    group: 'DEFAULT',
    name: 'debug',
    type: 'bool',
    default: false,
    help: 'If set to true, the logging level will be set to DEBUG instead of the default INFO level.',
  },
  {
    group: 'DEFAULT',
    name: 'log_file',
    type: 'str',
    deprecatedNames: [{ name: 'logfile' }],
    help: 'Name of log file to send logging output to. If not set, logging goes to stderr.',
  },
  {
    group: 'DEFAULT',
    name: 'log_dir',
    type: 'str',
    deprecatedNames: [{ name: 'logdir' }],
    help: 'The base directory used for relative log_file paths. Alone, logging goes to <log_dir>/nova-docker.log. The file is reopened on SIGHUP (logrotate).',
  },
  {
    group: 'DEFAULT',
    name: 'state_path',
    type: 'str',
    default: '/var/lib/nova',
    help: "Top-level directory for maintaining nova's state.",
  },
  {
    group: 'DEFAULT',
    name: 'instances_path',
    type: 'str',
    default: '$state_path/instances',
    help: 'Where instances are stored on disk.',
  },
  {
    group: 'DEFAULT',
    name: 'my_ip',
    type: 'str',
    default: '127.0.0.1',
    help: 'The IP address which the host is using to connect to the management network.',
  },
  {
    group: 'DEFAULT',
    name: 'sync_power_state_interval',
    type: 'int',
    default: 600,
    help: 'Interval (s) to sync power states between the database and the hypervisor, the backstop of the Docker event stream. 0 runs it at the default periodic spacing (60 s); a negative value disables it.',
  },
  {
    group: 'DEFAULT',
    name: 'running_deleted_instance_action',
    type: 'enum',
    default: 'reap',
    choices: ['reap', 'log', 'shutdown', 'noop'],
    help: 'What to do with containers of instances Nova has deleted (the API deletes an instance itself when this host looked down): reap removes them, log reports them, shutdown stops them, noop does nothing.',
  },
  {
    group: 'DEFAULT',
    name: 'running_deleted_instance_poll_interval',
    type: 'int',
    default: 1800,
    help: 'Interval (s) between checks for containers of deleted instances; 0 disables the check.',
  },
  {
    group: 'DEFAULT',
    name: 'running_deleted_instance_timeout',
    type: 'int',
    default: 0,
    min: 0,
    help: 'How long (s) an instance must have been deleted before running_deleted_instance_action applies to its container.',
  },
  {
    group: 'DEFAULT',
    name: 'shelved_offload_time',
    type: 'int',
    default: 0,
    help: 'Time (s) before a shelved instance is offloaded: its container removed and the host freed. 0 offloads it as part of the shelve; -1 never (the stopped container stays, and so do its allocations, until `server shelve --offload`).',
  },
  {
    group: 'DEFAULT',
    name: 'shelved_poll_interval',
    type: 'int',
    default: 3600,
    help: 'Interval (s) between checks for shelved instances to offload (when shelved_offload_time > 0); 0 or less disables the check.',
  },
  {
    group: 'DEFAULT',
    name: 'resume_guests_state_on_host_boot',
    type: 'bool',
    default: false,
    help: 'Whether to start, when the agent starts, the containers of instances Nova has running that are not running (e.g. after a host reboot).',
  },
  {
    group: 'DEFAULT',
    name: 'vif_plugging_is_fatal',
    type: 'bool',
    default: true,
    help:
      'Determine if instance should boot or fail on VIF plugging timeout.\n\n' +
      'Nova sends a port update to Neutron after an instance has been scheduled, providing Neutron with the ' +
      'necessary information to finish setup of the port. Once completed, Neutron notifies Nova that it has ' +
      'finished setting up the port, at which point Nova resumes the boot of the instance since network ' +
      'connectivity is now supposed to be present. A timeout will occur if the reply is not received after a ' +
      'given interval.\n\n' +
      'This option determines what Nova does when the VIF plugging timeout event happens. When enabled, the ' +
      'instance will error out. When disabled, the instance will continue to boot on the assumption that the ' +
      'port is ready.',
  },
  {
    group: 'DEFAULT',
    name: 'vif_plugging_timeout',
    type: 'int',
    default: 300,
    min: 0,
    help:
      'Timeout for Neutron VIF plugging event message arrival.\n\n' +
      'Number of seconds to wait for Neutron vif plugging events to arrive before continuing or failing (see ' +
      "'vif_plugging_is_fatal'). 0 means the container starts without waiting for the events.",
  },
  {
    group: 'DEFAULT',
    name: 'network_allocate_retries',
    type: 'int',
    default: 0,
    min: 0,
    help:
      'Number of times to retry network allocation. It is required to attempt network allocation retries if ' +
      'the virtual interface plug fails.',
  },
  {
    group: 'DEFAULT',
    name: 'cpu_allocation_ratio',
    type: 'float',
    min: 0,
    help: 'Virtual CPU to physical CPU allocation ratio. If unset, initial_cpu_allocation_ratio is used for new providers.',
  },
  {
    group: 'DEFAULT',
    name: 'ram_allocation_ratio',
    type: 'float',
    min: 0,
    help: 'Virtual RAM to physical RAM allocation ratio. If unset, initial_ram_allocation_ratio is used for new providers.',
  },
  {
    group: 'DEFAULT',
    name: 'disk_allocation_ratio',
    type: 'float',
    min: 0,
    help: 'Virtual disk to physical disk allocation ratio. If unset, initial_disk_allocation_ratio is used for new providers.',
  },
  {
    group: 'DEFAULT',
    name: 'initial_cpu_allocation_ratio',
    type: 'float',
    default: 16.0,
    min: 0,
    help: 'Initial virtual CPU to physical CPU allocation ratio.',
  },
  {
    group: 'DEFAULT',
    name: 'initial_ram_allocation_ratio',
    type: 'float',
    default: 1.5,
    min: 0,
    help: 'Initial virtual RAM to physical RAM allocation ratio.',
  },
  {
    group: 'DEFAULT',
    name: 'initial_disk_allocation_ratio',
    type: 'float',
    default: 1.0,
    min: 0,
    help: 'Initial virtual disk to physical disk allocation ratio.',
  },
  {
    group: 'DEFAULT',
    name: 'reserved_host_memory_mb',
    type: 'int',
    default: 512,
    min: 0,
    help: 'Amount of memory in MB to reserve for the host so that it is always available to host processes.',
  },
  {
    group: 'DEFAULT',
    name: 'reserved_host_disk_mb',
    type: 'int',
    default: 0,
    min: 0,
    help: 'Amount of disk resources in MB to make them always available to host.',
  },
  {
    group: 'DEFAULT',
    name: 'reserved_host_cpus',
    type: 'int',
    default: 0,
    min: 0,
    help: 'Number of host CPUs to reserve for host processes.',
  },
  {
    group: 'DEFAULT',
    name: 'compute_driver',
    type: 'str',
    default: 'docker.DockerDriver',
    // Spellings DevStack plugins and nova-docker's Python predecessor put in nova.conf mean the Docker driver;
    // fake.FakeDriver is Nova's name for its in-memory driver, which scale tests of the control plane use.
    choices: [
      'docker.DockerDriver',
      'nova_docker.DockerDriver',
      'novadocker.virt.docker.DockerDriver',
      'fake.FakeDriver',
    ],
    choicesHint:
      'nova-docker runs the Docker driver, or fake.FakeDriver for scale tests; other drivers need nova-compute',
    help:
      'Defines which driver to use for controlling virtualization. The first three choices mean the Docker driver of this ' +
      "agent. fake.FakeDriver is for scale tests: no containers, guests exist only in the agent's memory (a restart " +
      "forgets them), and the host reports Nova's fake resources (1000 vCPUs, 800000 MB RAM, 600000 GB disk).",
  },
  {
    group: 'DEFAULT',
    name: 'instance_name_template',
    type: 'str',
    default: 'instance-%08x',
    help: 'Template string to be used to generate instance names.',
  },
  {
    group: 'DEFAULT',
    name: 'heal_instance_info_cache_interval',
    type: 'int',
    default: 60,
    help: 'Interval between instance network information cache updates, in seconds. 0 or less disables it.',
  },
  {
    group: 'DEFAULT',
    name: 'update_resources_interval',
    type: 'int',
    default: 0,
    help: 'Interval for updating compute resources, in seconds. 0 uses the default periodic interval (60 s); a negative value disables it.',
  },
  {
    group: 'DEFAULT',
    name: 'metrics_host',
    type: 'str',
    default: '127.0.0.1',
    help: '(nova-docker) Address the Prometheus metrics endpoint listens on.',
  },
  {
    group: 'DEFAULT',
    name: 'metrics_port',
    type: 'port',
    default: 9702,
    help: '(nova-docker) Port of the Prometheus metrics endpoint (GET /metrics); 0 disables it.',
  },

  // -------------------------------------------------- [oslo_messaging_rabbit]
  {
    group: 'oslo_messaging_rabbit',
    name: 'heartbeat_timeout_threshold',
    type: 'int',
    default: 60,
    help: "Number of seconds after which the Rabbit broker is considered down if heartbeat's keep-alive fails (0 disables heartbeat).",
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'heartbeat_rate',
    type: 'int',
    default: 3,
    min: 1,
    help: 'How often times during the heartbeat_timeout_threshold we check the heartbeat.',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'rabbit_retry_interval',
    type: 'int',
    default: 1,
    help: 'How frequently to retry connecting with RabbitMQ.',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'rabbit_retry_backoff',
    type: 'int',
    default: 2,
    deprecatedNames: [{ group: 'DEFAULT' }],
    help: 'How long to backoff for between retries when connecting to RabbitMQ.',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'rabbit_interval_max',
    type: 'int',
    default: 30,
    help: 'Maximum interval of RabbitMQ connection retries.',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'ssl',
    type: 'bool',
    default: false,
    deprecatedNames: [{ name: 'rabbit_use_ssl' }],
    help: 'Connect over SSL.',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'ssl_ca_file',
    type: 'str',
    deprecatedNames: [{ name: 'kombu_ssl_ca_certs' }],
    help: 'SSL certification authority file (valid only if SSL enabled).',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'ssl_cert_file',
    type: 'str',
    deprecatedNames: [{ name: 'kombu_ssl_certfile' }],
    help: 'SSL cert file (valid only if SSL enabled).',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'ssl_key_file',
    type: 'str',
    deprecatedNames: [{ name: 'kombu_ssl_keyfile' }],
    help: 'SSL key file (valid only if SSL enabled).',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'ssl_version',
    type: 'str',
    deprecatedNames: [{ name: 'kombu_ssl_version' }],
    help: 'SSL version to use (valid only if SSL enabled).',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'amqp_durable_queues',
    type: 'bool',
    default: false,
    deprecatedNames: [{ group: 'DEFAULT' }, { group: 'DEFAULT', name: 'rabbit_durable_queues' }],
    help: 'Use durable queues in AMQP.',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'amqp_auto_delete',
    type: 'bool',
    default: false,
    deprecatedNames: [{ group: 'DEFAULT' }],
    help: 'Auto-delete queues in AMQP.',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'rabbit_ha_queues',
    type: 'bool',
    default: false,
    deprecatedNames: [{ group: 'DEFAULT' }],
    help: 'Try to use HA queues in RabbitMQ (x-ha-policy: all).',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'rabbit_quorum_queue',
    type: 'bool',
    default: false,
    help: 'Use quorum queues in RabbitMQ (x-queue-type: quorum).',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'rabbit_transient_queues_ttl',
    type: 'int',
    default: 1800,
    min: 1,
    help: 'Positive integer representing duration in seconds for queue TTL (x-expires) of reply and fanout queues.',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'rabbit_qos_prefetch_count',
    type: 'int',
    default: 0,
    help: 'Specifies the number of messages to prefetch. Setting to zero allows unlimited messages.',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'kombu_reconnect_delay',
    type: 'float',
    default: 1.0,
    min: 0,
    max: 4.5,
    deprecatedNames: [{ group: 'DEFAULT' }],
    help: 'How long to wait (in seconds) before reconnecting in response to an AMQP consumer cancel notification.',
  },
  {
    group: 'oslo_messaging_rabbit',
    name: 'max_message_bytes',
    type: 'int',
    default: 16777216,
    min: 1,
    help: '(nova-docker) Largest message body accepted; larger requests are rejected with a failure reply.',
  },

  // ------------------------------------------------------------------ [docker]
  {
    group: 'docker',
    name: 'nova_release',
    type: 'enum',
    default: 'auto',
    choices: ['auto', 'zed', '2025.1', '2026.1'],
    help: '(nova-docker) The Nova release this compute speaks: its service version, compute RPC version, topics and object versions. auto asks nova-conductor at start and takes the newest release the control plane accepts; a fixed release the control plane would refuse (older than its oldest supported compute, or newer than itself) stops the agent at start with an error naming both.',
  },
  {
    group: 'docker',
    name: 'host_url',
    type: 'str',
    default: 'unix:///var/run/docker.sock',
    help: 'URL of the Docker Engine API: unix:///path, tcp://host:port or https://host:port.',
  },
  {
    group: 'docker',
    name: 'api_insecure',
    type: 'bool',
    default: false,
    help: 'Skip TLS certificate verification for the Docker API (verification is on by default).',
  },
  { group: 'docker', name: 'ca_file', type: 'str', help: 'CA bundle to verify the Docker API TLS certificate.' },
  { group: 'docker', name: 'cert_file', type: 'str', help: 'Client certificate for the Docker API.' },
  { group: 'docker', name: 'key_file', type: 'str', help: 'Client private key for the Docker API.' },
  {
    group: 'docker',
    name: 'api_version',
    type: 'str',
    default: '',
    help: 'Docker API version to use, e.g. 1.43; empty negotiates with the daemon.',
  },
  {
    group: 'docker',
    name: 'privileged',
    type: 'bool',
    default: false,
    help: 'Run instance containers privileged.',
  },
  {
    group: 'docker',
    name: 'cap_add',
    type: 'list',
    default: [],
    help: 'Linux capabilities added to every instance container.',
  },
  {
    group: 'docker',
    name: 'allow_host_mounts',
    type: 'bool',
    default: false,
    help: 'Allow image or flavor metadata to bind-mount host paths into containers.',
  },
  {
    group: 'docker',
    name: 'cpu_hard_limit',
    type: 'bool',
    default: false,
    help: 'Limit container CPU to the flavor vCPUs (CFS quota) instead of only weighting it (shares).',
  },
  {
    group: 'docker',
    name: 'pids_limit',
    type: 'int',
    default: 1024,
    min: 0,
    help: 'Maximum number of processes per container; 0 means unlimited.',
  },
  {
    group: 'docker',
    name: 'console_log_max_bytes',
    type: 'int',
    default: 1048576,
    min: 0,
    help: 'Maximum bytes of container output returned as the console log.',
  },
  {
    group: 'docker',
    name: 'registry_url',
    type: 'str',
    default: '127.0.0.1:5042',
    help: 'Docker registry that Glance images are pushed to and pulled from.',
  },
  { group: 'docker', name: 'registry_username', type: 'str', help: 'Username for the Docker registry.' },
  { group: 'docker', name: 'registry_password', type: 'str', secret: true, help: 'Password for the Docker registry.' },
  {
    group: 'docker',
    name: 'pull_policy',
    type: 'enum',
    default: 'if-not-present',
    choices: ['if-not-present', 'always', 'never'],
    help: 'When to pull an image before creating a container.',
  },
  {
    group: 'docker',
    name: 'spawn_check_ms',
    type: 'int',
    default: 100,
    min: 0,
    help: 'After starting a container, how long (ms) to watch for a command that exits at once with a non-zero status; such a spawn fails with the exit code and the last log lines. 0 disables the check.',
  },
  {
    group: 'docker',
    name: 'stop_timeout',
    type: 'int',
    default: 10,
    min: 0,
    help: 'Seconds to wait for a container to stop before killing it.',
  },
  {
    group: 'docker',
    name: 'orphan_policy',
    type: 'enum',
    default: 'remove',
    choices: ['remove', 'log'],
    help: 'At agent start, what to do with containers labelled for this host whose instance Nova has deleted or does not know: remove them, or only log them.',
  },
  {
    group: 'docker',
    name: 'root_directory',
    type: 'str',
    default: '/var/lib/docker',
    help: 'Docker root directory, used to report disk usage.',
  },
  {
    group: 'docker',
    name: 'build_failure_disable_threshold',
    type: 'int',
    default: 0,
    min: 0,
    help: '(nova-docker) Disable this compute service after this many failed builds in a row (a success starts the count again), with the reason "Auto-disabled due to N build failures", as nova-compute did before Rocky; the operator re-enables it with `openstack compute service set --enable`. 0 (the default, as Nova since Rocky) never disables it: the scheduler\'s BuildFailureWeigher then avoids the host by the failed_builds it reports ([compute] consecutive_build_service_disable_threshold).',
  },

  // ------------------------------------------------------------------ [glance]
  { group: 'glance', name: 'api_servers', type: 'list', default: [], help: 'List of glance api servers endpoints.' },
  { group: 'glance', name: 'endpoint_override', type: 'str', help: 'Always use this endpoint URL for requests.' },
  { group: 'glance', name: 'region_name', type: 'str', help: 'The default region_name for endpoint URL discovery.' },
  {
    group: 'glance',
    name: 'valid_interfaces',
    type: 'list',
    default: ['internal', 'public'],
    help: 'List of interfaces, in order of preference, for endpoint URL.',
  },
  {
    group: 'glance',
    name: 'verify_glance_signatures',
    type: 'bool',
    default: false,
    help: 'Enable image signature verification (accepted and ignored by nova-docker).',
  },
  {
    group: 'glance',
    name: 'num_retries',
    type: 'int',
    default: 3,
    min: 0,
    help: 'Enable glance operation retries.',
  },
  // nova registers keystoneauth options for [glance] too; nova-docker registry-sync authenticates with them
  ...ksaAuthOptions('glance'),
  ...ksaSessionOptions('glance'),

  // ------------------------------------------- keystoneauth-configured groups
  ...ksaOptions('placement'),
  { group: 'placement', name: 'endpoint_override', type: 'str', help: 'Always use this endpoint URL for requests.' },
  ...ksaOptions('service_user'),
  {
    group: 'service_user',
    name: 'send_service_user_token',
    type: 'bool',
    default: false,
    help: 'When True, send a service token along with the user token to other services.',
  },
  ...ksaOptions('keystone_authtoken'),
  ...ksaOptions('neutron'),
  { group: 'neutron', name: 'endpoint_override', type: 'str', help: 'Always use this endpoint URL for requests.' },
  {
    group: 'neutron',
    name: 'ovs_bridge',
    type: 'str',
    default: 'br-int',
    help:
      'Default name for the Open vSwitch integration bridge.\n\n' +
      'Specifies the name of an integration bridge interface used by OpenvSwitch. This option is only used if ' +
      'Neutron does not specify the OVS bridge name in port binding responses.',
  },
  {
    group: 'neutron',
    name: 'extension_sync_interval',
    type: 'int',
    default: 600,
    min: 0,
    help:
      'Integer value representing the number of seconds to wait before querying Neutron for extensions. After ' +
      'this number of seconds the next time Nova needs to create a resource in Neutron it will requery Neutron ' +
      'for the extensions that it has loaded. Setting value to 0 will refresh the extensions with no wait.',
  },
  {
    group: 'neutron',
    name: 'http_retries',
    type: 'int',
    default: 3,
    min: 0,
    help:
      'Number of times neutronclient should retry on any failed http call.\n\n' +
      '0 means connection is attempted only once. Setting it to any positive integer means that on failure ' +
      'connection is retried that many times e.g. setting it to 3 means total attempts to connect will be 4. ' +
      '(nova-docker retries calls whose connection failed.)',
  },

  // ---------------------------------------------------------- [compute]
  {
    group: 'compute',
    name: 'consecutive_build_service_disable_threshold',
    type: 'int',
    default: 10,
    help:
      'Enables reporting of build failures to the scheduler. Any nonzero value will enable sending build failure ' +
      'statistics to the scheduler for use by the BuildFailureWeigher. Possible values: any positive integer ' +
      'enables reporting build failures; zero to disable reporting build failures. Related options: ' +
      '[filter_scheduler]/build_failure_weight_multiplier. (As in Nova since Rocky, this no longer disables the ' +
      'service; [docker] build_failure_disable_threshold does.)',
  },

  // ---------------------------------------------------------- [upgrade_levels]
  {
    group: 'upgrade_levels',
    name: 'compute',
    type: 'str',
    help: 'Compute RPC API version cap: a release name (e.g. zed), a version number, or auto.',
  },
] as const satisfies readonly OptionSpec[];

// ------------------------------------------------------------ static types
type Opt = (typeof OPTIONS)[number];
export type GroupName = Opt['group'];

type BaseValue<O> = O extends { readonly type: 'bool' }
  ? boolean
  : O extends { readonly type: 'int' | 'float' | 'port' }
    ? number
    : O extends { readonly type: 'list' | 'multistr' }
      ? readonly string[]
      : O extends { readonly choices: readonly (infer C)[] }
        ? C
        : string;

type AlwaysSet<O> = O extends { readonly default: unknown }
  ? true
  : O extends { readonly required: true }
    ? true
    : O extends { readonly type: 'bool' | 'list' | 'multistr' }
      ? true
      : false;

/** The value type of one option: `undefined` when it has no default. */
export type OptionValue<O> = AlwaysSet<O> extends true ? BaseValue<O> : BaseValue<O> | undefined;

export type GroupConfig<G extends GroupName> = {
  readonly [O in Extract<Opt, { readonly group: G }> as O['name']]: OptionValue<O>;
};

/** The effective configuration: `config.docker.pids_limit` is a number. */
export type Config = { readonly [G in GroupName]: GroupConfig<G> };

/** Group order used by the sample, the docs and renderConfig: DEFAULT, then by name. */
export function groupOrder(table: readonly OptionSpec[]): string[] {
  const groups = [...new Set(table.map((o) => o.group))];
  return [...groups.filter((g) => g === 'DEFAULT'), ...groups.filter((g) => g !== 'DEFAULT').sort()];
}
