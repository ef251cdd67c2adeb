/**
 * Many compute hosts on one control plane: N agents next to N real nova-computes
 * (Nova's own fake driver) on the lab's Nova Zed, in the same run.
 *
 *   node dist/bench/scale.js [--hosts N=10] [--servers M=40] [--rounds R=1] [--docker] [--no-nova-compute] [--idle S=60]
 *
 * Group `a`: N agents, hosts nd-scale-a-<i>, `compute_driver = fake.FakeDriver` (no containers),
 * or the Docker driver with --docker. Group `n`: N nova-compute processes (python3-nova, run
 * as user nova, each with its own state_path, lock_path and log), hosts nd-scale-n-<i>,
 * `compute_driver = fake.FakeDriver`. Each group is an aggregate with an availability zone of
 * its own, so one control plane schedules both and a burst into one zone lands only on its group.
 *
 * Phases, in order:
 *   1. a project of its own with unlimited instance quota (the lab admin's is 10 and shared),
 *      a Glance image (a few bytes; the busybox `docker save` with --docker);
 *   2. the agents started (5 at a time), then S s idle; then the nova-computes (5 at a time),
 *      then S s idle: each process's start → registered (service up and its resource
 *      provider in Placement), VmRSS, and nova-conductor CPU per idle minute (group n's: the second window
 *      minus the first);
 *   3. discover_hosts, the aggregates and zones, then for each group in turn: M servers
 *      POSTed at once (individual requests, `networks: none`, m1.tiny, the group's zone),
 *      one GET /servers/detail per 500 ms until all are ACTIVE or ERROR: API → ACTIVE
 *      p50/p95, the spread (servers per host over the group's N hosts), and the CPU seconds
 *      nova-conductor, nova-scheduler, placement and nova-api spent meanwhile;
 *   4. with every server running: VmRSS again, and the RabbitMQ connections, channels,
 *      consumers and queues of each group (its processes' sockets matched to the broker's
 *      connections by port), next to the broker's totals before anything started;
 *   5. each group's servers deleted at once: delete → gone p50/p95;
 *   3-5 again for each of R rounds, the groups' order alternating (RSS and RabbitMQ in round 1 only).
 * Cleanup, also on failure or Ctrl-C: servers, processes (SIGTERM, then SIGKILL), aggregates,
 * compute services (Nova deletes their compute nodes, resource providers and host mappings),
 * any resource provider still named like a bench host, the hosts' compute.<host> queues, the
 * project and its quota, the image. Leftovers of a killed run (its pid file, down nd-scale-*
 * services, aggregates, projects) are removed first. Talks only to 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleepRaw } from 'node:timers/promises';
import { errorMessage } from '../src/common/errors.js';
import { SYSTEM_ENV } from '../test/support/broker.js';
import {
  agentServing,
  discoverHosts,
  docker,
  dockerSave,
  hostContainers,
  removeGlanceCacheTags,
  spawnAgent,
  type AgentProcess,
} from '../test/support/lab.js';
import { LAB_ENDPOINTS, LAB_RELEASE, labRabbitmqctl } from '../test/support/lab-env.js';
import { labAdminToken, labRequest, type RestReply } from '../test/support/nova-api.js';
import { stat } from './support.js';

// ---------------------------------------------------------------- arguments

interface Args {
  hosts: number;
  servers: number;
  docker: boolean;
  novaCompute: boolean;
  idleS: number;
  rounds: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { hosts: 10, servers: 40, docker: false, novaCompute: true, idleS: 60, rounds: 1 };
  for (let i = 0; i < argv.length; i++) {
    const o = argv[i];
    if (o === '--hosts') a.hosts = Number(argv[++i]);
    else if (o === '--servers') a.servers = Number(argv[++i]);
    else if (o === '--idle') a.idleS = Number(argv[++i]);
    else if (o === '--rounds') a.rounds = Number(argv[++i]);
    else if (o === '--docker') a.docker = true;
    else if (o === '--no-nova-compute') a.novaCompute = false;
    else throw new Error(`unknown argument ${o ?? ''}`);
  }
  for (const [k, v] of [
    ['--hosts', a.hosts],
    ['--servers', a.servers],
    ['--rounds', a.rounds],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`bad ${k}: ${v}`);
  }
  if (!Number.isFinite(a.idleS) || a.idleS < 0) throw new Error(`bad --idle: ${a.idleS}`);
  return a;
}

const ARGS = parseArgs(process.argv.slice(2));
if (LAB_RELEASE !== 'zed') throw new Error('the scale bench runs nova-compute from the Zed lab (python3-nova)');
const RUN = randomUUID().slice(0, 6);
const PREFIX = 'nd-scale';
const NAME = `${PREFIX}-${RUN}`;
const RUN_DIR = join(tmpdir(), NAME);
/** One run at a time: the host names are fixed, and a run removes what an earlier one left. */
const LOCK = join(tmpdir(), `${PREFIX}.lock`);
const NOVA = LAB_ENDPOINTS.nova;
const KEYSTONE = LAB_ENDPOINTS.keystone;
const GLANCE = LAB_ENDPOINTS.glance;
const PLACEMENT = LAB_ENDPOINTS.placement;
/** 2.53: services and hypervisors by uuid, `networks: none` (2.37) on create. */
const MICROVERSION = { 'OpenStack-API-Version': 'compute 2.53', 'X-OpenStack-Nova-API-Version': '2.53' };
/** How many processes of a group start at once: 2 cores, and python's start-up alone is seconds of CPU. */
const START_AT_ONCE = 5;
const REGISTER_MS = 300_000;
const POLL_MS = 500;
const SETTLE_MS = 900_000;

type GroupKey = 'a' | 'n';

interface Group {
  key: GroupKey;
  what: string;
  hosts: string[];
  zone: string;
  aggregate?: number;
}

const GROUPS: Group[] = [
  {
    key: 'a',
    what: ARGS.docker ? 'nova-docker agents (Docker driver)' : 'nova-docker agents (fake.FakeDriver)',
    hosts: Array.from({ length: ARGS.hosts }, (_, i) => `${PREFIX}-a-${i}`),
    zone: `${NAME}-a`,
  },
  ...(ARGS.novaCompute
    ? [
        {
          key: 'n' as const,
          what: 'nova-compute (Zed, fake.FakeDriver)',
          hosts: Array.from({ length: ARGS.hosts }, (_, i) => `${PREFIX}-n-${i}`),
          zone: `${NAME}-n`,
        },
      ]
    : []),
];

// Ctrl-C or SIGTERM: every sleep and request throws, so the finally block cleans up; a second Ctrl-C
// exits at once. One that comes within a second of the first is the same one twice (timeout(1), for one,
// forwards SIGINT to its child and then to its whole process group).
const abort = new AbortController();
let interruptedAt = 0;
function interrupted(signal: NodeJS.Signals): void {
  if (abort.signal.aborted) {
    if (signal === 'SIGINT' && Date.now() - interruptedAt > 1000) process.exit(130);
    return;
  }
  interruptedAt = Date.now();
  console.error(`\n${signal}: cleaning up (Ctrl-C again to quit at once)`);
  abort.abort();
}
process.on('SIGINT', interrupted);
process.on('SIGTERM', interrupted);
let cleaningUp = false;

async function sleep(ms: number): Promise<void> {
  await sleepRaw(ms, undefined, cleaningUp ? {} : { signal: abort.signal });
}

function log(msg: string): void {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

/** `fn` over `items`, at most `limit` at a time; every item runs, the first failure is thrown after. */
async function eachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const errors: unknown[] = [];
  await Promise.all(
    Array.from({ length: Math.min(limit, queue.length) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        await fn(item).catch((e: unknown) => errors.push(e));
      }
    }),
  );
  if (errors.length > 0) throw errors[0];
}

// ---------------------------------------------------------------- REST

let adminToken = '';
let projectToken = '';

async function refreshTokens(): Promise<void> {
  adminToken = (await labAdminToken()).token;
  if (project) projectToken = (await labAdminToken(project.name)).token;
}

async function call(
  method: string,
  url: string,
  opts: { body?: unknown; headers?: Record<string, string>; project?: boolean; timeoutMs?: number } = {},
): Promise<RestReply> {
  const signal = AbortSignal.any([
    ...(cleaningUp ? [] : [abort.signal]),
    AbortSignal.timeout(opts.timeoutMs ?? 120_000),
  ]);
  return await labRequest(method, url, {
    token: opts.project ? projectToken : adminToken,
    body: opts.body,
    headers: opts.headers ?? {},
    signal,
  });
}

function ok(r: RestReply, codes: number[], what: string): RestReply {
  if (!codes.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${r.text.slice(0, 400)}`);
  return r;
}

async function nova(
  method: string,
  path: string,
  body?: unknown,
  opts: { project?: boolean; timeoutMs?: number } = {},
): Promise<RestReply> {
  return await call(method, `${NOVA}${path}`, { body, headers: MICROVERSION, ...opts });
}

// ---------------------------------------------------------------- project, image, flavor

let project: { id: string; name: string } | undefined;
let imageId: string | undefined;

/** A project of the bench's own, the admin user an admin in it, instances/cores/RAM unlimited. */
async function createProject(): Promise<void> {
  const me = await labAdminToken();
  const p = ok(
    await call('POST', `${KEYSTONE}/projects`, {
      body: { project: { name: NAME, domain_id: 'default', description: 'nova-docker scale bench' } },
    }),
    [201],
    'keystone project create',
  ).body as { project: { id: string } };
  project = { id: p.project.id, name: NAME };
  const roles = ok(await call('GET', `${KEYSTONE}/roles?name=admin`), [200], 'keystone roles').body as {
    roles: Array<{ id: string }>;
  };
  const role = roles.roles[0]?.id;
  if (!role) throw new Error('keystone has no admin role');
  ok(
    await call('PUT', `${KEYSTONE}/projects/${project.id}/users/${me.userId}/roles/${role}`),
    [204],
    'role assignment',
  );
  ok(
    await nova('PUT', `/os-quota-sets/${project.id}`, {
      quota_set: { instances: -1, cores: -1, ram: -1 },
    }),
    [200],
    'quota update',
  );
  await refreshTokens();
}

async function deleteProject(p: { id: string }): Promise<void> {
  await nova('DELETE', `/os-quota-sets/${p.id}`);
  const r = await call('DELETE', `${KEYSTONE}/projects/${p.id}`);
  if (r.status !== 204 && r.status !== 404) throw new Error(`project ${p.id} delete: HTTP ${r.status}`);
}

/** A few bytes for the fake drivers (they never read it); the busybox `docker save` for the Docker driver. */
async function createImage(): Promise<string> {
  const meta = ARGS.docker
    ? { container_format: 'docker', disk_format: 'raw' }
    : { container_format: 'bare', disk_format: 'raw' };
  const r = ok(
    await call('POST', `${GLANCE}/v2/images`, {
      body: { name: `${NAME}-image`, visibility: 'private', ...meta },
      project: true,
    }),
    [201],
    'glance image create',
  );
  const id = (r.body as { id: string }).id;
  imageId = id;
  let bytes: Uint8Array = new Uint8Array(512);
  if (ARGS.docker) {
    const tar = await dockerSave('busybox:latest');
    bytes = new Uint8Array(readFileSync(tar));
    rmSync(join(tar, '..'), { recursive: true, force: true });
  }
  ok(
    await call('PUT', `${GLANCE}/v2/images/${id}/file`, {
      body: bytes,
      headers: { 'Content-Type': 'application/octet-stream' },
      project: true,
    }),
    [204],
    'glance upload',
  );
  return id;
}

async function flavorId(name: string): Promise<string> {
  const r = ok(await nova('GET', '/flavors'), [200], 'GET /flavors');
  const f = (r.body as { flavors: Array<{ id: string; name: string }> }).flavors.find((x) => x.name === name);
  if (!f) throw new Error(`no flavor ${name}`);
  return f.id;
}

// ---------------------------------------------------------------- hosts: registration

interface NovaService {
  id: string;
  host: string;
  binary: string;
  state: string;
  status: string;
}

async function computeServices(): Promise<NovaService[]> {
  const r = ok(await nova('GET', '/os-services?binary=nova-compute'), [200], 'GET /os-services');
  return (r.body as { services: NovaService[] }).services;
}

/**
 * Hosts whose compute service is up and whose resource provider Placement has: what the scheduler can pick
 * once the host is mapped to a cell. (GET /os-hypervisors would only list them after discover_hosts.)
 */
async function registeredHosts(): Promise<Set<string>> {
  const [services, providers] = await Promise.all([computeServices(), resourceProviders()]);
  const rps = new Set(providers.map((rp) => rp.name));
  return new Set(services.filter((s) => s.state === 'up' && rps.has(s.host)).map((s) => s.host));
}

const PLACEMENT_VERSION = { 'OpenStack-API-Version': 'placement 1.14' };

async function resourceProviders(): Promise<Array<{ uuid: string; name: string }>> {
  const r = ok(
    await call('GET', `${PLACEMENT}/resource_providers`, { headers: PLACEMENT_VERSION }),
    [200],
    'GET /resource_providers',
  );
  return (r.body as { resource_providers: Array<{ uuid: string; name: string }> }).resource_providers;
}

/** Resolves once `host` is registered; one poll of the API per second serves every waiter. */
class RegistrationWatch {
  private readonly waiters = new Map<string, Array<() => void>>();
  private timer: Promise<void> | undefined;
  private error: unknown;

  async wait(host: string, alive: () => string | undefined): Promise<void> {
    const t0 = performance.now();
    const done = new Promise<void>((resolve) => {
      const list = this.waiters.get(host) ?? [];
      list.push(resolve);
      this.waiters.set(host, list);
    });
    this.timer ??= this.loop();
    for (;;) {
      const dead = alive();
      if (dead !== undefined) throw new Error(`${host}: ${dead}`);
      if (this.error !== undefined)
        throw new Error(`watching registrations: ${errorMessage(this.error)}`, { cause: this.error });
      if (performance.now() - t0 > REGISTER_MS) throw new Error(`${host} not registered after ${REGISTER_MS} ms`);
      const settled = await Promise.race([done.then(() => true), sleep(500).then(() => false)]);
      if (settled) return;
    }
  }

  private async loop(): Promise<void> {
    try {
      while (this.waiters.size > 0) {
        const up = await registeredHosts();
        for (const [host, list] of this.waiters) {
          if (!up.has(host)) continue;
          this.waiters.delete(host);
          for (const r of list) r();
        }
        await sleep(1000);
      }
    } catch (err) {
      this.error = err;
    } finally {
      this.timer = undefined;
    }
  }
}

const registration = new RegistrationWatch();

// ---------------------------------------------------------------- the processes

interface HostProcess {
  host: string;
  group: GroupKey;
  pid: number;
  proc: ChildProcess;
  /** ms from spawn to registered */
  startMs?: number;
  agent?: AgentProcess;
  logFile?: string;
}

const procs: HostProcess[] = [];

function recordPid(pid: number): void {
  writeFileSync(join(RUN_DIR, 'pids'), `${pid}\n`, { flag: 'a' });
}

async function startAgentHost(host: string): Promise<void> {
  const t0 = performance.now();
  const extra =
    `[DEFAULT]\ndebug = false\nstate_path = ${join(RUN_DIR, host)}\n` +
    (ARGS.docker ? '' : 'compute_driver = fake.FakeDriver\n');
  // the flags and environment install.sh gives the service
  const agent = spawnAgent(host, extra, ['--max-semi-space-size=1']);
  const pid = agent.proc.pid;
  if (pid === undefined) throw new Error(`${host}: the agent did not start`);
  recordPid(pid);
  const p: HostProcess = { host, group: 'a', pid, proc: agent.proc, agent };
  procs.push(p);
  try {
    // registered (service and compute node) comes before the agent consumes its queue
    await registration.wait(host, () =>
      agent.proc.exitCode === null ? undefined : `agent exited ${agent.proc.exitCode}`,
    );
    await agentServing(agent);
  } catch (err) {
    throw new Error(`${errorMessage(err)}\n${agent.log().slice(-3000)}`, { cause: err });
  }
  p.startMs = performance.now() - t0;
}

const NOVA_COMPUTE_MAIN = `#!/usr/bin/python3
import sys
from nova.cmd.compute import main
sys.exit(main())
`;

/** A nova.conf for one real nova-compute with Nova's fake driver (as ../shared/lab/fake-compute.sh writes it). */
function novaComputeConf(host: string, dir: string): string {
  const auth = `auth_type = password
auth_url = ${KEYSTONE}
project_domain_name = Default
user_domain_name = Default
project_name = service
region_name = RegionOne`;
  return `[DEFAULT]
host = ${host}
compute_driver = fake.FakeDriver
transport_url = ${LAB_ENDPOINTS.transportUrl}
my_ip = 127.0.0.1
state_path = ${dir}
instances_path = ${dir}/instances
log_file = ${dir}/nova-compute.log
debug = false
# SIGTERM: stop within seconds (the default waits up to 60 s for greenthreads)
graceful_shutdown_timeout = 5
[oslo_concurrency]
lock_path = ${dir}/tmp
[vnc]
enabled = false
[glance]
region_name = RegionOne
[cinder]
os_region_name = RegionOne
[placement]
${auth}
username = placement
password = labservice
[neutron]
${auth}
username = nova
password = labservice
[service_user]
send_service_user_token = true
${auth}
username = nova
password = labservice
`;
}

async function startNovaComputeHost(host: string): Promise<void> {
  const t0 = performance.now();
  const dir = join(RUN_DIR, host);
  for (const d of [dir, join(dir, 'instances'), join(dir, 'tmp')]) mkdirSync(d, { recursive: true });
  const conf = join(dir, 'nova-compute.conf');
  writeFileSync(conf, novaComputeConf(host, dir));
  const { uid, gid } = novaUser();
  for (const d of [dir, join(dir, 'instances'), join(dir, 'tmp')]) chownSync(d, uid, gid);
  const out = join(dir, 'nova-compute.out');
  const fd = openSync(out, 'a');
  const proc = spawn(
    'setpriv',
    [
      '--reuid=nova',
      '--regid=nova',
      '--init-groups',
      '/usr/bin/python3',
      join(RUN_DIR, 'nova-compute'),
      '--config-file',
      conf,
    ],
    { stdio: ['ignore', fd, fd], env: SYSTEM_ENV },
  );
  closeSync(fd);
  const pid = proc.pid;
  if (pid === undefined) throw new Error(`${host}: nova-compute did not start`);
  recordPid(pid);
  const p: HostProcess = { host, group: 'n', pid, proc, logFile: join(dir, 'nova-compute.log') };
  procs.push(p);
  try {
    await registration.wait(host, () => (proc.exitCode === null ? undefined : `nova-compute exited ${proc.exitCode}`));
  } catch (err) {
    const tail = (f: string): string => (existsSync(f) ? readFileSync(f, 'utf8').slice(-3000) : '');
    throw new Error(`${errorMessage(err)}\n${tail(out)}${tail(p.logFile ?? '')}`, { cause: err });
  }
  p.startMs = performance.now() - t0;
}

let novaIds: { uid: number; gid: number } | undefined;

function novaUser(): { uid: number; gid: number } {
  if (novaIds) return novaIds;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('nova:'));
  const f = line?.split(':');
  if (!f) throw new Error('no user nova (python3-nova) on this machine');
  novaIds = { uid: Number(f[2]), gid: Number(f[3]) };
  return novaIds;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code (null: killed by a signal). */
async function stopProcess(p: HostProcess, graceMs = 20_000): Promise<number | null> {
  if (p.proc.exitCode !== null || p.proc.signalCode !== null) return p.proc.exitCode;
  const exited = new Promise<number | null>((r) => p.proc.once('exit', (c) => r(c)));
  p.proc.kill('SIGTERM');
  const t = setTimeout(() => p.proc.kill('SIGKILL'), graceMs);
  const code = await exited;
  clearTimeout(t);
  return code;
}

// ---------------------------------------------------------------- /proc: RSS and CPU

function rssKb(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** The pids whose command line contains `needle`. */
function pidsOf(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(needle)) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

const CLK_TCK = 100;

/** utime + stime of `pid`, in seconds. */
function cpuS(pid: number): number {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}

/** The control plane's processes whose CPU the bench reads, by what their command line names. */
const CONTROL_PLANE = {
  conductor: '/usr/bin/nova-conductor',
  scheduler: '/usr/bin/nova-scheduler',
  placement: 'placement-uwsgi.ini',
  api: 'nova-api-uwsgi.ini',
} as const;
type Service = keyof typeof CONTROL_PLANE;
type CpuSample = Record<Service, Map<number, number>>;

function cpuSample(): CpuSample {
  const one = (needle: string): Map<number, number> => new Map(pidsOf(needle).map((p) => [p, cpuS(p)]));
  return {
    conductor: one(CONTROL_PLANE.conductor),
    scheduler: one(CONTROL_PLANE.scheduler),
    placement: one(CONTROL_PLANE.placement),
    api: one(CONTROL_PLANE.api),
  };
}

/** CPU seconds each service spent between two samples (processes present in both; a restart would hide). */
function cpuSpent(a: CpuSample, b: CpuSample): Record<Service, number> {
  const d = (x: Map<number, number>, y: Map<number, number>): number =>
    [...y].reduce((sum, [pid, v]) => sum + (x.has(pid) ? v - (x.get(pid) ?? 0) : 0), 0);
  return {
    conductor: d(a.conductor, b.conductor),
    scheduler: d(a.scheduler, b.scheduler),
    placement: d(a.placement, b.placement),
    api: d(a.api, b.api),
  };
}

// ---------------------------------------------------------------- RabbitMQ

interface BrokerView {
  connections: number;
  channels: number;
  consumers: number;
  queues: number;
}

async function rabbitJson<T>(...args: string[]): Promise<T[]> {
  const out = await labRabbitmqctl('-q', ...args, '--formatter', 'json');
  return JSON.parse(out.trim() || '[]') as T[];
}

/** Local TCP ports of `pids`' sockets that talk to the broker's port. */
function brokerPorts(pids: number[]): Set<number> {
  const inodes = new Set<string>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m?.[1]) inodes.add(m[1]);
      } catch {
        // closed meanwhile
      }
    }
  }
  const ports = new Set<number>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const local = f[1]?.split(':')[1];
      const remote = f[2]?.split(':')[1];
      const inode = f[9];
      if (!local || !remote || !inode) continue;
      if (parseInt(remote, 16) === LAB_ENDPOINTS.rabbitPort && inodes.has(inode)) ports.add(parseInt(local, 16));
    }
  }
  return ports;
}

/** The broker's totals, and per group what its processes' connections hold (matched by client port). */
async function brokerView(): Promise<{ total: BrokerView; byGroup: Map<GroupKey, BrokerView> }> {
  const conns = await rabbitJson<{ pid: string; peer_port: number }>('list_connections', 'pid', 'peer_port');
  const chans = await rabbitJson<{ pid: string; connection: string }>('list_channels', 'pid', 'connection');
  const cons = await rabbitJson<{ queue_name: string; channel_pid: string }>(
    'list_consumers',
    'queue_name',
    'channel_pid',
  );
  const queues = await rabbitJson<{ name: string }>('list_queues', 'name');
  const total = { connections: conns.length, channels: chans.length, consumers: cons.length, queues: queues.length };
  const byGroup = new Map<GroupKey, BrokerView>();
  for (const g of GROUPS) {
    const ports = brokerPorts(procs.filter((p) => p.group === g.key && p.proc.exitCode === null).map((p) => p.pid));
    const myConns = new Set(conns.filter((c) => ports.has(c.peer_port)).map((c) => c.pid));
    const myChans = new Set(chans.filter((c) => myConns.has(c.connection)).map((c) => c.pid));
    const myCons = cons.filter((c) => myChans.has(c.channel_pid));
    byGroup.set(g.key, {
      connections: myConns.size,
      channels: myChans.size,
      consumers: myCons.length,
      queues: new Set(myCons.map((c) => c.queue_name)).size,
    });
  }
  return { total, byGroup };
}

function showBroker(b: BrokerView): string {
  return `${b.connections} conn, ${b.channels} ch, ${b.consumers} consumers, ${b.queues} queues`;
}

// ---------------------------------------------------------------- servers

interface ServerView {
  id: string;
  name: string;
  status: string;
  'OS-EXT-SRV-ATTR:host'?: string | null;
  fault?: { message?: string } | null;
}

interface Boot {
  id: string;
  t0: number;
  activeMs?: number;
  host?: string;
  error?: string;
  deleteT0?: number;
  deleteMs?: number;
}

/** Every server the bench POSTed (deleted at the end, also after a failure). */
const created = new Map<string, GroupKey>();

async function listServers(namePrefix: string): Promise<ServerView[]> {
  const r = ok(
    await nova('GET', `/servers/detail?name=${encodeURIComponent(`^${namePrefix}`)}&limit=1000`, undefined, {
      project: true,
    }),
    [200],
    'GET /servers/detail',
  );
  return (r.body as { servers: ServerView[] }).servers;
}

/** One GET per tick for the group's pending servers until `done` holds for each (or SETTLE_MS passes). */
async function pollGroup(
  namePrefix: string,
  boots: Boot[],
  done: (b: Boot, s: ServerView | undefined, now: number) => boolean,
): Promise<void> {
  const pending = new Set(boots);
  const t0 = performance.now();
  while (pending.size > 0) {
    const t = performance.now();
    const list = await listServers(namePrefix);
    const now = performance.now();
    const byId = new Map(list.map((s) => [s.id, s]));
    for (const b of pending) if (done(b, byId.get(b.id), now)) pending.delete(b);
    if (pending.size === 0) return;
    if (now - t0 > SETTLE_MS) throw new Error(`${pending.size} server(s) not settled after ${SETTLE_MS} ms`);
    await sleep(Math.max(0, POLL_MS - (performance.now() - t)));
  }
}

interface BurstResult {
  /** The servers' name prefix (group and round). */
  prefix: string;
  boots: Boot[];
  wallMs: number;
  cpu: Record<Service, number>;
  /** CPU seconds the group's own processes spent meanwhile. */
  hostCpu: number;
}

/** CPU seconds of the group's processes so far. */
function groupCpu(key: GroupKey): number {
  return procs.filter((p) => p.group === key).reduce((a, p) => a + cpuS(p.pid), 0);
}

async function burst(g: Group, round: number, flavor: string, image: string): Promise<BurstResult> {
  await refreshTokens();
  const prefix = `${NAME}-${g.key}${round}-`;
  const c0 = cpuSample();
  const h0 = groupCpu(g.key);
  const t0 = performance.now();
  const boots = await Promise.all(
    Array.from({ length: ARGS.servers }, async (_, j): Promise<Boot> => {
      const b: Boot = { id: '', t0: performance.now() };
      const r = await nova(
        'POST',
        '/servers',
        {
          server: {
            name: `${prefix}${j}`,
            imageRef: image,
            flavorRef: flavor,
            networks: 'none',
            availability_zone: g.zone,
          },
        },
        { project: true, timeoutMs: 600_000 },
      );
      if (r.status !== 202) {
        b.error = `POST: HTTP ${r.status} ${r.text.slice(0, 200)}`;
        return b;
      }
      b.id = (r.body as { server: { id: string } }).server.id;
      created.set(b.id, g.key);
      return b;
    }),
  );
  log(
    `${g.key}: ${boots.filter((b) => b.id).length} POSTs answered in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
  );
  await pollGroup(
    prefix,
    boots.filter((b) => b.id),
    (b, s, now) => {
      if (s?.status === 'ACTIVE') {
        b.activeMs = now - b.t0;
        b.host = s['OS-EXT-SRV-ATTR:host'] ?? undefined;
        return true;
      }
      if (s?.status === 'ERROR') {
        b.error = s.fault?.message ?? 'ERROR (no fault)';
        b.host = s['OS-EXT-SRV-ATTR:host'] ?? undefined;
        return true;
      }
      return false;
    },
  );
  const wallMs = performance.now() - t0;
  return { prefix, boots, wallMs, cpu: cpuSpent(c0, cpuSample()), hostCpu: groupCpu(g.key) - h0 };
}

async function deleteBurst(b: BurstResult): Promise<void> {
  await refreshTokens();
  const live = b.boots.filter((x) => x.id);
  await Promise.all(
    live.map(async (b) => {
      b.deleteT0 = performance.now();
      const r = await nova('DELETE', `/servers/${b.id}`, undefined, { project: true, timeoutMs: 600_000 });
      if (r.status !== 204 && r.status !== 404) b.error ??= `DELETE: HTTP ${r.status}`;
    }),
  );
  await pollGroup(b.prefix, live, (b, s, now) => {
    if (s !== undefined) return false;
    b.deleteMs = now - (b.deleteT0 ?? now);
    created.delete(b.id);
    return true;
  });
}

interface Spread {
  /** Servers per host, most first (hosts with none included). */
  counts: number[];
  /** `<host index>:<servers>` of the hosts used, most first. */
  hosts: string;
  used: number;
  min: number;
  max: number;
  stddev: number;
}

function spread(g: Group, boots: Boot[]): Spread {
  const per = new Map(g.hosts.map((h) => [h, 0]));
  for (const b of boots) if (b.activeMs !== undefined && b.host) per.set(b.host, (per.get(b.host) ?? 0) + 1);
  const counts = [...per.values()].sort((x, y) => y - x);
  const mean = counts.reduce((a, c) => a + c, 0) / counts.length;
  const stddev = Math.sqrt(counts.reduce((a, c) => a + (c - mean) ** 2, 0) / counts.length);
  const hosts = [...per]
    .filter(([, c]) => c > 0)
    .sort((x, y) => y[1] - x[1])
    .map(([h, c]) => `${h.slice(h.lastIndexOf('-') + 1)}:${c}`)
    .join(' ');
  return {
    counts,
    hosts,
    used: counts.filter((c) => c > 0).length,
    min: Math.min(...counts),
    max: Math.max(...counts),
    stddev,
  };
}

// ---------------------------------------------------------------- aggregates

async function createAggregate(g: Group): Promise<void> {
  const r = ok(
    await nova('POST', '/os-aggregates', { aggregate: { name: g.zone, availability_zone: g.zone } }),
    [200],
    `aggregate ${g.zone}`,
  );
  g.aggregate = (r.body as { aggregate: { id: number } }).aggregate.id;
  // one at a time: nova-api mirrors each into Placement's aggregate (a read-modify-write of the provider)
  for (const h of g.hosts) {
    ok(
      await nova('POST', `/os-aggregates/${g.aggregate}/action`, { add_host: { host: h } }),
      [200],
      `aggregate add ${h}`,
    );
  }
}

async function deleteAggregate(id: number): Promise<void> {
  const r = await nova('GET', `/os-aggregates/${id}`);
  if (r.status === 404) return;
  const hosts = (r.body as { aggregate?: { hosts?: string[] } }).aggregate?.hosts ?? [];
  for (const h of hosts) await nova('POST', `/os-aggregates/${id}/action`, { remove_host: { host: h } });
  const d = await nova('DELETE', `/os-aggregates/${id}`);
  if (d.status !== 200 && d.status !== 404) throw new Error(`aggregate ${id} delete: HTTP ${d.status} ${d.text}`);
}

// ---------------------------------------------------------------- cleanup

const isBenchHost = (h: string): boolean => /^nd-scale-[an]-\d+$/.test(h);

/** Deletes the bench hosts' compute services (their compute nodes, providers, host mappings go with them). */
async function deleteServices(only?: (s: NovaService) => boolean): Promise<void> {
  for (const s of await computeServices()) {
    if (!isBenchHost(s.host) || (only && !only(s))) continue;
    const r = await nova('DELETE', `/os-services/${s.id}`);
    if (r.status !== 204 && r.status !== 404) throw new Error(`service ${s.host} delete: HTTP ${r.status} ${r.text}`);
  }
  // a provider Nova did not remove (a compute node it never knew): by name
  for (const rp of (await resourceProviders()).filter((x) => isBenchHost(x.name))) {
    await call('DELETE', `${PLACEMENT}/resource_providers/${rp.uuid}`, { headers: PLACEMENT_VERSION });
    console.error(`cleanup: removed leftover resource provider ${rp.name}`);
  }
}

async function deleteQueues(): Promise<void> {
  const queues = await rabbitJson<{ name: string }>('list_queues', 'name');
  for (const q of queues.filter((x) => /^compute\.nd-scale-[an]-\d+$/.test(x.name))) {
    await labRabbitmqctl('-q', 'delete_queue', q.name);
  }
}

/** Servers of the bench's projects (all of them, by name), deleted and waited for. */
async function deleteAllServers(projectId: string): Promise<void> {
  const r = ok(
    await nova('GET', `/servers?all_tenants=1&project_id=${projectId}&limit=1000`),
    [200],
    'GET leftover servers',
  );
  const ids = (r.body as { servers: Array<{ id: string }> }).servers.map((s) => s.id);
  await Promise.all(ids.map((id) => nova('DELETE', `/servers/${id}`)));
  await pollUntilGone(ids);
}

async function pollUntilGone(ids: string[]): Promise<void> {
  const deadline = performance.now() + 600_000;
  let left = ids;
  while (left.length > 0 && performance.now() < deadline) {
    const still = await Promise.all(
      left.map(async (id) => ((await nova('GET', `/servers/${id}`)).status === 404 ? '' : id)),
    );
    left = still.filter(Boolean);
    if (left.length > 0) await sleep(2000);
  }
  if (left.length > 0) throw new Error(`servers not deleted: ${left.join(' ')}`);
}

/** Whether NUL-separated command line `cmd` is an agent's whose --config-file names a bench host. */
function benchAgentConf(cmd: string): boolean {
  const args = cmd.split('\0');
  const conf = args[args.indexOf('--config-file') + 1];
  if (!conf || !args.includes('compute') || !existsSync(conf)) return false;
  return /^host = nd-scale-a-\d+$/m.test(readFileSync(conf, 'utf8'));
}

/** The directory spawnAgent wrote the agent's nova.conf into. */
function agentConfDir(p: HostProcess): string | undefined {
  const args = p.proc.spawnargs;
  const conf = args[args.indexOf('--config-file') + 1];
  return p.agent && conf ? dirname(conf) : undefined;
}

/** What a killed run left: its processes (pid files), down nd-scale-* services, projects, images, aggregates. */
async function removeLeftovers(): Promise<void> {
  let killed = false;
  for (const d of readdirSync(tmpdir()).filter((x) => /^nd-scale-[0-9a-f]{6}$/.test(x))) {
    const dir = join(tmpdir(), d);
    const pidFile = join(dir, 'pids');
    if (existsSync(pidFile)) {
      for (const pid of readFileSync(pidFile, 'utf8').split('\n').filter(Boolean).map(Number)) {
        let cmd: string;
        try {
          cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        } catch {
          continue;
        }
        // only a process of that run: a nova-compute's config lives in the run's directory, an agent's names a bench host
        if (cmd.includes(dir) || benchAgentConf(cmd)) {
          console.error(`leftover: killing pid ${pid} of run ${d}`);
          process.kill(pid, 'SIGKILL');
          killed = true;
        }
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
  // a killed process's service stays up until Nova's service_down_time (60 s) passes without a report
  let services = (await computeServices()).filter((s) => isBenchHost(s.host));
  const deadline = performance.now() + (killed ? 120_000 : 0);
  while (services.some((s) => s.state === 'up') && performance.now() < deadline) {
    await sleep(5000);
    services = (await computeServices()).filter((s) => isBenchHost(s.host));
  }
  const up = services.filter((s) => s.state === 'up');
  if (up.length > 0) {
    throw new Error(`compute services ${up.map((s) => s.host).join(' ')} are up: another scale bench is running?`);
  }
  const projects = ok(await call('GET', `${KEYSTONE}/projects`), [200], 'GET projects').body as {
    projects: Array<{ id: string; name: string }>;
  };
  for (const p of projects.projects.filter((x) => /^nd-scale-[0-9a-f]{6}$/.test(x.name))) {
    console.error(`leftover: project ${p.name}`);
    await deleteAllServers(p.id);
    await deleteProject(p);
  }
  const images = ok(await call('GET', `${GLANCE}/v2/images?limit=1000`), [200], 'GET images').body as {
    images: Array<{ id: string; name?: string }>;
  };
  for (const i of images.images.filter((x) => /^nd-scale-[0-9a-f]{6}-image$/.test(x.name ?? ''))) {
    console.error(`leftover: image ${i.name ?? i.id}`);
    await call('DELETE', `${GLANCE}/v2/images/${i.id}`);
    await removeGlanceCacheTags(i.id);
  }
  const aggs = ok(await nova('GET', '/os-aggregates'), [200], 'GET aggregates').body as {
    aggregates: Array<{ id: number; name: string }>;
  };
  for (const a of aggs.aggregates.filter((x) => x.name.startsWith(`${PREFIX}-`))) {
    console.error(`leftover: aggregate ${a.name}`);
    await deleteAggregate(a.id);
  }
  if (services.length > 0) console.error(`leftover: ${services.length} compute service(s)`);
  await deleteServices();
}

// ---------------------------------------------------------------- report

interface GroupReport {
  group: Group;
  startMs: number[];
  rssIdleKb: number[];
  rssRunningKb: number[];
  idleConductorS?: number;
  /** The group's own processes, CPU seconds per idle minute (all of them). */
  idleHostCpuS?: number;
  bursts: BurstResult[];
  spreads: Spread[];
  brokerIdle?: BrokerView;
  brokerRunning?: BrokerView;
}

const s1 = (ms: number): string => (ms / 1000).toFixed(1);
const mbOf = (kb: number): string => (kb / 1024).toFixed(0);

function rssCell(kb: number[]): string {
  const ok = kb.filter((x) => Number.isFinite(x));
  const sum = ok.reduce((a, b) => a + b, 0);
  return `${mbOf(sum / Math.max(1, ok.length))} / ${mbOf(sum)}`;
}

function printTable(reports: GroupReport[], total0: BrokerView, totalRunning: BrokerView | undefined): void {
  const head = [
    'group',
    'start → registered p50 / max s',
    'API → ACTIVE p50 / p95 s',
    'all ACTIVE s (each round)',
    'ERROR',
    'hosts used (each round)',
    'servers per host min / max / stddev (each round)',
    'conductor CPU s per burst',
    'scheduler / placement / api CPU s per burst',
    'conductor CPU s per idle min',
    "the N hosts' CPU s: per burst / per idle min",
    'RSS MB mean / total (idle)',
    'RSS MB mean / total (running)',
    'RabbitMQ conn / ch / consumers / queues (running)',
    'delete → gone p50 / p95 s',
  ];
  console.log(`\n| ${head.join(' | ')} |`);
  console.log(`| ${head.map(() => '---').join(' | ')} |`);
  for (const r of reports) {
    const st = stat(r.startMs);
    const boots = r.bursts.flatMap((b) => b.boots);
    const act = stat(boots.flatMap((x) => (x.activeMs === undefined ? [] : [x.activeMs])));
    const del = stat(boots.flatMap((x) => (x.deleteMs === undefined ? [] : [x.deleteMs])));
    const br = r.brokerRunning;
    const each = <T>(xs: T[], f: (x: T) => string): string => xs.map(f).join(', ');
    const mean = (f: (b: BurstResult) => number): string =>
      (r.bursts.reduce((a, b) => a + f(b), 0) / Math.max(1, r.bursts.length)).toFixed(1);
    const cells = [
      `${r.group.key}: ${r.group.what}`,
      `${s1(st.p50)} / ${s1(st.max)}`,
      Number.isFinite(act.p50) ? `${s1(act.p50)} / ${s1(act.p95)}` : '',
      each(r.bursts, (b) => s1(b.wallMs)),
      String(boots.filter((x) => x.error !== undefined).length),
      each(r.spreads, (sp) => `${sp.used}`) + ` of ${r.group.hosts.length}`,
      each(r.spreads, (sp) => `${sp.min} / ${sp.max} / ${sp.stddev.toFixed(2)}`),
      mean((b) => b.cpu.conductor),
      `${mean((b) => b.cpu.scheduler)} / ${mean((b) => b.cpu.placement)} / ${mean((b) => b.cpu.api)}`,
      r.idleConductorS === undefined ? '' : r.idleConductorS.toFixed(2),
      `${mean((b) => b.hostCpu)} / ${r.idleHostCpuS === undefined ? '' : r.idleHostCpuS.toFixed(1)}`,
      rssCell(r.rssIdleKb),
      rssCell(r.rssRunningKb),
      br ? `${br.connections} / ${br.channels} / ${br.consumers} / ${br.queues}` : '',
      Number.isFinite(del.p50) ? `${s1(del.p50)} / ${s1(del.p95)}` : '',
    ];
    console.log(`| ${cells.join(' | ')} |`);
  }
  console.log(
    `\nbroker totals (everyone's): before ${showBroker(total0)}` +
      (totalRunning ? `; with all running ${showBroker(totalRunning)}` : ''),
  );
  for (const r of reports) {
    const errs = r.bursts.flatMap((b) => b.boots).filter((b) => b.error !== undefined);
    if (errs.length > 0) {
      console.log(`${r.group.key}: ${errs.length} failed, e.g. ${errs[0]?.error ?? ''}`);
    }
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  log(
    `scale bench: ${ARGS.hosts} hosts per group, ${ARGS.servers} servers per group at once, ` +
      `${ARGS.docker ? 'Docker' : 'fake'} driver for the agents, nova-compute ${ARGS.novaCompute ? 'on' : 'off'}, ` +
      `idle ${ARGS.idleS} s, run ${RUN}, load ${load}`,
  );
  const reports = new Map<GroupKey, GroupReport>(
    GROUPS.map((g) => [g.key, { group: g, startMs: [], rssIdleKb: [], rssRunningKb: [], bursts: [], spreads: [] }]),
  );
  const rep = (k: GroupKey): GroupReport => reports.get(k) as GroupReport;
  let failed = false;
  takeLock();
  try {
    await refreshTokens();
    await removeLeftovers();
    mkdirSync(RUN_DIR, { recursive: true });
    chmodSync(RUN_DIR, 0o755);
    writeFileSync(join(RUN_DIR, 'nova-compute'), NOVA_COMPUTE_MAIN, { mode: 0o755 });
    await createProject();
    const image = await createImage();
    const flavor = await flavorId('m1.tiny');
    log(`project ${NAME}, image ${image}, flavor m1.tiny (${flavor})`);
    const total0 = (await brokerView()).total;
    // the environment install.sh gives the service (inherited by the agents)
    process.env.MALLOC_ARENA_MAX ??= '2';

    // start each group, then let it idle: its conductor CPU per minute
    let idleBefore = 0;
    for (const g of GROUPS) {
      const t0 = performance.now();
      await eachLimit(g.hosts, START_AT_ONCE, g.key === 'a' ? startAgentHost : startNovaComputeHost);
      const r = rep(g.key);
      r.startMs = procs.filter((p) => p.group === g.key).map((p) => p.startMs ?? NaN);
      log(`${g.key}: ${g.hosts.length} hosts registered in ${s1(performance.now() - t0)} s`);
      if (ARGS.idleS > 0) {
        const c0 = cpuSample();
        const h0 = groupCpu(g.key);
        await sleep(ARGS.idleS * 1000);
        const perMin = (cpuSpent(c0, cpuSample()).conductor * 60) / ARGS.idleS;
        r.idleHostCpuS = ((groupCpu(g.key) - h0) * 60) / ARGS.idleS;
        r.idleConductorS = perMin - idleBefore;
        idleBefore = perMin;
        log(`${g.key}: nova-conductor ${perMin.toFixed(2)} CPU s per idle minute with the groups so far`);
      }
    }
    for (const p of procs) rep(p.group).rssIdleKb.push(rssKb(p.pid));
    const idleBroker = await brokerView();
    for (const g of GROUPS) rep(g.key).brokerIdle = idleBroker.byGroup.get(g.key);
    log(`broker, all idle: ${GROUPS.map((g) => `${g.key} ${showBroker(idleBroker.byGroup.get(g.key)!)}`).join('; ')}`);

    await discoverHosts();
    for (const g of GROUPS) await createAggregate(g);
    log(`aggregates and zones ${GROUPS.map((g) => g.zone).join(', ')}`);

    // each round: a burst into each zone (the order alternates), then both deleted
    let running: Awaited<ReturnType<typeof brokerView>> | undefined;
    for (let round = 1; round <= ARGS.rounds; round++) {
      for (const g of round % 2 === 1 ? GROUPS : [...GROUPS].reverse()) {
        const b = await burst(g, round, flavor, image);
        const r = rep(g.key);
        const sp = spread(g, b.boots);
        r.bursts.push(b);
        r.spreads.push(sp);
        log(
          `${g.key} round ${round}: ${b.boots.filter((x) => x.activeMs !== undefined).length}/${ARGS.servers} ACTIVE ` +
            `in ${s1(b.wallMs)} s on ${sp.used} hosts (host:servers ${sp.hosts}), ` +
            `conductor ${b.cpu.conductor.toFixed(1)} CPU s`,
        );
      }
      if (round === 1) {
        for (const p of procs) rep(p.group).rssRunningKb.push(rssKb(p.pid));
        running = await brokerView();
        for (const g of GROUPS) rep(g.key).brokerRunning = running.byGroup.get(g.key);
      }
      for (const g of GROUPS) {
        const b = rep(g.key).bursts[round - 1];
        if (b) await deleteBurst(b);
      }
    }
    printTable([...reports.values()], total0, running?.total);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    cleaningUp = true;
    await cleanup(failed);
    rmSync(LOCK, { force: true });
  }
}

/** The lock file holds the pid of the run that took it; a dead run's lock is taken over. */
function takeLock(): void {
  for (;;) {
    try {
      writeFileSync(LOCK, `${process.pid}\n`, { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number(readFileSync(LOCK, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && existsSync(`/proc/${pid}`)) {
      throw new Error(`another scale bench (pid ${pid}) is running: ${LOCK}`);
    }
    rmSync(LOCK, { force: true });
  }
}

async function cleanup(failed: boolean): Promise<void> {
  const errors: unknown[] = [];
  const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
    await fn().catch((e: unknown) => errors.push(new Error(`${what}: ${String(e)}`)));
  };
  await step('tokens', refreshTokens);
  if (project) {
    const p = project;
    await step('servers', () => deleteAllServers(p.id));
  }
  const codes = await Promise.all(procs.map(async (p) => [p, await stopProcess(p).catch(() => null)] as const));
  const unclean = codes.filter(([p, c]) => p.group === 'a' && c !== 0).map(([p, c]) => `${p.host}=${c}`);
  if (unclean.length > 0) errors.push(new Error(`agents not exiting 0 on SIGTERM: ${unclean.join(' ')}`));
  if (ARGS.docker) {
    await step('containers', async () => {
      for (const h of GROUPS[0]?.hosts ?? []) {
        for (const line of await hostContainers(h)) {
          errors.push(new Error(`container left on ${h}: ${line}`));
          await docker(['rm', '-f', line.split(' ')[0] ?? '']);
        }
      }
    });
  }
  for (const g of GROUPS) {
    const id = g.aggregate;
    if (id !== undefined) await step(`aggregate ${g.zone}`, () => deleteAggregate(id));
  }
  await step('services', () => deleteServices());
  await step('queues', deleteQueues);
  if (project) {
    const p = project;
    await step('project', () => deleteProject(p));
  }
  if (imageId) {
    const id = imageId;
    await step('image', async () => {
      await call('DELETE', `${GLANCE}/v2/images/${id}`);
      if (ARGS.docker) await removeGlanceCacheTags(id);
    });
  }
  for (const p of procs) {
    const dir = agentConfDir(p);
    if (dir?.startsWith(tmpdir())) rmSync(dir, { recursive: true, force: true });
  }
  if (failed || errors.length > 0) console.error(`kept ${RUN_DIR} (nova-compute logs)`);
  else rmSync(RUN_DIR, { recursive: true, force: true });
  for (const e of errors) console.error('cleanup:', e);
  log(`cleaned up (${procs.length} processes stopped)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
