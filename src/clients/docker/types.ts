/**
 * Docker Engine API shapes (API 1.41), limited to the fields the agent reads
 * or writes. Field names are the Engine's own (PascalCase), so bodies pass
 * through unchanged. Unknown extra fields are allowed on everything the Engine
 * returns.
 */

/** How to reach the Engine. Exactly one of `socketPath` / `baseURL`. */
export interface DockerClientOptions {
  /** Unix socket, e.g. /var/run/docker.sock. */
  socketPath?: string;
  /**
   * http://host:port or https://host:port (tcp:// is accepted and becomes
   * https:// when `tls` is given, http:// otherwise). Tests point this at
   * http://localhost for nock.
   */
  baseURL?: string;
  /** TLS for tcp/https. Verification is ON unless `insecure` is true. */
  tls?: DockerTlsOptions;
  /** Highest API version we speak; the client uses min(server, this). Default '1.41'. */
  maxApiVersion?: string;
  /** Skip negotiation and use this version (no GET /version). */
  apiVersion?: string;
  /** Timeout of non-streaming calls, ms. Default 60 000. */
  timeoutMs?: number;
}

export interface DockerTlsOptions {
  /** Paths of PEM files. */
  ca?: string;
  cert?: string;
  key?: string;
  /** Disable server certificate verification (lab use only). */
  insecure?: boolean;
}

export interface DockerVersion {
  Version: string;
  ApiVersion: string;
  MinAPIVersion?: string;
  Os?: string;
  Arch?: string;
  KernelVersion?: string;
  [k: string]: unknown;
}

export interface DockerInfo {
  ID?: string;
  Name?: string;
  ServerVersion: string;
  NCPU: number;
  MemTotal: number;
  DockerRootDir: string;
  Driver?: string;
  CgroupDriver?: string;
  CgroupVersion?: string;
  OperatingSystem?: string;
  Architecture?: string;
  Containers?: number;
  ContainersRunning?: number;
  [k: string]: unknown;
}

/** Filters as the Engine takes them: `{label: ['a=b', 'c']}` etc. */
export type DockerFilters = Record<string, string[]>;

export interface ListContainersOptions {
  all?: boolean;
  filters?: DockerFilters;
}

export interface DockerContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  ImageID?: string;
  Command?: string;
  Created: number;
  State: string;
  Status: string;
  Labels: Record<string, string> | null;
  [k: string]: unknown;
}

export type DockerContainerStatus = 'created' | 'restarting' | 'running' | 'removing' | 'paused' | 'exited' | 'dead';

export interface DockerContainerState {
  /** One of `DockerContainerStatus` (kept open: newer Engines may add states). */
  Status: string;
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid?: number;
  ExitCode: number;
  Error?: string;
  StartedAt?: string;
  FinishedAt?: string;
}

export interface DockerRestartPolicy {
  Name: '' | 'no' | 'always' | 'unless-stopped' | 'on-failure';
  MaximumRetryCount?: number;
}

export interface DockerLogConfig {
  Type: string;
  Config?: Record<string, string>;
}

/** Resource fields accepted by create (HostConfig) and by POST /containers/{id}/update. */
export interface DockerResources {
  Memory?: number;
  MemorySwap?: number;
  MemoryReservation?: number;
  CpuShares?: number;
  NanoCpus?: number;
  CpuPeriod?: number;
  CpuQuota?: number;
  CpusetCpus?: string;
  PidsLimit?: number | null;
  BlkioWeight?: number;
}

export interface DockerHostConfig extends DockerResources {
  Binds?: string[];
  NetworkMode?: string;
  RestartPolicy?: DockerRestartPolicy;
  Privileged?: boolean;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  SecurityOpt?: string[] | null;
  LogConfig?: DockerLogConfig;
  Init?: boolean | null;
  ReadonlyRootfs?: boolean;
  AutoRemove?: boolean;
  [k: string]: unknown;
}

/** Body of POST /containers/create. */
export interface DockerContainerCreateBody {
  Image: string;
  Hostname?: string;
  Domainname?: string;
  User?: string;
  Env?: string[];
  Cmd?: string[];
  Entrypoint?: string[];
  Labels?: Record<string, string>;
  Tty?: boolean;
  OpenStdin?: boolean;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  StopSignal?: string;
  StopTimeout?: number;
  WorkingDir?: string;
  HostConfig?: DockerHostConfig;
  NetworkingConfig?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface DockerContainerCreateResponse {
  Id: string;
  Warnings: string[] | null;
}

export interface DockerContainerConfig {
  Hostname?: string;
  Image?: string;
  Env?: string[] | null;
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  Labels?: Record<string, string> | null;
  Tty?: boolean;
  [k: string]: unknown;
}

export interface DockerContainerInspect {
  Id: string;
  Name: string;
  Created: string;
  Image: string;
  State: DockerContainerState;
  Config: DockerContainerConfig;
  HostConfig: DockerHostConfig;
  RestartCount?: number;
  [k: string]: unknown;
}

export interface RemoveContainerOptions {
  /** Kill a running container first. */
  force?: boolean;
  /** Remove anonymous volumes too. */
  v?: boolean;
}

export interface ContainerLogsOptions {
  /** Number of lines from the end, or 'all'. Default 'all'. */
  tail?: number | 'all';
  stdout?: boolean;
  stderr?: boolean;
  timestamps?: boolean;
  /**
   * Whether the container has a TTY (raw stream) or not (multiplexed 8-byte
   * frames). When omitted the client inspects the container to find out.
   */
  tty?: boolean;
  /** Keep only the last this-many bytes (memory bound while reading). */
  maxBytes?: number;
}

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

export interface DockerWaitResponse {
  StatusCode: number;
  Error?: { Message?: string } | null;
}

export interface CommitContainerOptions {
  repo?: string;
  tag?: string;
  comment?: string;
  author?: string;
  /** Pause during commit (Engine default true). */
  pause?: boolean;
  /** Labels of the image config; the Engine merges the container's under them (these win, none can be removed). */
  labels?: Record<string, string>;
  /** Env of the image config (`K=V`); merged like labels. */
  env?: string[];
}

export interface EventsOptions {
  filters?: DockerFilters;
  /** Unix seconds (number) or an Engine timestamp string. */
  since?: number | string;
  until?: number | string;
  signal?: AbortSignal;
  /** Called once the Engine has answered 200: from then on no event is missed. */
  onOpen?: () => void;
}

export interface DockerEvent {
  Type: string;
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope?: string;
  time: number;
  timeNano: number;
  /** Legacy fields. */
  status?: string;
  id?: string;
  from?: string;
  [k: string]: unknown;
}

/** Container event actions the compute agent follows (the Engine has more). */
export type DockerContainerAction = 'start' | 'die' | 'oom' | 'pause' | 'unpause' | 'destroy';

/** A container event: Actor.ID is the container id, Attributes its labels plus name, image, exitCode (die). */
export interface DockerContainerEvent extends DockerEvent {
  Type: 'container';
}

export function isContainerEvent(e: DockerEvent): e is DockerContainerEvent {
  return e.Type === 'container' && typeof e.Actor === 'object' && e.Actor !== null;
}

export interface DockerImageSummary {
  Id: string;
  ParentId?: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Created: number;
  Size: number;
  Labels: Record<string, string> | null;
  [k: string]: unknown;
}

export interface DockerImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent?: string;
  Created: string;
  Size: number;
  Architecture?: string;
  Os?: string;
  Config?: DockerContainerConfig | null;
  RootFS?: { Type: string; Layers?: string[] };
  [k: string]: unknown;
}

export interface ListImagesOptions {
  all?: boolean;
  filters?: DockerFilters;
}

export interface RegistryAuth {
  username: string;
  password: string;
  serveraddress: string;
}

export interface RemoveImageOptions {
  force?: boolean;
  noprune?: boolean;
}

/** One line of a JSON-lines progress stream (pull, load, push). */
export interface DockerProgressLine {
  status?: string;
  stream?: string;
  id?: string;
  progress?: string;
  error?: string;
  errorDetail?: { code?: number; message?: string };
  aux?: Record<string, unknown>;
  [k: string]: unknown;
}

/** GET /containers/{id}/stats?stream=false: the fields the agent reads (cgroup v1 and v2). */
export interface DockerContainerStats {
  read?: string;
  pids_stats?: { current?: number };
  cpu_stats?: DockerCpuStats;
  precpu_stats?: DockerCpuStats;
  memory_stats?: { usage?: number; limit?: number; max_usage?: number };
  blkio_stats?: {
    io_service_bytes_recursive?: Array<{ op?: string; value?: number }> | null;
    io_serviced_recursive?: Array<{ op?: string; value?: number }> | null;
  };
  networks?: Record<
    string,
    {
      rx_bytes?: number;
      rx_packets?: number;
      rx_errors?: number;
      rx_dropped?: number;
      tx_bytes?: number;
      tx_packets?: number;
      tx_errors?: number;
      tx_dropped?: number;
    }
  >;
}

export interface DockerCpuStats {
  cpu_usage?: { total_usage?: number; percpu_usage?: number[] | null };
  system_cpu_usage?: number;
  online_cpus?: number;
}
