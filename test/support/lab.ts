/**
 * The shared lab's real Nova control plane (../shared/lab, loopback only):
 * the stock CLIs, nova-manage, and our agent as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pollUntil } from '../../src/common/poll.js';
import { execFileP, REPO_ROOT, SYSTEM_ENV } from './broker.js';
import { LAB_ENDPOINTS, labExec } from './lab-env.js';

export const LAB = `${REPO_ROOT}../shared/lab`;

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
  // NOVA_DOCKER_E2E_LOG=FILE keeps the agent's log for a look after the run
  const keep = process.env.NOVA_DOCKER_E2E_LOG;
  if (keep) void exited.then(() => writeFileSync(keep, log));
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

/** `docker save DOCKER_IMAGE` uploaded to Glance as a public container_format=docker image; returns its id. */
export async function uploadDockerImage(name: string, dockerImage: string, extra: string[] = []): Promise<string> {
  const tar = await dockerSave(dockerImage);
  try {
    const img = await openstackJson<{ id: string }>([
      'image',
      'create',
      '--container-format',
      'docker',
      '--disk-format',
      'raw',
      '--file',
      tar,
      '--public',
      ...extra,
      name,
    ]);
    return img.id;
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

/** The Placement allocations of a consumer (instance uuid), as rows of resource provider and resources. */
export async function consumerAllocations(uuid: string): Promise<Array<{ resource_provider: string }>> {
  const out = await openstack([
    '--os-placement-api-version',
    '1.28',
    'resource',
    'provider',
    'allocation',
    'show',
    uuid,
    '-f',
    'json',
  ]);
  return JSON.parse(out) as Array<{ resource_provider: string }>;
}

/** Removes the agent's Glance cache tags (`nova-glance/<id>:*`) of Glance image `imageId`; errors ignored. */
export async function removeGlanceCacheTags(imageId: string): Promise<void> {
  const tags = await docker(['images', '--format', '{{.Repository}}:{{.Tag}}', `nova-glance/${imageId}`]).catch(
    () => '',
  );
  for (const t of tags.split('\n').filter(Boolean)) await docker(['rmi', t]).catch(() => undefined);
}

/** `openstack server create --wait` of `image` (m1.tiny, `--nic none`) forced onto compute host `host`. */
export async function bootServer(image: string, host: string, name: string): Promise<LabServer> {
  return await openstackJson<LabServer>(
    [
      'server',
      'create',
      '--image',
      image,
      '--flavor',
      'm1.tiny',
      '--nic',
      'none',
      '--availability-zone',
      `nova:${host}`,
      '--wait',
      name,
    ],
    240_000,
  );
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
