/**
 * The shared lab's real Nova control plane (../shared/lab, loopback only):
 * the stock CLIs, nova-manage, and our agent as a child process.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pollUntil } from '../../src/common/poll.js';
import { execFileP, REPO_ROOT, SYSTEM_ENV } from './broker.js';
import { LAB_ENDPOINTS, labExec } from './lab-env.js';

/** ../shared/lab next to the checkout; NOVA_DOCKER_SHARED_LAB elsewhere (a worktree), as test/lab/neutron-lab.sh. */
export const LAB = process.env.NOVA_DOCKER_SHARED_LAB ?? `${REPO_ROOT}../shared/lab`;

/** admin-openrc, as an environment. */
export const OS_ENV: NodeJS.ProcessEnv = {
  ...SYSTEM_ENV,
  OS_AUTH_URL: LAB_ENDPOINTS.keystone,
  OS_IDENTITY_API_VERSION: '3',
  OS_USERNAME: 'admin',
  OS_PASSWORD: 'labadmin',
  OS_PROJECT_NAME: 'admin',
  OS_USER_DOMAIN_NAME: 'Default',
  OS_PROJECT_DOMAIN_NAME: 'Default',
  OS_REGION_NAME: 'RegionOne',
  OS_COMPUTE_API_VERSION: '2.37',
};

/** Runs the stock `openstack` CLI; `-f json` output parsed when asked. */
export async function openstack(args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await execFileP('openstack', args, { env: OS_ENV, timeout: timeoutMs, maxBuffer: 16 << 20 });
  return stdout;
}

export async function openstackJson<T>(args: string[], timeoutMs?: number): Promise<T> {
  return JSON.parse(await openstack([...args, '-f', 'json'], timeoutMs)) as T;
}

export async function nova(args: string[]): Promise<string> {
  const { stdout } = await execFileP('nova', args, { env: OS_ENV, timeout: 120_000 });
  return stdout;
}

export async function discoverHosts(): Promise<void> {
  await labExec(['su', '-s', '/bin/sh', 'nova', '-c', 'nova-manage cell_v2 discover_hosts']);
}

/** Stops the lab's real nova-compute so only our agent serves. */
export async function stopFakeCompute(): Promise<void> {
  await execFileP('bash', [`${LAB}/fake-compute.sh`, 'stop'], { env: SYSTEM_ENV }).catch(() => undefined);
}

/**
 * The compute host name an e2e file gives its agent: `NOVA_DOCKER_E2E_HOST_PREFIX` in front, so two runs of
 * one file on the shared lab (parallel worktrees) never share a host, its queue or its containers.
 */
export function e2eHost(name: string): string {
  return `${process.env.NOVA_DOCKER_E2E_HOST_PREFIX ?? ''}${name}`;
}

export function labNovaConf(host: string, extra = ''): string {
  return `[DEFAULT]
host = ${host}
transport_url = ${LAB_ENDPOINTS.transportUrl}
my_ip = 127.0.0.1
# the node identity file (compute_id) is per host: several agents share this machine
state_path = ${join(tmpdir(), 'nova-docker-e2e-state', host)}
debug = true
# several agents share this machine: a test that scrapes /metrics sets its own port in extra
metrics_port = 0

[placement]
auth_type = password
auth_url = ${LAB_ENDPOINTS.keystone}
project_domain_name = Default
user_domain_name = Default
project_name = service
username = placement
password = labservice
region_name = RegionOne

[glance]
api_servers = ${LAB_ENDPOINTS.glance}

# Neutron (test/lab/neutron-lab.sh, or the lab's stub): only builds with ports use it
[neutron]
auth_type = password
auth_url = ${LAB_ENDPOINTS.keystone}
project_domain_name = Default
user_domain_name = Default
project_name = service
username = nova
password = labservice
region_name = RegionOne

[docker]
registry_url = ${LAB_ENDPOINTS.registry}
${extra}`;
}

export interface AgentProcess {
  proc: ChildProcess;
  log: () => string;
  stop(): Promise<number | null>;
}

/** Resolves once the agent consumes its compute queue (it serves); rejects when it exits first. */
export async function agentServing(agent: AgentProcess, timeoutMs = 60_000): Promise<void> {
  await pollUntil(
    () => {
      if (agent.proc.exitCode !== null) throw new Error(`agent exited ${agent.proc.exitCode}:\n${agent.log()}`);
      return agent.log().includes('RPC server consuming') ? true : undefined;
    },
    { timeoutMs, intervalMs: 50, what: 'the agent to start serving' },
  );
}

/** Starts `nova-docker compute` with a lab nova.conf and returns at once (see agentServing). */
export function spawnAgent(host: string, extraConf = '', nodeFlags: string[] = []): AgentProcess {
  const dir = mkdtempSync(join(tmpdir(), 'nd-e2e-'));
  const conf = join(dir, 'nova.conf');
  writeFileSync(conf, labNovaConf(host, extraConf));
  const proc = spawn(
    process.execPath,
    [...nodeFlags, join(REPO_ROOT, 'dist/src/cli.js'), 'compute', '--config-file', conf],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let log = '';
  proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  // NOVA_DOCKER_E2E_LOG=FILE keeps the agents' logs for a look after the run (each appended as it exits)
  const keep = process.env.NOVA_DOCKER_E2E_LOG;
  if (keep) void exited.then(() => appendFileSync(keep, `==== agent ${host} (${conf}) ====\n${log}`));
  return {
    proc,
    log: () => log,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return await exited;
    },
  };
}

/** Starts `nova-docker compute` with a lab nova.conf; resolves once its compute node is reported. */
export async function startAgent(host: string, extraConf = '', nodeFlags: string[] = []): Promise<AgentProcess> {
  const agent = spawnAgent(host, extraConf, nodeFlags);
  await agentServing(agent).catch((err: unknown) => {
    agent.proc.kill('SIGKILL');
    throw new Error(`${String(err)}\n${agent.log()}`);
  });
  return agent;
}

/** `docker save IMAGE` into a temp file; returns its path. */
export async function dockerSave(image: string): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'nd-img-')), 'image.tar');
  await execFileP('docker', ['save', '-o', file, image], { env: SYSTEM_ENV });
  return file;
}

// ---- helpers shared by the e2e files (hosts, registry, unsupported) ----------

/** The fields of `openstack server show -f json` the e2e tests read. */
export interface LabServer {
  id: string;
  name?: string;
  status: string;
  'OS-EXT-STS:task_state'?: string | null;
  'OS-EXT-STS:vm_state'?: string | null;
  'OS-EXT-STS:power_state'?: string | number;
  'OS-EXT-SRV-ATTR:host'?: string | null;
  'OS-EXT-SRV-ATTR:hypervisor_hostname'?: string | null;
  fault?: { message?: string; code?: number } | null;
}

/** Runs the docker CLI (Debian's client, loopback dockerd); returns trimmed stdout. */
export async function docker(args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await execFileP('docker', args, { env: SYSTEM_ENV, timeout: timeoutMs, maxBuffer: 16 << 20 });
  return stdout.trim();
}

/** `openstack image create` of a container_format=docker, disk_format=raw image from `file`; returns its id. */
export async function createGlanceImage(name: string, file: string, extra: string[] = []): Promise<string> {
  const img = await openstackJson<{ id: string }>([
    'image',
    'create',
    '--container-format',
    'docker',
    '--disk-format',
    'raw',
    '--file',
    file,
    ...extra,
    name,
  ]);
  return img.id;
}

/** `docker save DOCKER_IMAGE` uploaded to Glance as a public container_format=docker image; returns its id. */
export async function uploadDockerImage(name: string, dockerImage: string, extra: string[] = []): Promise<string> {
  const tar = await dockerSave(dockerImage);
  try {
    return await createGlanceImage(name, tar, ['--public', ...extra]);
  } finally {
    rmSync(dirname(tar), { recursive: true, force: true });
  }
}

/** Polls `server show` until `done(server)` holds. */
export async function waitServer(
  id: string,
  done: (s: LabServer) => boolean,
  what: string,
  timeoutMs = 120_000,
): Promise<LabServer> {
  return await pollUntil(
    async () => {
      const s = await openstackJson<LabServer>(['server', 'show', id]);
      return done(s) ? s : undefined;
    },
    { timeoutMs, intervalMs: 1000, what: `server ${id}: ${what}` },
  );
}

/** `Name State` of every container (running or not) labelled for compute host `host`. */
export async function hostContainers(host: string): Promise<string[]> {
  const out = await docker([
    'ps',
    '-a',
    '--filter',
    `label=org.openstack.nova.host=${host}`,
    '--format',
    '{{.Names}} {{.State}}',
  ]);
  return out === '' ? [] : out.split('\n');
}

/** One row of `resource provider allocation show`: the resources a consumer holds on one provider. */
export interface AllocationRow {
  resource_provider: string;
  resources: Record<string, number>;
}

/**
 * The Placement allocations of a consumer (instance or migration uuid). Strict: a consumer without
 * allocations is `[]`, and a CLI or Placement failure throws instead of passing for "none".
 */
export async function consumerAllocations(uuid: string): Promise<AllocationRow[]> {
  return await openstackJson<AllocationRow[]>([
    '--os-placement-api-version',
    '1.28',
    'resource',
    'provider',
    'allocation',
    'show',
    uuid,
  ]);
}

/** Removes the agent's Glance cache tags (`nova-glance/<id>:*`) of Glance image `imageId`; errors ignored. */
export async function removeGlanceCacheTags(imageId: string): Promise<void> {
  const tags = await docker(['images', '--format', '{{.Repository}}:{{.Tag}}', `nova-glance/${imageId}`]).catch(
    () => '',
  );
  for (const t of tags.split('\n').filter(Boolean)) await docker(['rmi', t]).catch(() => undefined);
}

/** What Placement counts as used on compute host `host`'s provider, by resource class (only classes in use). */
export async function providerUsage(host: string): Promise<Record<string, number>> {
  const placement = ['--os-placement-api-version', '1.28', 'resource', 'provider'];
  const rps = await openstackJson<Array<{ uuid: string }>>([...placement, 'list', '--name', host]);
  if (rps.length !== 1 || !rps[0]) throw new Error(`one resource provider named ${host}: ${JSON.stringify(rps)}`);
  const rows = await openstackJson<Array<{ resource_class: string; usage: number }>>([
    ...placement,
    'usage',
    'show',
    rps[0].uuid,
  ]);
  return Object.fromEntries(rows.filter((r) => r.usage !== 0).map((r) => [r.resource_class, r.usage]));
}

/** The uuid of compute host `host`'s resource provider (polled: a new agent reports its node shortly after it starts). */
export async function providerUuid(host: string): Promise<string> {
  return await pollUntil(
    async () => {
      const rows = await openstackJson<Array<{ uuid: string; name: string }>>([
        'resource',
        'provider',
        'list',
        '--name',
        host,
      ]);
      return rows[0]?.uuid;
    },
    { timeoutMs: 60_000, intervalMs: 1000, what: `the resource provider of ${host}` },
  );
}

/**
 * Sets the traits `change` makes of provider `rp`'s (a generation race with the agent's own trait sync is
 * retried). A flavor requiring a CUSTOM_ trait only one host has keeps the scheduler off the other agents.
 */
export async function setProviderTraits(rp: string, change: (t: string[]) => string[]): Promise<void> {
  await pollUntil(
    async () => {
      const cur = await openstackJson<Array<{ name: string }>>([
        '--os-placement-api-version',
        '1.6',
        'resource',
        'provider',
        'trait',
        'list',
        rp,
      ]);
      const want = change(cur.map((t) => t.name));
      try {
        await openstack([
          '--os-placement-api-version',
          '1.6',
          'resource',
          'provider',
          'trait',
          'set',
          ...want.flatMap((t) => ['--trait', t]),
          rp,
        ]);
        return true;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 30_000, intervalMs: 500, what: 'setting the provider traits' },
  );
}

// ---- the lab registry (127.0.0.1:5042) ---------------------------------------

/** The lab registry's access log (../shared/lab/openstack-up.sh). */
const REGISTRY_LOG = '/var/log/lab/docker-registry.out';

/** Where the registry's access log ends now; undefined when the log is not readable here. */
export function registryLogOffset(): number | undefined {
  return existsSync(REGISTRY_LOG) ? statSync(REGISTRY_LOG).size : undefined;
}

/** Lines the registry logged after byte `offset` of its log; undefined when the log is not readable here. */
export function registryLogSince(offset: number | undefined): string[] | undefined {
  if (offset === undefined || !existsSync(REGISTRY_LOG)) return undefined;
  return readFileSync(REGISTRY_LOG).subarray(offset).toString('utf8').split('\n');
}

/** Pushes local image `source` as `<registry>/repo:tag`, then drops that local tag: only a pull brings it back. */
export async function pushToRegistry(source: string, repo: string, tag: string): Promise<void> {
  const ref = `${LAB_ENDPOINTS.registry}/${repo}:${tag}`;
  await docker(['tag', source, ref]);
  try {
    await docker(['push', ref]);
  } finally {
    await docker(['rmi', ref]);
  }
}

// ---- one e2e file's lab: boot, the cleanup stack, its agents -----------------

export interface BootOptions {
  /** m1.tiny unless given. */
  flavor?: string;
  /**
   * true (default): the CLI's `--wait`, the server as it stands once ACTIVE or ERROR. false: returns the record
   * the API answered at once (status BUILD); the caller waits for what it expects.
   */
  wait?: boolean;
  timeoutMs?: number;
  /** `--network NET` each, in order (names or ids). */
  networks?: readonly string[];
  /** `--port PORT` each, after the networks. */
  ports?: readonly string[];
  /** `--security-group SG` each (the ports the build creates get them). */
  securityGroups?: readonly string[];
  /** `--nic none` or `--nic auto` when no network or port is given: `none` unless said. */
  nic?: 'none' | 'auto';
}

/** The `server create` arguments of BootOptions' networks, ports, security groups or `--nic`. */
export function nicArgs(opts: BootOptions): string[] {
  const nets = (opts.networks ?? []).flatMap((n) => ['--network', n]);
  const ports = (opts.ports ?? []).flatMap((p) => ['--port', p]);
  const groups = (opts.securityGroups ?? []).flatMap((g) => ['--security-group', g]);
  const nics = nets.length + ports.length > 0 ? [...nets, ...ports] : ['--nic', opts.nic ?? 'none'];
  return [...nics, ...groups];
}

/** `openstack server create` of `image` (`--nic none` unless BootOptions say otherwise) forced onto `host`. */
export async function bootServer(
  image: string,
  host: string,
  name: string,
  opts: BootOptions = {},
): Promise<LabServer> {
  return await openstackJson<LabServer>(
    [
      'server',
      'create',
      '--image',
      image,
      '--flavor',
      opts.flavor ?? 'm1.tiny',
      ...nicArgs(opts),
      '--availability-zone',
      `nova:${host}`,
      ...(opts.wait === false ? [] : ['--wait']),
      name,
    ],
    opts.timeoutMs ?? 240_000,
  );
}

/** `nova boot` (the stock novaclient) of `image` (`--nic none`) onto `host`; the new server's id from its table. */
export async function novaBoot(image: string, host: string, name: string): Promise<string> {
  const out = await nova([
    'boot',
    '--image',
    image,
    '--flavor',
    'm1.tiny',
    '--nic',
    'none',
    '--availability-zone',
    `nova:${host}`,
    name,
  ]);
  const id = /^\|\s*id\s*\|\s*([0-9a-f-]{36})\s*\|/m.exec(out)?.[1];
  if (!id) throw new Error(`nova boot printed no id:\n${out}`);
  return id;
}

/** The labels of server `uuid`'s container. */
export async function containerLabels(uuid: string): Promise<Record<string, string> | undefined> {
  return JSON.parse(await docker(['inspect', '--format', '{{json .Config.Labels}}', `nova-${uuid}`])) as
    Record<string, string> | undefined;
}

/** A local image tagged `<prefix>:<random>` built from `dockerfile` (FROM a local image: no network); its tag. */
export async function buildDockerImage(prefix: string, dockerfile: string): Promise<string> {
  const tag = `${prefix}:${randomUUID().slice(0, 8)}`;
  const dir = mkdtempSync(join(tmpdir(), 'nd-build-'));
  try {
    writeFileSync(join(dir, 'Dockerfile'), dockerfile);
    await docker(['build', '-q', '-t', tag, dir]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return tag;
}

/**
 * What an e2e file made in the lab, undone in its `after` hook whether its tests passed or not: servers
 * (deleted with `--wait`, in parallel), Glance images with the agent's cache tags, local docker tags, then
 * any other undo step, newest first. Every step runs even when one before it failed.
 */
export class LabCleanup {
  private readonly servers = new Set<string>();
  private readonly images = new Set<string>();
  private readonly dockerTags = new Set<string>();
  private readonly steps: Array<() => Promise<unknown>> = [];

  server(id: string): string {
    this.servers.add(id);
    return id;
  }

  image(id: string): string {
    this.images.add(id);
    return id;
  }

  dockerTag(tag: string): string {
    this.dockerTags.add(tag);
    return tag;
  }

  /** An undo step run after the servers, images and tags are gone. */
  defer(step: () => Promise<unknown>): void {
    this.steps.push(step);
  }

  /** `server delete --wait`; the server is no longer this stack's once that returned. */
  async deleteServer(id: string, timeoutMs = 180_000): Promise<void> {
    await openstack(['server', 'delete', '--wait', id], timeoutMs);
    this.servers.delete(id);
  }

  /** Runs the stack; `moreServers` are deleted too (e.g. those a host lists whose create timed out client-side). */
  async run(moreServers: Iterable<string> = []): Promise<void> {
    const servers = new Set([...this.servers, ...moreServers]);
    await Promise.all([...servers].map((id) => this.deleteServer(id, 300_000).catch(() => undefined)));
    for (const id of this.images) {
      await openstack(['image', 'delete', id]).catch(() => undefined);
      await removeGlanceCacheTags(id);
    }
    this.images.clear();
    for (const tag of this.dockerTags) await docker(['rmi', tag]).catch(() => undefined);
    this.dockerTags.clear();
    for (const step of this.steps.splice(0).reverse()) await step().catch(() => undefined);
  }
}

/**
 * One e2e file's agents (one per compute host, the first host its own) and its cleanup stack. `close`
 * restarts an agent a test left stopped (deleting its servers needs it), runs the stack, force-removes any
 * container still labelled for its hosts, stops every agent, and only then asserts: each agent exited 0 on
 * SIGTERM, and no container was left.
 */
export class E2eLab {
  readonly cleanup = new LabCleanup();
  readonly host: string;
  private readonly agents = new Map<string, AgentProcess>();
  /** Every host started once, with its nova.conf extra. */
  private readonly confs = new Map<string, string>();

  constructor(
    readonly hosts: readonly string[],
    private readonly conf = '',
  ) {
    const first = hosts[0];
    if (first === undefined) throw new Error('an E2eLab needs a compute host');
    this.host = first;
  }

  /** The running agent of `host`; throws while it is stopped. */
  agent(host = this.host): AgentProcess {
    const a = this.agents.get(host);
    if (!a) throw new Error(`no agent running for ${host}`);
    return a;
  }

  /** Starts the agent of `host` with its nova.conf extra (the file's, or the one it was first started with). */
  async start(host = this.host, conf?: string): Promise<AgentProcess> {
    if (this.agents.has(host)) throw new Error(`the agent of ${host} already runs`);
    const extra = conf ?? this.confs.get(host) ?? this.conf;
    this.confs.set(host, extra);
    const a = await startAgent(host, extra);
    this.agents.set(host, a);
    return a;
  }

  /** SIGTERMs the agent of `host`; it must exit 0. */
  async stop(host = this.host): Promise<void> {
    const a = this.agents.get(host);
    this.agents.delete(host);
    if (!a) return;
    const code = await a.stop();
    assert.equal(code, 0, `agent ${host} exits 0 on SIGTERM:\n${a.log().slice(-4000)}`);
  }

  /** `docker save DOCKER_IMAGE` uploaded to Glance (see uploadDockerImage), deleted by the cleanup. */
  async uploadImage(name: string, dockerImage: string, extra: string[] = []): Promise<string> {
    return this.cleanup.image(await uploadDockerImage(name, dockerImage, extra));
  }

  /** A local image built from `dockerfile` (see buildDockerImage), removed by the cleanup. */
  async buildImage(prefix: string, dockerfile: string): Promise<string> {
    return this.cleanup.dockerTag(await buildDockerImage(prefix, dockerfile));
  }

  /** bootServer onto `host` (this file's unless given) with a unique name `<prefix>-<random>`; deleted by the cleanup. */
  async boot(image: string, prefix: string, opts: BootOptions & { host?: string } = {}): Promise<LabServer> {
    const s = await bootServer(image, opts.host ?? this.host, `${prefix}-${randomUUID().slice(0, 6)}`, opts);
    this.cleanup.server(s.id);
    return s;
  }

  /** boot, which must end ACTIVE on its host. */
  async bootActive(image: string, prefix: string, opts: BootOptions & { host?: string } = {}): Promise<LabServer> {
    const s = await this.boot(image, prefix, opts);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
    assert.equal(s['OS-EXT-SRV-ATTR:host'], opts.host ?? this.host);
    return s;
  }

  async deleteServer(id: string, timeoutMs?: number): Promise<void> {
    await this.cleanup.deleteServer(id, timeoutMs);
  }

  /** deleteServer, then: no container left on `host`, no Placement allocation left for the server. */
  async deleteAndCheck(id: string, host = this.host): Promise<void> {
    await this.deleteServer(id);
    assert.deepEqual(await hostContainers(host), [], 'container removed');
    assert.deepEqual(await consumerAllocations(id), [], 'allocations removed');
  }

  async close(): Promise<void> {
    const hosts = [...this.confs.keys()];
    for (const h of hosts) if (!this.agents.has(h)) await this.start(h).catch(() => undefined);
    const listed = await Promise.all(
      hosts.map((h) =>
        openstackJson<Array<{ ID: string }>>(['server', 'list', '--all-projects', '--host', h]).catch(() => []),
      ),
    );
    await this.cleanup.run(listed.flat().map((x) => x.ID));
    const left: string[] = [];
    for (const h of hosts) {
      for (const line of await hostContainers(h).catch(() => [])) {
        left.push(line);
        await docker(['rm', '-f', line.split(' ')[0] ?? '']).catch(() => undefined);
      }
    }
    const stopped = await Promise.all(
      [...this.agents.entries()].map(async ([h, a]) => [h, await a.stop(), a.log()] as const),
    );
    this.agents.clear();
    for (const [h, code, log] of stopped) assert.equal(code, 0, `agent ${h} exits 0 on SIGTERM:\n${log.slice(-4000)}`);
    assert.deepEqual(left, [], 'no container left behind');
  }
}

/**
 * The e2e file's lab, hooked into the enclosing `describe`: `before` starts an agent for each of `hosts` and
 * discovers them; `after` closes it (see E2eLab.close).
 */
export function useE2eLab(hosts: string | readonly string[], conf = ''): E2eLab {
  const lab = new E2eLab(typeof hosts === 'string' ? [hosts] : hosts, conf);
  before(async () => {
    await Promise.all(lab.hosts.map((h) => lab.start(h)));
    await discoverHosts();
  });
  after(async () => await lab.close());
  return lab;
}
