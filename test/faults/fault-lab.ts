/**
 * Helpers of the fault suite (test/faults): a small REST client for Keystone,
 * Nova and Placement (the CLIs cost ~1.5 s a call on two cores), the
 * end-state invariants every scenario asserts, and the stop/start of the
 * shared lab services (RabbitMQ, glance-api; dockerd's is ../support/dockerd.ts)
 * the way the lab scripts run them. The suite must run alone on the lab (`flock -x /tmp/lab.lock`).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { pollUntil } from '../../src/common/poll.js';
import { execFileP, rabbitmqctl, REPO_ROOT, SYSTEM_ENV } from '../support/broker.js';
import { LAB_ENDPOINTS, LAB_RELEASE, labRabbitmqctl, releaseLabDaemon } from '../support/lab-env.js';
import {
  discoverHosts,
  docker,
  openstack,
  removeGlanceCacheTags,
  startAgent,
  uploadDockerImage,
  type AgentProcess,
} from '../support/lab.js';
import { dockerd, pidFile, succeeds, terminate, until } from '../support/dockerd.js';
import { labAdminToken, labRequest, type RestReply } from '../support/nova-api.js';

const KEYSTONE = LAB_ENDPOINTS.keystone;
const NOVA = LAB_ENDPOINTS.nova;
const PLACEMENT = LAB_ENDPOINTS.placement;
const GLANCE = LAB_ENDPOINTS.glance;
const NOVA_VERSION = { 'OpenStack-API-Version': 'compute 2.37', 'X-OpenStack-Nova-API-Version': '2.37' };
const PLACEMENT_VERSION = { 'OpenStack-API-Version': 'placement 1.28' };

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Seconds since `t0` (performance.now()), one decimal, for the measurements docs/faults.md reports. */
export const secondsSince = (t0: number): number => Math.round((performance.now() - t0) / 100) / 10;

// ---------------------------------------------------------------- REST

export interface ServerView {
  id: string;
  name?: string;
  status: string;
  'OS-EXT-STS:task_state'?: string | null;
  'OS-EXT-STS:vm_state'?: string | null;
  'OS-EXT-STS:power_state'?: number;
  'OS-EXT-SRV-ATTR:host'?: string | null;
  fault?: { message?: string; code?: number; details?: string } | null;
}

type Reply = RestReply;

let token: string | undefined;

/** The project the fault suite boots in: its own, with unlimited instance quota (the lab's admin has 10, shared). */
export const FAULTS_PROJECT = 'nd-faults';

async function adminCall(admin: string, method: string, url: string, body?: unknown): Promise<Reply> {
  return await labRequest(method, url, { token: admin, body, headers: NOVA_VERSION });
}

/** Ensures FAULTS_PROJECT (admin role for admin, no instance/core/RAM quota) and returns a token scoped to it. */
async function authenticate(): Promise<string> {
  const admin = await labAdminToken('admin');
  const found = expectStatus(
    await adminCall(admin.token, 'GET', `${KEYSTONE}/projects?name=${FAULTS_PROJECT}`),
    [200],
    'GET /projects',
  ).body as { projects: Array<{ id: string }> };
  let projectId = found.projects[0]?.id;
  if (!projectId) {
    const created = expectStatus(
      await adminCall(admin.token, 'POST', `${KEYSTONE}/projects`, {
        project: { name: FAULTS_PROJECT, domain_id: 'default', description: 'nova-docker fault suite' },
      }),
      [201, 409],
      'POST /projects',
    );
    projectId =
      (created.body as { project?: { id: string } }).project?.id ??
      (
        (await adminCall(admin.token, 'GET', `${KEYSTONE}/projects?name=${FAULTS_PROJECT}`)).body as {
          projects: Array<{ id: string }>;
        }
      ).projects[0]?.id;
  }
  assert.ok(projectId, `project ${FAULTS_PROJECT}`);
  const roles = expectStatus(await adminCall(admin.token, 'GET', `${KEYSTONE}/roles?name=admin`), [200], 'GET /roles')
    .body as { roles: Array<{ id: string }> };
  const roleId = roles.roles[0]?.id;
  assert.ok(roleId, 'the admin role');
  expectStatus(
    await adminCall(admin.token, 'PUT', `${KEYSTONE}/projects/${projectId}/users/${admin.userId}/roles/${roleId}`),
    [201, 204],
    'assign admin on the fault project',
  );
  expectStatus(
    await adminCall(admin.token, 'PUT', `${NOVA}/os-quota-sets/${projectId}`, {
      quota_set: { instances: -1, cores: -1, ram: -1 },
    }),
    [200],
    'PUT /os-quota-sets',
  );
  return (await labAdminToken(FAULTS_PROJECT)).token;
}

async function call(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  for (let attempt = 0; ; attempt++) {
    token ??= await authenticate();
    // nova-api (two uwsgi workers) answers slowly when the two cores are saturated
    const r = await labRequest(method, url, { token, body, headers, signal: AbortSignal.timeout(180_000) });
    if (r.status === 401 && attempt === 0) {
      token = undefined;
      continue;
    }
    return r;
  }
}

function expectStatus(r: Reply, ok: number[], what: string): Reply {
  if (!ok.includes(r.status)) throw new Error(`${what}: HTTP ${r.status} ${r.text.slice(0, 500)}`);
  return r;
}

const nova = (method: string, path: string, body?: unknown): Promise<Reply> =>
  call(method, `${NOVA}${path}`, body, NOVA_VERSION);
const placement = (method: string, path: string): Promise<Reply> =>
  call(method, `${PLACEMENT}${path}`, undefined, PLACEMENT_VERSION);

/** POST /servers onto `host` (m1.tiny, no network); returns the new id. */
export async function createServer(host: string, imageId: string, name: string): Promise<string> {
  const r = expectStatus(
    await nova('POST', '/servers', {
      server: { name, imageRef: imageId, flavorRef: '1', networks: 'none', availability_zone: `nova:${host}` },
    }),
    [202],
    `POST /servers ${name}`,
  );
  return (r.body as { server: { id: string } }).server.id;
}

/** The server, or undefined once it is gone (404). */
export async function showServer(id: string): Promise<ServerView | undefined> {
  const r = await nova('GET', `/servers/${id}`);
  if (r.status === 404) return undefined;
  return (expectStatus(r, [200], `GET /servers/${id}`).body as { server: ServerView }).server;
}

/** Every server Nova places on `host` (any project). */
export async function serversOnHost(host: string): Promise<ServerView[]> {
  const r = expectStatus(
    await nova('GET', `/servers/detail?all_tenants=1&host=${encodeURIComponent(host)}`),
    [200],
    `GET /servers/detail host=${host}`,
  );
  return (r.body as { servers: ServerView[] }).servers;
}

/** Servers (any project) whose name starts with `prefix`. */
export async function serversNamed(prefix: string): Promise<ServerView[]> {
  const r = expectStatus(
    await nova('GET', `/servers/detail?all_tenants=1&name=${encodeURIComponent(`^${prefix}`)}`),
    [200],
    `GET /servers/detail name=^${prefix}`,
  );
  return (r.body as { servers: ServerView[] }).servers;
}

/** DELETE /servers/{id}; a server already gone is fine. */
export async function deleteServer(id: string): Promise<void> {
  expectStatus(await nova('DELETE', `/servers/${id}`), [204, 404], `DELETE /servers/${id}`);
}

/** Polls until `done` holds for the server (undefined = gone). */
export async function waitServer(
  id: string,
  done: (s: ServerView | undefined) => boolean,
  what: string,
  timeoutMs = 120_000,
  intervalMs = 250,
): Promise<ServerView | undefined> {
  let last: ServerView | undefined;
  try {
    return await pollUntil(
      async () => {
        last = await showServer(id);
        return done(last) ? { s: last } : undefined;
      },
      { timeoutMs, intervalMs, what: `server ${id}: ${what}` },
    ).then((x) => x.s);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen ${JSON.stringify(last)}`, { cause: err });
  }
}

/** A finished state: ACTIVE, SHUTOFF or ERROR, and no task in flight. */
export const settled = (s: ServerView | undefined): boolean =>
  s !== undefined && ['ACTIVE', 'SHUTOFF', 'ERROR'].includes(s.status) && !s['OS-EXT-STS:task_state'];

export async function deleteAndWaitGone(ids: Iterable<string>, timeoutMs = 180_000): Promise<void> {
  const list = [...ids];
  await Promise.all(list.map((id) => deleteServer(id)));
  await Promise.all(list.map((id) => waitServer(id, (s) => s === undefined, 'gone', timeoutMs, 500)));
}

/** Placement allocations of a consumer: resource provider uuid → resources. */
export async function consumerAllocations(uuid: string): Promise<Record<string, unknown>> {
  const r = expectStatus(await placement('GET', `/allocations/${uuid}`), [200], `GET /allocations/${uuid}`);
  return (r.body as { allocations: Record<string, unknown> }).allocations;
}

export async function providerUuid(name: string): Promise<string> {
  const r = expectStatus(
    await placement('GET', `/resource_providers?name=${encodeURIComponent(name)}`),
    [200],
    `GET /resource_providers name=${name}`,
  );
  const rps = (r.body as { resource_providers: Array<{ uuid: string }> }).resource_providers;
  assert.equal(rps.length, 1, `one resource provider named ${name}`);
  return rps[0]!.uuid;
}

/** The consumers (instance uuids) holding allocations against a provider. */
export async function providerConsumers(rpUuid: string): Promise<string[]> {
  const r = expectStatus(
    await placement('GET', `/resource_providers/${rpUuid}/allocations`),
    [200],
    `GET /resource_providers/${rpUuid}/allocations`,
  );
  return Object.keys((r.body as { allocations: Record<string, unknown> }).allocations);
}

// ---------------------------------------------------------------- Docker

export interface HostContainer {
  uuid: string;
  name: string;
  state: string;
}

/** Containers (any state) labelled for compute host `host`. */
export async function containersOf(host: string): Promise<HostContainer[]> {
  const out = await docker([
    'ps',
    '-a',
    '--filter',
    `label=org.openstack.nova.host=${host}`,
    '--format',
    '{{.Label "org.openstack.nova.instance-uuid"}} {{.Names}} {{.State}}',
  ]);
  return out === ''
    ? []
    : out.split('\n').map((l) => {
        const [uuid = '', name = '', state = ''] = l.split(' ');
        return { uuid, name, state };
      });
}

/** Force-removes every container labelled for `host` (cleanup only). */
export async function removeContainersOf(host: string): Promise<void> {
  for (const c of await containersOf(host).catch(() => [])) {
    await docker(['rm', '-f', c.name]).catch(() => undefined);
  }
}

// ---------------------------------------------------------------- invariants

export interface HostCheck {
  /** Every server id the scenario created (live or deleted). */
  created: Iterable<string>;
  /** Servers that ended in ERROR must have no container at all (a failed build leaves nothing). */
  errorMeansNoContainer?: boolean;
}

export interface HostReport {
  live: ServerView[];
  deleted: string[];
  containers: HostContainer[];
}

/**
 * The end state of every scenario:
 *  - every instance is ACTIVE, SHUTOFF, or ERROR with a fault, and none has a task in flight;
 *  - Nova and Docker agree: ACTIVE ⇔ container running, SHUTOFF ⇔ container present and not running,
 *    ERROR ⇒ no running container (none at all with `errorMeansNoContainer`);
 *  - no container without a live Nova instance (zero orphans);
 *  - no Placement allocation for a deleted instance, and none on the host's provider for a consumer
 *    that is not one of its live instances (zero leaks).
 */
export async function assertHostConsistent(host: string, check: HostCheck): Promise<HostReport> {
  // The API says "deleted" as soon as its own part is done; a build the delete raced may still be removing its
  // container. Settled means consistent within a deadline, and a real leak still fails it.
  let last: string[] = [];
  try {
    return await pollUntil(
      async () => {
        const { report, problems } = await hostProblems(host, check);
        last = problems;
        return problems.length === 0 ? report : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: `host ${host} to be consistent` },
    );
  } catch {
    assert.deepEqual(last, [], `host ${host} is inconsistent`);
    throw new Error(`host ${host}: the consistency check itself kept failing`);
  }
}

async function hostProblems(host: string, check: HostCheck): Promise<{ report: HostReport; problems: string[] }> {
  const ids = new Set(check.created);
  for (const s of await serversOnHost(host)) ids.add(s.id);
  const live: ServerView[] = [];
  const deleted: string[] = [];
  for (const id of ids) {
    const s = await showServer(id);
    if (s) live.push(s);
    else deleted.push(id);
  }
  const containers = await containersOf(host);
  const byUuid = new Map(containers.map((c) => [c.uuid, c]));
  const problems: string[] = [];
  for (const s of live) {
    const what = `${s.id} (${s.status}, task ${String(s['OS-EXT-STS:task_state'])})`;
    if (!settled(s)) problems.push(`${what}: not settled`);
    const c = byUuid.get(s.id);
    if (s.status === 'ERROR') {
      if (!s.fault?.message) problems.push(`${what}: ERROR without a fault`);
      if (c && (check.errorMeansNoContainer || c.state === 'running')) {
        problems.push(`${what}: ERROR but its container is ${c.state}`);
      }
    } else if (s.status === 'ACTIVE') {
      if (c?.state !== 'running') problems.push(`${what}: ACTIVE but its container is ${c?.state ?? 'missing'}`);
      if (s['OS-EXT-STS:power_state'] !== 1)
        problems.push(`${what}: ACTIVE with power_state ${s['OS-EXT-STS:power_state']}`);
    } else if (s.status === 'SHUTOFF') {
      if (!c || c.state === 'running') problems.push(`${what}: SHUTOFF but its container is ${c?.state ?? 'missing'}`);
    }
  }
  const liveIds = new Set(live.map((s) => s.id));
  for (const c of containers) {
    if (!liveIds.has(c.uuid)) problems.push(`orphan container ${c.name} (${c.state}): no live Nova instance`);
  }
  for (const id of deleted) {
    const a = await consumerAllocations(id);
    if (Object.keys(a).length > 0) problems.push(`deleted instance ${id} still holds allocations ${JSON.stringify(a)}`);
  }
  for (const consumer of await providerConsumers(await providerUuid(host))) {
    if (!liveIds.has(consumer)) problems.push(`provider ${host} holds allocations of ${consumer}, not a live instance`);
  }
  return { report: { live, deleted, containers }, problems };
}

// ---------------------------------------------------------------- lab services

export const rabbit = {
  /** stop_app: every AMQP connection drops, the non-durable queues and their messages are gone. */
  async stop(): Promise<void> {
    await labRabbitmqctl('stop_app');
  },
  async start(): Promise<void> {
    await labRabbitmqctl('start_app');
    await labRabbitmqctl('await_startup');
  },
  /** Ensures the broker app runs (after hooks); scripts/rabbitmq-up.sh would also restart a dead node. */
  async ensureUp(): Promise<void> {
    if (!(await succeeds(labRabbitmqctl('-q', 'await_startup', '-t', '2'))))
      await rabbit.start().catch(() => undefined);
    if (LAB_RELEASE !== 'zed') return; // release-lab.sh up restarts a dead node
    if (!(await succeeds(rabbitmqctl('-q', 'await_startup', '-t', '5')))) {
      await execFileP('bash', [`${REPO_ROOT}scripts/rabbitmq-up.sh`], { env: SYSTEM_ENV, timeout: 120_000 }).catch(
        () => undefined,
      );
    }
  },
};

/** Resolves with performance.now() once a TCP connect to 127.0.0.1:`port` succeeds. */
export async function portOpenAt(port: number, timeoutMs: number): Promise<number> {
  return await pollUntil(
    () =>
      new Promise<number | undefined>((resolve) => {
        const sock = connect({ host: '127.0.0.1', port });
        sock.once('connect', () => {
          sock.destroy();
          resolve(performance.now());
        });
        sock.once('error', () => resolve(undefined));
      }),
    { timeoutMs, intervalMs: 50, what: `port ${port} to accept` },
  );
}

const GLANCE_PID = '/run/lab/glance-api.pid';
const glanceAnswers = (): Promise<boolean> =>
  fetch(`${GLANCE}/versions`, { signal: AbortSignal.timeout(3000) }).then(
    (r) => r.status < 500,
    () => false,
  );

export const glance = {
  /** SIGTERM to the lab's glance-api (pid from /run/lab); resolves once port 9292 refuses. */
  async stop(): Promise<void> {
    if (LAB_RELEASE !== 'zed') {
      await releaseLabDaemon('glance-api', 'stop');
      await until(async () => !(await glanceAnswers()), 'glance-api to stop answering', 30_000);
      return;
    }
    const pid = pidFile(GLANCE_PID);
    assert.ok(pid, `no live glance-api pid in ${GLANCE_PID}`);
    await terminate(pid, 30_000);
    await until(async () => !(await glanceAnswers()), 'glance-api to stop answering', 30_000);
  },
  /** Starts glance-api as openstack-up.sh's start() does (setsid, as user glance, pid to /run/lab). */
  async start(): Promise<void> {
    if (LAB_RELEASE !== 'zed') {
      await releaseLabDaemon('glance-api', 'start');
      return;
    }
    if (!(await glanceAnswers())) {
      const script =
        'setsid setpriv --reuid=glance --regid="$(id -g glance)" --init-groups ' +
        'glance-api --config-file /etc/glance/glance-api.conf >>/var/log/lab/glance-api.out 2>&1 </dev/null & ' +
        `echo $! > ${GLANCE_PID}`;
      const p = spawn('bash', ['-c', script], { env: SYSTEM_ENV, stdio: 'ignore', detached: true });
      await new Promise((r) => p.once('exit', r));
    }
    await until(glanceAnswers, 'glance-api to answer', 90_000);
  },
  async ensureUp(): Promise<void> {
    if (!(await glanceAnswers())) await glance.start();
  },
};

// ---------------------------------------------------------------- the agent and the scenario

/**
 * Power-state sync every 2 s; containers of deleted instances reaped every
 * 5 s (Nova's default is 1800 s): under these loads a heartbeat can be late,
 * the API then deletes a server itself and only that periodic task removes
 * its container, as with nova-compute.
 */
export const AGENT_CONF = '\n[DEFAULT]\nsync_power_state_interval = 2\nrunning_deleted_instance_poll_interval = 5\n';

/** Waits until the agent's log after character `from` matches `re`; returns the match. */
export async function waitForLog(
  agent: AgentProcess,
  re: RegExp,
  from: number,
  timeoutMs: number,
  what = String(re),
): Promise<RegExpExecArray> {
  return await pollUntil(() => re.exec(agent.log().slice(from)) ?? undefined, {
    timeoutMs,
    intervalMs: 5,
    what: `agent log: ${what}`,
  });
}

/** What every fault scenario holds: its host, its agent, the servers it created and its Glance image. */
export class Scenario {
  agent: AgentProcess | undefined;
  readonly created = new Set<string>();
  /** The image boots use; freshImage() replaces it. */
  imageId = '';
  private readonly images: string[] = [];
  readonly measured: Record<string, number | string> = {};

  constructor(
    readonly host: string,
    readonly conf = AGENT_CONF,
  ) {}

  /** Services up (a previous run may have died mid-fault), agent started, host mapped, image uploaded. */
  async setUp(): Promise<void> {
    await rabbit.ensureUp();
    await dockerd.ensureUp();
    await glance.ensureUp();
    await removeContainersOf(this.host);
    await this.startAgent();
    await discoverHosts();
    this.imageId = await this.freshImage();
  }

  /** A new Glance image of busybox:latest (never loaded on this host yet), removed at tear-down. */
  async freshImage(): Promise<string> {
    const id = await uploadDockerImage(`nd-faults-${randomUUID().slice(0, 8)}`, 'busybox:latest');
    this.images.push(id);
    return id;
  }

  async startAgent(): Promise<AgentProcess> {
    this.agent = await startAgent(this.host, this.conf);
    return this.agent;
  }

  /** Every service up again, every server gone, the agent stopped, the image and containers removed. */
  async tearDown(): Promise<void> {
    await rabbit.ensureUp();
    await dockerd.ensureUp();
    await glance.ensureUp();
    if (this.agent?.proc.pid !== undefined && this.agent.proc.exitCode === null) this.agent.proc.kill('SIGCONT');
    const dead = !this.agent || this.agent.proc.exitCode !== null || this.agent.proc.signalCode !== null;
    if (dead && this.created.size > 0) await this.startAgent().catch(() => undefined);
    // and any server whose POST timed out before it answered with the id
    for (const x of await serversNamed(`${this.host}-`).catch(() => [])) this.created.add(x.id);
    await deleteAndWaitGone(this.created).catch(() => undefined);
    const log = this.agent?.log() ?? '';
    const code = await this.agent?.stop();
    await removeContainersOf(this.host);
    for (const id of this.images) {
      await openstack(['image', 'delete', id]).catch(() => undefined);
      await removeGlanceCacheTags(id);
    }
    if (Object.keys(this.measured).length > 0) console.log(`      measured: ${JSON.stringify(this.measured)}`);
    assert.equal(code, 0, `the agent exits 0 on SIGTERM:\n${log.slice(-3000)}`);
  }

  async boot(name: string): Promise<string> {
    const id = await createServer(this.host, this.imageId, `${this.host}-${name}-${randomUUID().slice(0, 6)}`);
    this.created.add(id);
    return id;
  }

  /** Boots and waits for ACTIVE; returns the id and the seconds it took. */
  async bootActive(name: string, timeoutMs = 120_000): Promise<{ id: string; seconds: number }> {
    const t0 = performance.now();
    const id = await this.boot(name);
    const s = await waitServer(id, settled, 'settled', timeoutMs);
    assert.equal(s?.status, 'ACTIVE', `${name}: ${JSON.stringify(s)}\n${this.agent?.log().slice(-3000) ?? ''}`);
    return { id, seconds: secondsSince(t0) };
  }

  async consistent(check: Omit<HostCheck, 'created'> = {}): Promise<HostReport> {
    try {
      return await assertHostConsistent(this.host, { ...check, created: this.created });
    } catch (err) {
      // the agent's own account of the instances named, for the post-mortem (its log dies with the test)
      const uuids = new Set((err as Error).message.match(/[0-9a-f]{8}-[0-9a-f-]{27}/g) ?? []);
      const lines = (this.agent?.log() ?? '').split('\n').filter((l) => [...uuids].some((u) => l.includes(u)));
      throw new Error(`${(err as Error).message}\nagent log of those instances:\n${lines.slice(-60).join('\n')}`, {
        cause: err,
      });
    }
  }

  async deleteAll(): Promise<void> {
    await deleteAndWaitGone(this.created);
  }
}
