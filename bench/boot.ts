/**
 * Boot latency through the lab's real Nova Zed control plane with our agent as
 * the compute host, next to raw Engine API create+start, plus the agent's idle RSS.
 *
 *   node dist/bench/boot.js [N=10] [--idle 60|300] [--spawn-check-ms MS] [--network NAME]
 *
 * Nova is driven over HTTP (Keystone token, compute API 2.37), not the CLI,
 * whose 5 s polling hides the timing. Phases:
 *   1. fake nova-compute stopped, our agent started as host `nova-docker-bench`,
 *      discover_hosts, the busybox `docker save` tarball uploaded to Glance once,
 *      one warm-up boot (loads the image into docker; deleted after phase 2);
 *   2. N serial rounds: raw Engine API create+start of busybox:latest (network
 *      none, timed; removed untimed) twice, once quiet and once while
 *      GET /servers/{warm-up id} is polled every 50 ms as during a boot (on 2
 *      cores nova-api's CPU use slows dockerd: that variant is the baseline the
 *      agent share is compared with), then one Nova boot (POST → ACTIVE,
 *      polling GET /servers/{id} every 50 ms) and its delete (DELETE → 404);
 *   3. N raw create+start all at once, removed; N Nova boots all POSTed at once,
 *      then all deleted at once. Here one GET /servers/detail?name=… per 50 ms
 *      tick covers every pending server: N pollers hitting GET /servers/{id}
 *      every 50 ms would saturate nova-api (2 workers, each GET also asks the
 *      neutron stub) on a 2-core machine and measure that instead;
 *   4. the agent's VmRSS after 60 s idle (and 300 s with --idle 300).
 * The agent's own share of every boot comes from its `boot timing` debug line
 * (ms since build_and_run_instance arrived); the API → agent part from the
 * timestamp of its "Starting instance..." line against the POST's wall clock.
 *
 * --network NAME (needs test/lab/neutron-lab.sh up; run it under
 * `flock /tmp/nova-docker-net.lock`, as only one agent may serve that host):
 * the agent runs as the lab's Neutron agent host (nova-docker-net), where
 * ports bind, and every boot phase boots one-port servers next to the
 * `--nic none` ones: network NAME (used and kept when it exists, else created
 * with a /24 subnet, and hosted by the DHCP agent before any boot) and a
 * security group of the run's own (`networks: [{uuid}]`, `security_groups`
 * in the POST). One warm-up one-port boot; each serial round boots (and
 * deletes) one `--nic none` and one one-port server after its raw pair; the
 * concurrent phase runs a `--nic none` batch, then a one-port batch. For the
 * port boots the agent's log also gives its plug time and plug →
 * network-vif-plugged received (test/support/agent-log.ts).
 *
 * Everything created (servers, Glance image, its docker tag, raw containers;
 * with --network the ports, the security group and a network made for the
 * run, deleted once its ports are gone) is removed and the agent stopped with
 * SIGTERM at the end, also on failure or Ctrl-C. Talks only to 127.0.0.1 and
 * /var/run/docker.sock.
 */
import { LAB_ENDPOINTS, LAB_NEUTRON } from '../test/support/lab-env.js';
import { randomInt, randomUUID } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleepRaw } from 'node:timers/promises';
import { logTime, plugTiming, type PlugTiming } from '../test/support/agent-log.js';
import { discoverHosts, dockerSave, startAgent, stopFakeCompute, type AgentProcess } from '../test/support/lab.js';
import { labAdminToken, labRequest, type RestReply } from '../test/support/nova-api.js';
import { row, type Stat } from './support.js';

// ---------------------------------------------------------------- arguments

interface Args {
  n: number;
  idle: number[];
  spawnCheckMs: number | undefined;
  /** --network NAME: one-port boots on that Neutron network next to the `--nic none` ones. */
  network: string | undefined;
}

function parseArgs(argv: string[]): Args {
  let n = 10;
  let idleS = 60;
  let spawnCheckMs: number | undefined;
  let network: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--idle') idleS = Number(argv[++i]);
    else if (a === '--spawn-check-ms') spawnCheckMs = Number(argv[++i]);
    else if (a === '--network') network = argv[++i];
    else n = Number(a);
  }
  if (!Number.isInteger(n) || n < 1) throw new Error(`bad N: ${n}`);
  if (!Number.isFinite(idleS) || idleS < 0) throw new Error(`bad --idle: ${idleS}`);
  if (network !== undefined && !/^[\w.-]+$/.test(network)) throw new Error(`bad --network: ${network}`);
  // RSS is read at 60 s, and also at the --idle mark when it is later.
  const idle = idleS > 60 ? [60, idleS] : [idleS];
  return { n, idle, spawnCheckMs, network };
}

const ARGS = parseArgs(process.argv.slice(2));
const N = ARGS.n;
// ports bind only on the host the lab's OVS agent reports (Neutron binds a port to binding:host_id's agent)
const HOST = ARGS.network === undefined ? 'nova-docker-bench' : LAB_NEUTRON.agentHost;
const RUN = randomUUID().slice(0, 8);
const PREFIX = `nd-bench-${RUN}`;
// the lab NOVA_DOCKER_LAB names (zed, 2025.1, 2026.1): the same bench on every release
const NOVA = LAB_ENDPOINTS.nova;
const GLANCE = LAB_ENDPOINTS.glance;
const NEUTRON = `${LAB_NEUTRON.url}/v2.0`;
const MICROVERSION = { 'OpenStack-API-Version': 'compute 2.37', 'X-OpenStack-Nova-API-Version': '2.37' };
const POLL_MS = 50;
const WAIT_MS = 180_000;
const LABEL = 'org.openstack.nova.bench-run';

// Ctrl-C: every sleep throws, so the finally blocks clean up; a second Ctrl-C exits at once.
const abort = new AbortController();
process.on('SIGINT', () => {
  if (abort.signal.aborted) process.exit(130);
  console.error('\ninterrupted: cleaning up (Ctrl-C again to quit at once)');
  abort.abort();
});

/** Set while the finally block cleans up: from then on nothing is cut short by Ctrl-C. */
let cleaningUp = false;

function abortSignal(): AbortSignal | undefined {
  return cleaningUp ? undefined : abort.signal;
}

async function sleep(ms: number): Promise<void> {
  const signal = abortSignal();
  await sleepRaw(ms, undefined, signal ? { signal } : {});
}

// ---------------------------------------------------------------- HTTP (Keystone, Nova, Glance)

let token = '';

type Reply = RestReply;

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const signal = AbortSignal.any([abortSignal() ?? new AbortController().signal, AbortSignal.timeout(60_000)]);
  return await labRequest(method, url, { token, body, headers, signal });
}

function expect(r: Reply, ok: number[], what: string): Reply {
  if (!ok.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${r.text.slice(0, 500)}`);
  return r;
}

const nova = (method: string, path: string, body?: unknown): Promise<Reply> =>
  call(method, `${NOVA}${path}`, body, MICROVERSION);

const neutron = (method: string, path: string, body?: unknown): Promise<Reply> =>
  call(method, `${NEUTRON}${path}`, body);

interface ServerView {
  id: string;
  name?: string;
  status: string;
  fault?: { message?: string; details?: string } | null;
}

function faultOf(s: ServerView): string {
  return s.fault?.message ?? '(no fault recorded)';
}

// ---------------------------------------------------------------- Docker Engine API (unix socket)

const engineAgent = new http.Agent({ keepAlive: true });

function engine(method: string, path: string, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        socketPath: '/var/run/docker.sock',
        path: `/v1.41${path}`,
        method,
        agent: engineAgent,
        headers:
          data === undefined ? {} : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

/** Raw create+start of busybox:latest with network none: what the agent's spawn has to beat. */
async function rawCreateStart(i: number | string): Promise<number> {
  const t0 = performance.now();
  const c = await engine('POST', `/containers/create?name=${PREFIX}-raw-${i}`, {
    Image: 'busybox:latest',
    Labels: { [LABEL]: RUN },
    HostConfig: { NetworkMode: 'none' },
  });
  if (c.status !== 201) throw new Error(`docker create: ${c.status} ${c.text}`);
  const { Id } = JSON.parse(c.text) as { Id: string };
  const s = await engine('POST', `/containers/${Id}/start`);
  if (s.status !== 204) throw new Error(`docker start: ${s.status} ${s.text}`);
  return performance.now() - t0;
}

async function removeRawContainers(): Promise<void> {
  const filters = encodeURIComponent(JSON.stringify({ label: [`${LABEL}=${RUN}`] }));
  const r = await engine('GET', `/containers/json?all=true&filters=${filters}`);
  const list = JSON.parse(r.text) as Array<{ Id: string }>;
  await Promise.all(list.map((c) => engine('DELETE', `/containers/${c.Id}?force=true&v=true`)));
}

// ---------------------------------------------------------------- the agent's log

interface BootTiming {
  instance_uuid: string;
  received: number;
  spawning: number;
  spawned: number;
  active: number;
  ok: boolean;
}

interface AgentTimings {
  timings: Map<string, BootTiming>;
  received: Map<string, number>;
  /** The port boots' plug (test/support/agent-log.ts), filled by waitTimings. */
  plugs: Map<string, PlugTiming>;
}

/** boot timing lines and the wall-clock time of each "Starting instance..." line, by instance uuid. */
function parseAgentLog(log: string): AgentTimings {
  const timings = new Map<string, BootTiming>();
  const received = new Map<string, number>();
  for (const line of log.split('\n')) {
    const t = /boot timing (\{.*\})\s*$/.exec(line);
    if (t) {
      const bt = (JSON.parse(t[1]!) as { boot_timing?: BootTiming }).boot_timing;
      if (bt) timings.set(bt.instance_uuid, bt);
      continue;
    }
    const m = /\[instance: ([0-9a-f-]{36})\] Starting instance\.\.\./.exec(line);
    const at = m ? logTime(line) : undefined;
    if (m && at !== undefined) received.set(m[1]!, at);
  }
  return { timings, received, plugs: new Map() };
}

// ---------------------------------------------------------------- one boot

/** `--nic none`, or one port on the --network network (with the run's security group). */
type Nic = 'none' | 'port';

interface Boot {
  id: string;
  nic: Nic;
  postWall: number;
  t0: number;
  postMs: number;
  activeMs?: number;
  deleteMs?: number;
}

const live = new Set<string>();

async function post(name: string, imageRef: string, nic: Nic = 'none'): Promise<Boot> {
  const nics =
    nic === 'none'
      ? { networks: 'none' }
      : { networks: [{ uuid: mustNet().networkId }], security_groups: [{ name: mustNet().securityGroupId }] };
  const postWall = Date.now();
  const t0 = performance.now();
  const r = expect(
    await nova('POST', '/servers', {
      server: { name, imageRef, flavorRef: '1', ...nics, availability_zone: `nova:${HOST}` },
    }),
    [202],
    `POST /servers (${name})`,
  );
  const id = (r.body as { server: { id: string } }).server.id;
  live.add(id);
  if (nic === 'port') mustNet().servers.add(id);
  return { id, nic, postWall, t0, postMs: performance.now() - t0 };
}

/** GET /servers/{id} every 50 ms (start to start) until ACTIVE; ERROR throws with the fault. */
async function waitActive(b: Boot): Promise<void> {
  const deadline = performance.now() + WAIT_MS;
  for (;;) {
    const t = performance.now();
    const r = expect(await nova('GET', `/servers/${b.id}`), [200], `GET /servers/${b.id}`);
    const s = (r.body as { server: ServerView }).server;
    if (s.status === 'ACTIVE') {
      b.activeMs = performance.now() - b.t0;
      return;
    }
    if (s.status === 'ERROR') throw new Error(`server ${b.id} went to ERROR: ${faultOf(s)}`);
    if (performance.now() > deadline) throw new Error(`server ${b.id} still ${s.status} after ${WAIT_MS} ms`);
    await sleep(Math.max(0, POLL_MS - (performance.now() - t)));
  }
}

/** DELETE, then GET /servers/{id} every 50 ms until 404. */
async function deleteAndWait(b: Boot): Promise<void> {
  const t0 = performance.now();
  expect(await nova('DELETE', `/servers/${b.id}`), [204], `DELETE /servers/${b.id}`);
  await waitGone(b.id, t0);
  b.deleteMs = performance.now() - t0;
}

async function waitGone(id: string, t0: number): Promise<void> {
  for (;;) {
    const t = performance.now();
    const r = expect(await nova('GET', `/servers/${id}`), [200, 404], `GET /servers/${id}`);
    if (r.status === 404) {
      live.delete(id);
      return;
    }
    const s = (r.body as { server: ServerView }).server;
    if (s.status === 'ERROR') throw new Error(`server ${id} went to ERROR while deleting: ${faultOf(s)}`);
    if (performance.now() - t0 > WAIT_MS) throw new Error(`server ${id} still ${s.status} after ${WAIT_MS} ms`);
    await sleep(Math.max(0, POLL_MS - (performance.now() - t)));
  }
}

/** One GET /servers/detail per 50 ms tick for all of them: `until` says when a server is done. */
async function pollList(
  boots: Boot[],
  done: (s: ServerView | undefined, b: Boot) => boolean,
  stamp: (b: Boot, now: number) => void,
): Promise<void> {
  const pending = new Map(boots.map((b) => [b.id, b]));
  const deadline = performance.now() + WAIT_MS;
  while (pending.size > 0) {
    const t = performance.now();
    const r = expect(
      await nova('GET', `/servers/detail?name=${encodeURIComponent(`^${PREFIX}-`)}&limit=1000`),
      [200],
      'GET /servers/detail',
    );
    const now = performance.now();
    const byId = new Map((r.body as { servers: ServerView[] }).servers.map((s) => [s.id, s]));
    for (const [id, b] of pending) {
      const s = byId.get(id);
      if (s?.status === 'ERROR') throw new Error(`server ${id} went to ERROR: ${faultOf(s)}`);
      if (done(s, b)) {
        stamp(b, now);
        pending.delete(id);
      }
    }
    if (pending.size === 0) return;
    if (now > deadline) throw new Error(`${pending.size} server(s) not done after ${WAIT_MS} ms`);
    await sleep(Math.max(0, POLL_MS - (performance.now() - t)));
  }
}

/** How many more m1.tiny servers (1 vCPU, 512 MB) the project's quota allows now (GET /limits). */
async function headroom(): Promise<number> {
  const r = expect(await nova('GET', '/limits'), [200], 'GET /limits');
  const a = (r.body as { limits: { absolute: Record<string, number> } }).limits.absolute;
  const free = (max: string, used: string, per: number): number =>
    (a[max] ?? -1) < 0 ? Infinity : Math.floor(((a[max] ?? 0) - (a[used] ?? 0)) / per);
  return Math.min(
    free('maxTotalInstances', 'totalInstancesUsed', 1),
    free('maxTotalCores', 'totalCoresUsed', 1),
    free('maxTotalRAMSize', 'totalRAMUsed', 512),
  );
}

// ---------------------------------------------------------------- Glance

let imageId: string | undefined;

async function uploadBusybox(): Promise<string> {
  const tar = await dockerSave('busybox:latest');
  try {
    const r = expect(
      await call('POST', `${GLANCE}/v2/images`, {
        name: `${PREFIX}-busybox`,
        container_format: 'docker',
        disk_format: 'raw',
        visibility: 'private',
      }),
      [201],
      'glance image create',
    );
    const id = (r.body as { id: string }).id;
    imageId = id;
    expect(
      await call('PUT', `${GLANCE}/v2/images/${id}/file`, new Uint8Array(readFileSync(tar)), {
        'Content-Type': 'application/octet-stream',
      }),
      [204],
      'glance upload',
    );
    const img = expect(await call('GET', `${GLANCE}/v2/images/${id}`), [200], 'glance show').body as {
      status: string;
    };
    if (img.status !== 'active') throw new Error(`glance image ${id} is ${img.status} after the upload`);
    return id;
  } finally {
    rmSync(dirname(tar), { recursive: true, force: true });
  }
}

async function removeImage(): Promise<void> {
  if (!imageId) return;
  const id = imageId;
  const r = await call('DELETE', `${GLANCE}/v2/images/${id}`);
  if (r.status !== 204 && r.status !== 404) console.error(`glance image ${id} delete: HTTP ${r.status}`);
  // the agent's cached copy: nova-glance/<id>:<digest tag>
  const filters = encodeURIComponent(JSON.stringify({ reference: [`nova-glance/${id}`] }));
  const list = JSON.parse((await engine('GET', `/images/json?filters=${filters}`)).text) as Array<{
    RepoTags?: string[] | null;
  }>;
  for (const tag of list.flatMap((i) => i.RepoTags ?? []).filter((t) => t.startsWith(`nova-glance/${id}:`))) {
    await engine('DELETE', `/images/${tag}`);
  }
}

// ---------------------------------------------------------------- Neutron (--network)

/** The --network set-up; what is set is undone at the end. */
const net: {
  networkId?: string;
  /** Made for this run (deleted at the end), not an existing network of that name (kept). */
  created: boolean;
  securityGroupId?: string;
  /** Every server POSTed with a port: their ports must be gone before the network and the group can go. */
  servers: Set<string>;
} = { created: false, servers: new Set() };

function mustNet(): { networkId: string; securityGroupId: string; servers: Set<string> } {
  if (net.networkId === undefined || net.securityGroupId === undefined) throw new Error('--network is not set up');
  return { networkId: net.networkId, securityGroupId: net.securityGroupId, servers: net.servers };
}

interface PortView {
  id: string;
  device_id: string;
  device_owner: string;
}

/** Checks `check` every 500 ms until it gives a value; throws after `timeoutMs`. */
async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms`);
    await sleep(500);
  }
}

/**
 * Network `name` (used when it exists, else made with a /24 subnet), hosted by the DHCP agent, and a
 * security group of the run's own that lets ICMP in from its members (the e2e file's first rule).
 */
async function setUpNetwork(name: string): Promise<void> {
  const agentType = encodeURIComponent('Open vSwitch agent');
  const agents = expect(
    await neutron('GET', `/agents?host=${encodeURIComponent(HOST)}&agent_type=${agentType}`),
    [200],
    'GET /v2.0/agents',
  ).body as { agents: Array<{ alive: boolean }> };
  if (!agents.agents.some((a) => a.alive)) {
    throw new Error(`no live Open vSwitch agent on host ${HOST}: is test/lab/neutron-lab.sh up?`);
  }
  const found = (
    expect(await neutron('GET', `/networks?name=${encodeURIComponent(name)}`), [200], 'GET /v2.0/networks').body as {
      networks: Array<{ id: string; subnets: string[] }>;
    }
  ).networks;
  if (found.length > 1) throw new Error(`${found.length} networks are named ${name}: give one that is unique`);
  if (found[0]) {
    if (found[0].subnets.length === 0) throw new Error(`network ${name} has no subnet`);
    net.networkId = found[0].id;
    console.log(`network ${name} (${net.networkId}) exists: used as it is, and kept`);
  } else {
    const r = expect(await neutron('POST', '/networks', { network: { name } }), [201], 'POST /v2.0/networks');
    net.networkId = (r.body as { network: { id: string } }).network.id;
    net.created = true;
    // 10.248.R: the e2e files' subnets are 10.250–10.254, the lab's own 10.251/10.252
    const cidr = `10.248.${randomInt(0, 250)}.0/24`;
    const subnet = { name: `${name}-sub`, network_id: net.networkId, ip_version: 4, cidr };
    expect(await neutron('POST', '/subnets', { subnet }), [201], 'POST /v2.0/subnets');
    console.log(`network ${name} (${net.networkId}) made for the run, subnet ${cidr}`);
  }
  // a compute port goes ACTIVE (and Nova hears network-vif-plugged) once the DHCP agent lifts its provisioning
  // block: the network must be on that agent first
  const networkId = net.networkId;
  await until(`network ${name} hosted by a DHCP agent`, 90_000, async () => {
    const r = expect(await neutron('GET', `/networks/${networkId}/dhcp-agents`), [200], 'GET dhcp-agents');
    return (r.body as { agents: unknown[] }).agents.length > 0 ? true : undefined;
  });
  const sg = expect(
    await neutron('POST', '/security-groups', { security_group: { name: `${PREFIX}-sg` } }),
    [201],
    'POST /v2.0/security-groups',
  );
  const sgId = (sg.body as { security_group: { id: string } }).security_group.id;
  net.securityGroupId = sgId;
  const rule = { security_group_id: sgId, direction: 'ingress', ethertype: 'IPv4', protocol: 'icmp' };
  expect(
    await neutron('POST', '/security-group-rules', { security_group_rule: { ...rule, remote_group_id: sgId } }),
    [201],
    'POST /v2.0/security-group-rules',
  );
}

/**
 * After the servers' deletes: their ports gone (the agent deletes the ports Nova made; one still there after
 * 60 s is a leak, reported and deleted here), then a network made for the run, then the security group.
 */
async function tearDownNetwork(errors: unknown[]): Promise<void> {
  const networkId = net.networkId;
  if (networkId !== undefined) {
    const ours = async (): Promise<PortView[]> => {
      const r = expect(await neutron('GET', `/ports?network_id=${networkId}`), [200], 'GET /v2.0/ports');
      // on a network of its own every port but the DHCP agent's is the run's
      return (r.body as { ports: PortView[] }).ports.filter(
        (p) => net.servers.has(p.device_id) || (net.created && !p.device_owner.startsWith('network:')),
      );
    };
    const left = await until('the ports of the deleted servers gone', 60_000, async () => {
      const ports = await ours();
      return ports.length === 0 ? [] : undefined;
    }).catch(async () => await ours());
    for (const p of left) {
      errors.push(new Error(`port ${p.id} (device ${p.device_id || 'none'}) left after the deletes: deleting it`));
      const r = await neutron('DELETE', `/ports/${p.id}`);
      if (r.status !== 204 && r.status !== 404) errors.push(new Error(`DELETE port ${p.id}: HTTP ${r.status}`));
    }
    if (net.created) {
      // 409 while Neutron still counts a port in use (the DHCP agent's goes with the network)
      await until(`network ${networkId} deleted`, 60_000, async () => {
        const r = await neutron('DELETE', `/networks/${networkId}`);
        if (r.status === 204 || r.status === 404) return true;
        if (r.status === 409) return undefined;
        throw new Error(`DELETE network ${networkId}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
      });
    }
  }
  const sgId = net.securityGroupId;
  if (sgId !== undefined) {
    await until(`security group ${sgId} deleted`, 60_000, async () => {
      const r = await neutron('DELETE', `/security-groups/${sgId}`);
      if (r.status === 204 || r.status === 404) return true;
      if (r.status === 409) return undefined;
      throw new Error(`DELETE security group ${sgId}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
    });
  }
}

// ---------------------------------------------------------------- misc

function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

function mb(kb: number): string {
  return `${(kb / 1024).toFixed(1)} MB`;
}

async function waitTimings(agent: AgentProcess, boots: Boot[]): Promise<AgentTimings> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const log = agent.log();
    const parsed = parseAgentLog(log);
    for (const b of boots) {
      const plug = b.nic === 'port' ? plugTiming(log, b.id) : undefined;
      if (plug) parsed.plugs.set(b.id, plug);
    }
    const complete = (b: Boot): boolean =>
      parsed.timings.has(b.id) && parsed.received.has(b.id) && (b.nic === 'none' || parsed.plugs.has(b.id));
    if (boots.every(complete)) return parsed;
    if (Date.now() > deadline)
      throw new Error('no boot timing (or, for a port boot, plug) line in the agent log for some boots');
    await sleep(50);
  }
}

interface RawSeries {
  what: string;
  ms: number[];
}

/**
 * `baseline`: the raw series the agent share is compared with; undefined for
 * the concurrent phase, where nova-api answers the POSTs one after another so
 * the agent's builds overlap far less than the raw burst does.
 */
/** One series' headline figures, for the --network summary. */
interface Headline {
  title: string;
  total: Stat;
  agent: Stat;
  deleted: Stat;
  plug?: Stat;
  plugToEvent?: Stat;
}

/** `vs`: the `--nic none` series of the same phase, which a one-port series is compared with. */
function report(
  title: string,
  boots: Boot[],
  parsed: AgentTimings,
  raws: RawSeries[],
  baseline: RawSeries | undefined,
  vs?: Headline,
): Headline {
  console.log(`\n${title}`);
  const t = boots.map((b) => parsed.timings.get(b.id)!);
  const failed = t.filter((x) => !x.ok);
  if (failed.length) throw new Error(`${failed.length} boot(s) not ok in the agent log`);
  const received = (b: Boot): number => parsed.received.get(b.id)! - b.postWall;
  row(
    'POST /servers answered',
    boots.map((b) => b.postMs),
  );
  const total = row(
    'API create → ACTIVE seen (client)',
    boots.map((b) => b.activeMs!),
  );
  row('  POST sent → agent received (API+conductor+scheduler)', boots.map(received));
  const agent = row(
    '  agent share: received → ACTIVE saved (`active`)',
    t.map((x) => x.active),
  );
  row(
    '    received → spawning saved (event_start ∥ the claim save, then spawning (networking with ports), while Docker fetches, creates and starts)',
    t.map((x) => x.spawning),
  );
  row(
    '    received → spawned (saves ∥ image, create, start, early-exit window)',
    t.map((x) => x.spawned),
  );
  row(
    '    spawned → active (the ACTIVE save)',
    t.map((x) => x.active - x.spawned),
  );
  let plug: Stat | undefined;
  let plugToEvent: Stat | undefined;
  const ported = boots.filter((b) => b.nic === 'port');
  if (ported.length > 0) {
    const plugs = ported.map((b) => ({ b, p: parsed.plugs.get(b.id)! }));
    // log times, ms since "Starting instance..." (its own log time)
    const since = (b: Boot, at: number): number => at - parsed.received.get(b.id)!;
    row(
      '    received → VIF plugged (port made + bound ∥ image, holder, plug)',
      plugs.map(({ b, p }) => since(b, p.pluggedAt)),
    );
    plug = row(
      '      plug (veth pair, OVS port, addresses inside)',
      plugs.map(({ p }) => p.plugMs),
    );
    const evented = plugs.filter(({ p }) => p.plugToEventMs !== undefined);
    plugToEvent = row(
      '    plug → network-vif-plugged received',
      evented.map(({ p }) => p.plugToEventMs!),
    );
    row(
      '    network-vif-plugged received → ACTIVE saved',
      evented.map(({ b, p }) => parsed.timings.get(b.id)!.active - since(b, p.pluggedAt + p.plugToEventMs!)),
    );
    if (evented.length < plugs.length) {
      console.log(`  ${plugs.length - evented.length} port boot(s) logged no network-vif-plugged`);
    }
  }
  row(
    '  agent ACTIVE → client saw it (poll lag + GET)',
    boots.map((b) => b.activeMs! - received(b) - parsed.timings.get(b.id)!.active),
  );
  const deleted = row(
    'API delete → gone (404) (client)',
    boots.map((b) => b.deleteMs!),
  );
  const rawStats = new Map(raws.map((r) => [r, row(r.what, r.ms)]));
  for (const [r, st] of rawStats) {
    if (r !== baseline) continue;
    console.log(`  agent share p50 − raw p50 (${r.what}) = ${(agent.p50 - st.p50).toFixed(1)} ms (goal ≤ 50 ms)`);
  }
  if (!baseline && raws.length > 0) {
    console.log(
      "  (agent vs raw not comparable here: nova-api answers the POSTs one after another, so the agent's builds overlap far less than the raw burst)",
    );
  }
  console.log(`  agent share / client total p50 = ${((100 * agent.p50) / total.p50).toFixed(0)}%`);
  if (vs) {
    const d = (a: Stat, b: Stat): string => `${a.p50 - b.p50 >= 0 ? '+' : ''}${(a.p50 - b.p50).toFixed(1)} ms`;
    console.log(
      `  one port − --nic none, p50: API → ACTIVE ${d(total, vs.total)}, agent share ${d(agent, vs.agent)}, ` +
        `delete → gone ${d(deleted, vs.deleted)}`,
    );
  }
  return { title, total, agent, deleted, ...(plug ? { plug } : {}), ...(plugToEvent ? { plugToEvent } : {}) };
}

/** The --network run's headline figures side by side, p50 / p95. */
function summary(lines: Headline[]): void {
  const s = (x: Stat | undefined): string =>
    x ? `${(x.p50 / 1000).toFixed(2)} / ${(x.p95 / 1000).toFixed(2)} s` : '—';
  const ms = (x: Stat | undefined): string => (x ? `${x.p50.toFixed(0)} / ${x.p95.toFixed(0)} ms` : '—');
  console.log('\nsummary, p50 / p95');
  const cols = ['series', 'API → ACTIVE', 'agent share', 'delete → gone', 'plug', 'plug → vif-plugged'];
  const rows = lines.map((l) => [l.title, s(l.total), s(l.agent), s(l.deleted), ms(l.plug), ms(l.plugToEvent)]);
  const width = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [cols, ...rows]) console.log(`  ${r.map((c, i) => c.padEnd(width[i]!)).join('  ')}`);
}

/** One serial boot: POST, ACTIVE, DELETE, gone. */
async function bootAndDelete(name: string, image: string, nic: Nic): Promise<Boot> {
  const b = await post(name, image, nic);
  await waitActive(b);
  await deleteAndWait(b);
  return b;
}

/** M boots POSTed at once and polled to ACTIVE (one list GET per tick), then all deleted at once, polled to gone. */
async function concurrentBatch(M: number, image: string, nic: Nic): Promise<Boot[]> {
  const tag = nic === 'none' ? 'c' : 'cp';
  const conc = await Promise.all(Array.from({ length: M }, (_, i) => post(`${PREFIX}-${tag}${i}`, image, nic)));
  await pollList(
    conc,
    (s) => s?.status === 'ACTIVE',
    (b, now) => (b.activeMs = now - b.t0),
  );
  const delStarts = new Map<string, number>();
  await Promise.all(
    conc.map(async (b) => {
      delStarts.set(b.id, performance.now());
      expect(await nova('DELETE', `/servers/${b.id}`), [204], `DELETE /servers/${b.id}`);
    }),
  );
  await pollList(
    conc,
    (s) => s === undefined,
    (b, now) => {
      b.deleteMs = now - delStarts.get(b.id)!;
      live.delete(b.id);
    },
  );
  return conc;
}

/** Runs fn while GET /servers/{target} is polled every 50 ms, as during a boot (nova-api and the neutron stub busy). */
async function underPollLoad<T>(target: string, fn: () => Promise<T>): Promise<T> {
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const t = performance.now();
      await nova('GET', `/servers/${target}`);
      await sleep(Math.max(0, POLL_MS - (performance.now() - t)));
    }
  })();
  try {
    return await fn();
  } finally {
    stop = true;
    await loop;
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  console.log(
    `boot bench: N=${N}, host ${HOST}, run ${RUN}, idle ${ARGS.idle.join('+')} s` +
      (ARGS.spawnCheckMs === undefined ? '' : `, [docker] spawn_check_ms = ${ARGS.spawnCheckMs}`) +
      (ARGS.network === undefined ? '' : `, one-port boots on network ${ARGS.network} next to --nic none`) +
      ' (2-core shared lab VM: numbers are noisy)',
  );
  let agent: AgentProcess | undefined;
  const killOnExit = (): void => {
    if (agent && agent.proc.exitCode === null) agent.proc.kill('SIGTERM');
  };
  process.on('exit', killOnExit);
  try {
    await stopFakeCompute();
    const extra = ARGS.spawnCheckMs === undefined ? '' : `\n[docker]\nspawn_check_ms = ${ARGS.spawnCheckMs}\n`;
    // launched as install.sh's service launches it (a 1 MB young generation: lower peak RSS while streaming images)
    // the flags and environment install.sh gives the service
    process.env.MALLOC_ARENA_MAX ??= '2';
    agent = await startAgent(HOST, extra, ['--max-semi-space-size=1']);
    const pid = agent.proc.pid!;
    console.log(`agent pid ${pid} serving; RSS after start ${mb(rssKb(pid))}`);
    await discoverHosts();
    token = (await labAdminToken()).token;

    // leftovers of an earlier, killed run on this bench host (the Neutron host is shared: only the benches' there)
    const old = expect(await nova('GET', `/servers/detail?host=${HOST}&all_tenants=1`), [200], 'GET leftovers');
    const mine = (s: ServerView): boolean => ARGS.network === undefined || (s.name ?? '').startsWith('nd-bench-');
    for (const s of (old.body as { servers: ServerView[] }).servers.filter(mine)) {
      console.log(`removing leftover server ${s.id} (${s.name ?? ''}) on ${HOST}`);
      await deleteAndWait({ id: s.id, nic: 'none', postWall: 0, t0: 0, postMs: 0 });
    }

    const image = await uploadBusybox();
    console.log(`glance image ${image} uploaded`);
    if (ARGS.network !== undefined) await setUpNetwork(ARGS.network);

    // warm-up: the first boot loads the image into docker
    // (kept ACTIVE through the serial phase as the target of the raw-under-poll-load variant)
    const warm = await post(`${PREFIX}-warm`, image);
    await waitActive(warm);
    console.log(`warm-up boot ${(warm.activeMs! / 1000).toFixed(2)} s (includes the image load)`);
    for (let i = 0; i < 3; i++) {
      await rawCreateStart(`warm${i}`);
      await removeRawContainers();
    }
    if (ARGS.network !== undefined) {
      // the first port on the network (OVS flows for its local VLAN, the DHCP agent's first host entry)
      const warmPort = await post(`${PREFIX}-warmp`, image, 'port');
      await waitActive(warmPort);
      await deleteAndWait(warmPort);
      console.log(`warm-up one-port boot ${(warmPort.activeMs! / 1000).toFixed(2)} s`);
    }
    const headlines: Headline[] = [];
    const suffix = (nic: Nic): string =>
      ARGS.network === undefined ? '' : nic === 'none' ? ', --nic none' : `, one port on ${ARGS.network}`;

    // serial: raw create+start (quiet, then with the client's 50 ms GET poll running as during a
    // boot: it keeps nova-api and the neutron stub busy on the same 2 cores), one Nova boot + delete
    // (with --network, then one one-port boot + delete)
    const rawQuiet: RawSeries = { what: 'raw Engine API create+start (busybox, net none)', ms: [] };
    const rawPolled: RawSeries = { what: 'raw create+start, GET /servers/{id} poll running', ms: [] };
    const serial: Boot[] = [];
    const serialPort: Boot[] = [];
    for (let i = 0; i < N; i++) {
      rawQuiet.ms.push(await rawCreateStart(`q${i}`));
      await removeRawContainers();
      rawPolled.ms.push(await underPollLoad(warm.id, () => rawCreateStart(`p${i}`)));
      await removeRawContainers();
      serial.push(await bootAndDelete(`${PREFIX}-s${i}`, image, 'none'));
      if (ARGS.network !== undefined) serialPort.push(await bootAndDelete(`${PREFIX}-sp${i}`, image, 'port'));
    }
    await deleteAndWait(warm);
    const serialNone = report(
      `serial (N=${N}, GET /servers/{id} every 50 ms)${suffix('none')}`,
      serial,
      await waitTimings(agent, serial),
      [rawQuiet, rawPolled],
      rawPolled,
    );
    headlines.push({ ...serialNone, title: 'serial, --nic none' });
    if (serialPort.length > 0) {
      const h = report(
        `serial (N=${N}, GET /servers/{id} every 50 ms)${suffix('port')}`,
        serialPort,
        await waitTimings(agent, serialPort),
        [],
        undefined,
        serialNone,
      );
      headlines.push({ ...h, title: 'serial, one port' });
    }

    // concurrent: N raw at once, then N boots POSTed at once, then N deletes at once (with --network, then
    // the same with one port each)
    // (the lab's admin quota is 10 instances, shared with whatever else runs: fewer if taken)
    const room = await headroom();
    const M = Math.min(N, room);
    if (M < 1) throw new Error('no instance quota left in project admin for the concurrent phase');
    if (M < N)
      console.log(`\nquota: only ${room} instance(s) free in project admin, so ${M} concurrent boots, not ${N}`);
    const rawConc = await Promise.all(Array.from({ length: M }, (_, i) => rawCreateStart(`c${i}`)));
    await removeRawContainers();
    const conc = await concurrentBatch(M, image, 'none');
    const concNone = report(
      `concurrent (N=${M} POSTed at once, one GET /servers/detail every 50 ms)${suffix('none')}`,
      conc,
      await waitTimings(agent, conc),
      [{ what: `raw create+start, ${M} at once`, ms: rawConc }],
      undefined,
    );
    headlines.push({ ...concNone, title: `concurrent ${M}, --nic none` });
    if (ARGS.network !== undefined) {
      const concPort = await concurrentBatch(M, image, 'port');
      const h = report(
        `concurrent (N=${M} POSTed at once, one GET /servers/detail every 50 ms)${suffix('port')}`,
        concPort,
        await waitTimings(agent, concPort),
        [],
        undefined,
        concNone,
      );
      headlines.push({ ...h, title: `concurrent ${M}, one port` });
      summary(headlines);
    }

    // idle RSS
    const idleStart = performance.now();
    console.log(`\nagent RSS right after the deletes: ${mb(rssKb(pid))}`);
    for (const s of ARGS.idle) {
      await sleep(Math.max(0, s * 1000 - (performance.now() - idleStart)));
      if (agent.proc.exitCode !== null) throw new Error(`the agent exited (${agent.proc.exitCode}) while idle`);
      console.log(`agent RSS after ${s} s idle: ${mb(rssKb(pid))} (real nova-compute idle: ~165 MB)`);
    }
  } finally {
    cleaningUp = true;
    const errors: unknown[] = [];
    if (live.size > 0 && agent && agent.proc.exitCode === null) {
      console.error(`cleanup: deleting ${live.size} server(s)`);
      await Promise.all(
        [...live].map(async (id) => {
          const t0 = performance.now();
          const r = await nova('DELETE', `/servers/${id}`).catch((e: unknown) => (errors.push(e), undefined));
          if (r && r.status !== 204 && r.status !== 404) errors.push(new Error(`DELETE ${id}: HTTP ${r.status}`));
          await waitGone(id, t0).catch((e: unknown) => errors.push(e));
        }),
      );
    }
    // while the agent runs: it deletes the ports of the servers it deleted
    await tearDownNetwork(errors).catch((e: unknown) => errors.push(e));
    await removeRawContainers().catch((e: unknown) => errors.push(e));
    if (agent) {
      const code = await agent.stop();
      console.log(`agent stopped (SIGTERM), exit code ${code}`);
    }
    await removeImage().catch((e: unknown) => errors.push(e));
    engineAgent.destroy();
    for (const e of errors) console.error('cleanup:', e);
    if (live.size > 0) console.error(`cleanup: servers possibly left: ${[...live].join(' ')}`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
