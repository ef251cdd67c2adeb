/**
 * Soak: boot/delete churn across several compute hosts on the lab's real Nova,
 * with a RabbitMQ restart, a dockerd restart and an agent `kill -9` injected
 * once each at random (seeded) times, then every end state checked.
 *
 *   node dist/bench/soak.js [--minutes 60] [--hosts 3] [--loops 4] [--seed N] [--life 2-30] [--log-dir DIR] [--plan]
 *
 * Hosts `nd-soak-1` … `nd-soak-<hosts>`, one agent each, started as install.sh
 * starts the service (`--max-semi-space-size=1`, MALLOC_ARENA_MAX=2) with the
 * fault suite's nova.conf extra (AGENT_CONF). `--loops` loops each: POST a
 * server (m1.tiny, busybox from Glance, no network) forced onto a random host
 * (`nova:<host>`), wait until it settles, let it live a random `--life`
 * seconds, DELETE it, wait until it is gone. Three faults, each once, at
 * seeded times between 10 % and 85 % of the run and at least a sixth of it
 * apart: RabbitMQ `stop_app` / `start_app` (3–15 s down), dockerd SIGTERM and
 * `docker-up.sh` (2–10 s down; it stops every container), and SIGKILL of one
 * host's agent, started again after 1–10 s (its recovery must settle the
 * builds and deletes it had in flight).
 *
 * What must hold (an invariant broken makes the exit status 1):
 *  - a boot ends ACTIVE; ERROR (with a fault) or SHUTOFF only when a fault hit
 *    its life (counted apart); never ERROR without a fault, never stuck in BUILD;
 *  - an ACTIVE server stays ACTIVE until it is deleted, unless dockerd
 *    restarted (SHUTOFF, its container stopped);
 *  - a DELETE ends with the server gone (not stuck deleting);
 *  - at the end, per host: no server left, no container (orphan), no Placement
 *    allocation on the host's provider nor of any deleted server (leak), and
 *    every agent exits 0 on SIGTERM; no agent logged an unhandled error.
 * Known gap kept apart (not an agent failure; nova-compute has it too, see
 * docs/faults.md): a build whose cast was lost with the broker, or taken by an
 * agent killed before the claim, stays BUILD/scheduling without a host until
 * deleted.
 *
 * Measured and printed: boots and deletes done, API → ACTIVE and DELETE →
 * gone p50/p95 (client-side, 250/500 ms polling), each fault's time and
 * timings, and every agent's VmRSS sampled every 30 s: first, last, max and
 * the least-squares slope in MB/hour (all samples, and after the first 5
 * minutes of the process). The agents' logs and a summary.json go to
 * `--log-dir` (a new /tmp/nd-soak-* directory unless given).
 *
 * Cleanup, also on failure or Ctrl-C: every server of the soak hosts deleted,
 * the agents stopped (SIGTERM), their containers removed, the Glance image and
 * its cache tags removed, the hosts' compute services deleted (and their
 * node identity files, so the next run registers fresh nodes).
 * Stops and restarts shared services: run it alone on the lab.
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  AGENT_CONF,
  assertHostConsistent,
  containersOf,
  createServer,
  deleteAndWaitGone,
  deleteServer,
  glance,
  portOpenAt,
  providerConsumers,
  providerUuid,
  rabbit,
  Scenario,
  serversNamed,
  settled,
  showServer,
  sleep,
  waitForLog,
  waitServer,
  type ServerView,
} from '../test/faults/fault-lab.js';
import { dockerd } from '../test/support/dockerd.js';
import { LAB_ENDPOINTS } from '../test/support/lab-env.js';
import {
  discoverHosts,
  openstack,
  openstackJson,
  removeGlanceCacheTags,
  startAgent,
  uploadDockerImage,
  type AgentProcess,
} from '../test/support/lab.js';
import { stat } from './support.js';

// ---------------------------------------------------------------- arguments

interface Args {
  minutes: number;
  hosts: number;
  loops: number;
  seed: number;
  lifeS: [number, number];
  logDir: string | undefined;
  /** Print the planned fault schedule of the seed and exit (touches nothing). */
  plan: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    minutes: 60,
    hosts: 3,
    loops: 4,
    seed: Date.now() % 2 ** 31,
    lifeS: [2, 30],
    logDir: undefined,
    plan: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--plan') {
      a.plan = true;
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new Error(`${k} needs a value`);
    if (k === '--minutes') a.minutes = Number(v);
    else if (k === '--hosts') a.hosts = Number(v);
    else if (k === '--loops') a.loops = Number(v);
    else if (k === '--seed') a.seed = Number(v);
    else if (k === '--life') a.lifeS = v.split('-').map(Number) as [number, number];
    else if (k === '--log-dir') a.logDir = v;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!(a.minutes > 0)) throw new Error(`bad --minutes ${a.minutes}`);
  if (!Number.isInteger(a.hosts) || a.hosts < 1) throw new Error(`bad --hosts ${a.hosts}`);
  if (!Number.isInteger(a.loops) || a.loops < 1) throw new Error(`bad --loops ${a.loops}`);
  if (!Number.isInteger(a.seed)) throw new Error(`bad --seed ${a.seed}`);
  if (a.lifeS.length !== 2 || !(a.lifeS[0] >= 0 && a.lifeS[1] >= a.lifeS[0])) throw new Error('bad --life MIN-MAX');
  return a;
}

const ARGS = parseArgs(process.argv.slice(2));
const RUN = randomUUID().slice(0, 6);
const DURATION_S = ARGS.minutes * 60;
const HOSTS = Array.from({ length: ARGS.hosts }, (_, i) => `nd-soak-${i + 1}`);
/** The flags and environment install.sh gives the service: RSS is measured as it runs in production. */
const NODE_FLAGS = ['--max-semi-space-size=1'];
const RSS_EVERY_MS = 30_000;
/** A fault is taken to hit a server whose life overlaps [fault start, fault end + this]. */
const FAULT_GRACE_S = 120;
const BUILD_TIMEOUT_MS = 300_000;
const GONE_TIMEOUT_MS = 300_000;

// ---------------------------------------------------------------- seeded randomness

/** mulberry32: a small seeded PRNG, so a run's fault schedule and choices can be replayed with --seed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const between = (rnd: () => number, lo: number, hi: number): number => lo + rnd() * (hi - lo);
const pick = <T>(rnd: () => number, xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;

// ---------------------------------------------------------------- run state

type FaultKind = 'rabbitmq' | 'dockerd' | 'agent-kill';

interface Fault {
  kind: FaultKind;
  /** Seconds since the churn began. */
  plannedAt: number;
  /** agent-kill: the host whose agent is killed. */
  host?: string;
  at?: number;
  endAt?: number;
  detail: Record<string, number | string>;
}

interface Life {
  id: string;
  name: string;
  host: string;
  postAt: number;
  /** POST → settled, seconds; undefined while building or when it never settled. */
  buildS?: number;
  /** What the build ended as: ACTIVE, ERROR, SHUTOFF, or stuck/gone. */
  built?: string;
  deleteAt?: number;
  goneS?: number;
  goneAt?: number;
  phase: 'building' | 'living' | 'deleting' | 'gone' | 'stuck';
}

const t0Wall = Date.now();
let t0 = performance.now();
const now = (): number => (performance.now() - t0) / 1000;
const stamp = (s = now()): string => {
  const m = Math.floor(Math.max(0, s) / 60);
  return `${m}:${String(Math.floor(Math.max(0, s) % 60)).padStart(2, '0')}`;
};

const lives: Life[] = [];
const faults: Fault[] = [];
const breaks: string[] = [];
/** Outcomes a fault explains, by kind of outcome: counted apart, not failures. */
const underFault = { buildError: [] as string[], buildShutoff: 0, shutoffWhileLiving: 0 };
/** The known gap: builds never claimed by any host (cast lost, or taken by a killed agent before its claim). */
const unclaimed: string[] = [];
const apiErrors: string[] = [];
let aborted = false;

function broke(what: string): void {
  const line = `[${stamp()}] ${what}`;
  breaks.push(line);
  console.log(`  INVARIANT BROKEN ${line}`);
}

function note(what: string): void {
  console.log(`[${stamp()}] ${what}`);
}

/** The faults whose window overlaps [from, to] and that touch `host`. */
function faultsHitting(host: string, from: number, to: number): Fault[] {
  return faults.filter(
    (f) =>
      f.at !== undefined &&
      (f.host === undefined || f.host === host) &&
      from <= (f.endAt ?? now()) + FAULT_GRACE_S &&
      to >= f.at,
  );
}

// ---------------------------------------------------------------- the hosts and their agents

interface Host {
  s: Scenario;
  /** Every agent process this host had, oldest first (a kill -9 adds one). */
  agents: AgentProcess[];
  rss: Array<{ gen: number; t: number; mb: number }>;
  /** Every server created on it (for the end check: deleted ones must hold no allocation). */
  ids: Set<string>;
}

const hosts = new Map<string, Host>(
  HOSTS.map((h) => [h, { s: new Scenario(h, AGENT_CONF), agents: [], rss: [], ids: new Set() }]),
);
const hostOf = (name: string): Host => hosts.get(name)!;
let imageId = '';

async function startHostAgent(h: Host): Promise<AgentProcess> {
  const a = await startAgent(h.s.host, h.s.conf, NODE_FLAGS);
  h.s.agent = a;
  h.agents.push(a);
  return a;
}

function rssMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

function sampleRss(): void {
  for (const h of hosts.values()) {
    const a = h.s.agent;
    if (!a || a.proc.exitCode !== null || a.proc.signalCode !== null) continue;
    const mb = rssMb(a.proc.pid);
    if (mb !== undefined) h.rss.push({ gen: h.agents.length, t: now(), mb });
  }
}

/** Every line of every agent process of `host` naming instance `id`. */
function agentLines(host: string, id: string): string[] {
  return hostOf(host)
    .agents.flatMap((a) => a.log().split('\n'))
    .filter((l) => l.includes(id));
}

// ---------------------------------------------------------------- churn

/** DELETE, retried while the API refuses it for a moment (a fault in flight); false when it never took it. */
async function deleteWithRetry(id: string): Promise<boolean> {
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      await deleteServer(id);
      return true;
    } catch (err) {
      apiErrors.push(`[${stamp()}] DELETE ${id}: ${(err as Error).message.slice(0, 200)}`);
      await sleep(5000);
    }
  }
  return false;
}

async function waitGone(id: string, timeoutMs = GONE_TIMEOUT_MS): Promise<ServerView | undefined> {
  try {
    await waitServer(id, (x) => x === undefined, 'gone', timeoutMs, 500);
    return undefined;
  } catch {
    return (await showServer(id).catch(() => undefined)) ?? { id, status: 'unknown' };
  }
}

const describeServer = (x: ServerView | undefined): string =>
  x === undefined
    ? 'gone'
    : `${x.status}/${x['OS-EXT-STS:task_state'] ?? '-'} host ${x['OS-EXT-SRV-ATTR:host'] ?? '-'}` +
      (x.fault?.message ? ` fault "${x.fault.message.slice(0, 160)}"` : '');

/** One server's life: POST, settle, live, DELETE, gone; every wanted state checked on the way. */
async function oneLife(loop: number, n: number, rnd: () => number): Promise<void> {
  const host = pick(rnd, HOSTS);
  const h = hostOf(host);
  const name = `${host}-${RUN}-${loop}-${n}`;
  const lifeS = between(rnd, ARGS.lifeS[0], ARGS.lifeS[1]);
  const postAt = now();
  const tPost = performance.now();
  let id: string;
  try {
    id = await createServer(host, imageId, name);
  } catch (err) {
    // the server may exist all the same: the end check finds it by name and deletes it
    apiErrors.push(`[${stamp()}] POST ${name}: ${(err as Error).message.slice(0, 200)}`);
    await sleep(5000);
    return;
  }
  h.s.created.add(id);
  h.ids.add(id);
  const life: Life = { id, name, host, postAt, phase: 'building' };
  lives.push(life);

  // build
  let built: ServerView | undefined;
  try {
    built = await waitServer(id, settled, 'settled', BUILD_TIMEOUT_MS, 250);
  } catch {
    built = await showServer(id).catch(() => undefined);
    life.built = `stuck: ${describeServer(built)}`;
    life.phase = 'stuck';
  }
  if (life.phase !== 'stuck') {
    life.buildS = (performance.now() - tPost) / 1000;
    life.built = built?.status ?? 'gone';
  }
  const hit = (): Fault[] => faultsHitting(host, postAt, now());
  const hitKinds = (): string =>
    hit()
      .map((f) => f.kind)
      .join('+');
  if (life.built === 'ACTIVE') {
    life.phase = 'living';
  } else if (built?.status === 'ERROR' && built.fault?.message && hit().length > 0) {
    underFault.buildError.push(`${hitKinds()}: ${built.fault.message.slice(0, 160)}`);
    life.phase = 'living';
  } else if (built?.status === 'SHUTOFF' && hit().some((f) => f.kind === 'dockerd')) {
    underFault.buildShutoff++;
    life.phase = 'living';
  } else if (
    life.phase === 'stuck' &&
    built?.status === 'BUILD' &&
    !built['OS-EXT-SRV-ATTR:host'] &&
    hit().some((f) => f.kind === 'rabbitmq' || f.kind === 'agent-kill')
  ) {
    unclaimed.push(`${id} (${hitKinds()}): ${describeServer(built)}`);
  } else {
    const fs = hitKinds();
    broke(
      `boot ${id} on ${host} ended ${life.built}` +
        (built?.status === 'ERROR' ? ` (${describeServer(built)})` : '') +
        (fs ? ` (faults: ${fs})` : ' (no fault injected)'),
    );
  }

  // life
  if (life.phase === 'living') {
    await sleep(lifeS * 1000);
    const before = await showServer(id).catch(() => undefined);
    if (life.built === 'ACTIVE' && before?.status !== 'ACTIVE') {
      if (before?.status === 'SHUTOFF' && hit().some((f) => f.kind === 'dockerd')) underFault.shutoffWhileLiving++;
      else if (before !== undefined && !settled(before) && hit().length > 0) {
        // a fault in flight (e.g. the power sync at work): the delete below must still end it
      } else broke(`${id} on ${host} was ACTIVE, then ${describeServer(before)} before its delete`);
    }
  }

  // delete
  life.phase = 'deleting';
  life.deleteAt = now();
  const tDel = performance.now();
  if (!(await deleteWithRetry(id))) {
    broke(`${id} on ${host}: DELETE never accepted`);
    return;
  }
  const left = await waitGone(id);
  if (left) {
    life.phase = 'stuck';
    broke(`${id} on ${host}: not gone ${GONE_TIMEOUT_MS / 1000} s after DELETE: ${describeServer(left)}`);
    return;
  }
  life.goneS = (performance.now() - tDel) / 1000;
  life.goneAt = now();
  life.phase = 'gone';
  h.s.created.delete(id);
}

async function churnLoop(loop: number, endAt: number): Promise<void> {
  const rnd = prng(ARGS.seed * 31 + loop + 1);
  for (let n = 0; !aborted && now() < endAt; n++) {
    try {
      await oneLife(loop, n, rnd);
    } catch (err) {
      broke(`loop ${loop}: ${(err as Error).stack ?? String(err)}`);
      await sleep(5000);
    }
  }
}

// ---------------------------------------------------------------- faults

/** Three fault times between 10 % and 85 % of the run, at least a sixth of it apart, in a seeded order. */
function planFaults(rnd: () => number): Fault[] {
  const kinds: FaultKind[] = ['rabbitmq', 'dockerd', 'agent-kill'];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  const gap = DURATION_S / 6;
  let times: number[] = [];
  for (let tries = 0; tries < 10_000; tries++) {
    times = kinds.map(() => between(rnd, 0.1 * DURATION_S, 0.85 * DURATION_S)).sort((a, b) => a - b);
    if (times.every((t, i) => i === 0 || t - times[i - 1]! >= gap)) break;
  }
  const killHost = pick(rnd, HOSTS);
  return kinds.map((kind, i) => ({
    kind,
    plannedAt: Math.round(times[i]!),
    ...(kind === 'agent-kill' ? { host: killHost } : {}),
    detail: {},
  }));
}

/** Servers in flight on `host` (or all hosts), by phase: what a fault cuts into. */
function inFlight(host?: string): string {
  const on = lives.filter((l) => host === undefined || l.host === host);
  const n = (p: Life['phase']): number => on.filter((l) => l.phase === p).length;
  return `building ${n('building')}, living ${n('living')}, deleting ${n('deleting')}`;
}

async function injectRabbit(f: Fault, rnd: () => number): Promise<void> {
  const downS = Math.round(between(rnd, 3, 15));
  const from = new Map([...hosts.values()].map((h) => [h, h.s.agent?.log().length ?? 0]));
  f.detail.inFlight = inFlight();
  let t = performance.now();
  await rabbit.stop();
  f.detail.stopS = round1((performance.now() - t) / 1000);
  f.detail.downS = downS;
  await sleep(downS * 1000);
  t = performance.now();
  const portUp = portOpenAt(LAB_ENDPOINTS.rabbitPort, 120_000);
  await rabbit.start();
  const upAt = await portUp;
  f.detail.startS = round1((performance.now() - t) / 1000);
  // every agent reconnects (the one of a killed host may be between processes: its new process connects anew)
  const reconnect = await Promise.all(
    [...hosts.values()].map(async (h) => {
      const a = h.s.agent;
      if (!a) return NaN;
      await waitForLog(a, /Connected to AMQP server/, from.get(h) ?? 0, 180_000).catch(() =>
        broke(`${h.s.host}: no "Connected to AMQP server" within 180 s of the broker restart`),
      );
      return (performance.now() - upAt) / 1000;
    }),
  );
  f.detail.reconnectMaxS = round1(Math.max(...reconnect));
}

async function injectDockerd(f: Fault, rnd: () => number): Promise<void> {
  const downS = Math.round(between(rnd, 2, 10));
  f.detail.inFlight = inFlight();
  f.detail.containersRunning = (await Promise.all(HOSTS.map((h) => containersOf(h).catch(() => []))))
    .flat()
    .filter((c) => c.state === 'running').length;
  let t = performance.now();
  await dockerd.stop();
  f.detail.stopS = round1((performance.now() - t) / 1000);
  f.detail.downS = downS;
  await sleep(downS * 1000);
  t = performance.now();
  await dockerd.start();
  f.detail.startS = round1((performance.now() - t) / 1000);
}

async function injectKill(f: Fault, rnd: () => number): Promise<void> {
  const h = hostOf(f.host!);
  const downS = Math.round(between(rnd, 1, 10));
  const a = h.s.agent!;
  f.detail.inFlight = inFlight(h.s.host);
  f.detail.rssBeforeMb = round1(rssMb(a.proc.pid) ?? NaN);
  const exited = new Promise<void>((r) => a.proc.once('exit', () => r()));
  a.proc.kill('SIGKILL');
  await exited;
  f.detail.downS = downS;
  await sleep(downS * 1000);
  const t = performance.now();
  const next = await startHostAgent(h);
  f.detail.restartServingS = round1((performance.now() - t) / 1000);
  const recovered = next
    .log()
    .split('\n')
    .filter((l) => l.includes('Recovery at start'));
  f.detail.recoveryActions = recovered.length;
  f.detail.recovery = [...new Set(recovered.map((l) => /Recovery at start: ([a-z-]+)/.exec(l)?.[1] ?? '?'))].join(',');
}

async function runFault(f: Fault, rnd: () => number): Promise<void> {
  await sleep(Math.max(0, f.plannedAt - now()) * 1000);
  if (aborted) return;
  f.at = now();
  note(`fault ${f.kind}${f.host ? ` (${f.host})` : ''} begins; in flight: ${inFlight(f.host)}`);
  try {
    if (f.kind === 'rabbitmq') await injectRabbit(f, rnd);
    else if (f.kind === 'dockerd') await injectDockerd(f, rnd);
    else await injectKill(f, rnd);
  } catch (err) {
    broke(`fault ${f.kind}: ${(err as Error).message}`);
  }
  f.endAt = now();
  note(`fault ${f.kind} over after ${round1(f.endAt - f.at)} s: ${JSON.stringify(f.detail)}`);
}

// ---------------------------------------------------------------- the end check

async function endCheck(): Promise<void> {
  // servers whose POST failed client-side but that the API created all the same
  const untracked: string[] = [];
  for (const h of hosts.values()) {
    for (const x of await serversNamed(`${h.s.host}-${RUN}-`)) {
      h.ids.add(x.id);
      const life = lives.find((l) => l.id === x.id);
      if (!life) untracked.push(x.id);
      else if (life.phase !== 'stuck') broke(`${x.id} on ${h.s.host} still exists after its loop saw it gone`);
    }
  }
  if (untracked.length) {
    note(`${untracked.length} server(s) created by a POST that failed client-side: deleting them`);
    await deleteAndWaitGone(untracked, GONE_TIMEOUT_MS).catch((err: unknown) =>
      broke(`deleting the untracked servers: ${(err as Error).message}`),
    );
  }
  // stuck ones (already counted): delete again so the host check sees the rest
  const stuck = lives.filter((l) => l.phase === 'stuck').map((l) => l.id);
  if (stuck.length) await deleteAndWaitGone(stuck, GONE_TIMEOUT_MS).catch(() => undefined);
  endState.untracked = untracked.length;

  for (const h of hosts.values()) {
    try {
      const report = await assertHostConsistent(h.s.host, { created: h.ids });
      if (report.live.length) broke(`${h.s.host}: servers left: ${report.live.map(describeServer).join('; ')}`);
      if (report.containers.length) broke(`${h.s.host}: containers left: ${JSON.stringify(report.containers)}`);
      const consumers = await providerConsumers(await providerUuid(h.s.host));
      if (consumers.length) broke(`${h.s.host}: Placement allocations left on its provider: ${consumers.join(' ')}`);
      endState.hosts[h.s.host] = {
        servers: h.ids.size,
        left: report.live.length,
        containers: report.containers.length,
        allocations: consumers.length,
        service: await serviceStatus(h.s.host),
      };
    } catch (err) {
      const msg = (err as Error).message;
      const uuids = new Set(msg.match(/[0-9a-f]{8}-[0-9a-f-]{27}/g) ?? []);
      const lines = [...uuids].flatMap((u) => agentLines(h.s.host, u)).slice(-40);
      broke(`${h.s.host}: ${msg}\n  agent log of those instances:\n  ${lines.join('\n  ')}`);
    }
  }
  for (const h of hosts.values()) {
    const logs = h.agents.map((a) => a.log()).join('\n');
    const unhandled = logs.split('\n').filter((l) => /unhandled|uncaught/i.test(l));
    if (unhandled.length) broke(`${h.s.host}: ${unhandled.length} unhandled error line(s): ${unhandled[0]}`);
  }
}

const endState = {
  untracked: 0,
  hosts: {} as Record<
    string,
    { servers: number; left: number; containers: number; allocations: number; service: string }
  >,
};

/** `enabled`, or `disabled: <reason>` (a host auto-disables after consecutive failed builds, as nova-compute). */
async function serviceStatus(host: string): Promise<string> {
  const rows = await openstackJson<Array<{ Status: string; 'Disabled Reason'?: string | null }>>([
    'compute',
    'service',
    'list',
    '--long',
    '--service',
    'nova-compute',
    '--host',
    host,
  ]).catch(() => []);
  return rows.map((r) => (r.Status === 'enabled' ? r.Status : `${r.Status}: ${r['Disabled Reason'] ?? ''}`)).join(',');
}

// ---------------------------------------------------------------- report

const round1 = (x: number): number => Math.round(x * 10) / 10;

/** Least-squares slope of (t seconds, mb) in MB/hour; NaN under two points. */
function slopeMbPerHour(points: Array<{ t: number; mb: number }>): number {
  const n = points.length;
  if (n < 2) return NaN;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const mm = points.reduce((s, p) => s + p.mb, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.mb - mm);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? NaN : (num / den) * 3600;
}

interface RssRow {
  agent: string;
  samples: number;
  minutes: number;
  firstMb: number;
  lastMb: number;
  maxMb: number;
  slopeMbPerH: number;
  slopeAfter5MinMbPerH: number;
}

function rssRows(): RssRow[] {
  const rows: RssRow[] = [];
  for (const h of hosts.values()) {
    for (let gen = 1; gen <= h.agents.length; gen++) {
      const pts = h.rss.filter((p) => p.gen === gen);
      if (!pts.length) continue;
      const start = pts[0]!.t;
      rows.push({
        agent: `${h.s.host}${h.agents.length > 1 ? ` #${gen}` : ''}`,
        samples: pts.length,
        minutes: round1((pts[pts.length - 1]!.t - start) / 60),
        firstMb: round1(pts[0]!.mb),
        lastMb: round1(pts[pts.length - 1]!.mb),
        maxMb: round1(Math.max(...pts.map((p) => p.mb))),
        slopeMbPerH: round1(slopeMbPerHour(pts)),
        slopeAfter5MinMbPerH: round1(slopeMbPerHour(pts.filter((p) => p.t - start >= 300))),
      });
    }
  }
  return rows;
}

function summary(): Record<string, unknown> {
  const active = lives.filter((l) => l.built === 'ACTIVE' && l.buildS !== undefined);
  const quiet = active.filter((l) => faultsHitting(l.host, l.postAt, l.postAt + (l.buildS ?? 0)).length === 0);
  const gone = lives.filter((l) => l.goneS !== undefined);
  const s = (xs: number[]): Record<string, number> => {
    const r = stat(xs);
    return { n: xs.length, p50: round1(r.p50), p95: round1(r.p95), max: round1(r.max) };
  };
  return {
    run: RUN,
    seed: ARGS.seed,
    startedAt: new Date(t0Wall).toISOString(),
    minutes: ARGS.minutes,
    hosts: HOSTS,
    loops: ARGS.loops,
    lifeS: ARGS.lifeS,
    boots: lives.length,
    bootsActive: active.length,
    bootErrorUnderFault: underFault.buildError.length,
    bootShutoffUnderFault: underFault.buildShutoff,
    shutoffWhileLivingUnderDockerd: underFault.shutoffWhileLiving,
    unclaimedBuilds: unclaimed.length,
    deletesDone: gone.length,
    apiToActiveS: s(active.map((l) => l.buildS!)),
    apiToActiveNoFaultS: s(quiet.map((l) => l.buildS!)),
    deleteToGoneS: s(gone.map((l) => l.goneS!)),
    apiErrors: apiErrors.length,
    faults: faults.map((f) => ({
      kind: f.kind,
      ...(f.host ? { host: f.host } : {}),
      plannedAt: stamp(f.plannedAt),
      at: f.at === undefined ? 'not injected' : stamp(f.at),
      tookS: f.at !== undefined && f.endAt !== undefined ? round1(f.endAt - f.at) : undefined,
      ...f.detail,
    })),
    rss: rssRows(),
    end: endState,
    buildErrorsUnderFault: underFault.buildError,
    unclaimed,
    breaks,
  };
}

function printSummary(sum: Record<string, unknown>): void {
  const get = <T>(k: string): T => sum[k] as T;
  const st = (k: string): string => {
    const x = get<Record<string, number>>(k);
    return `p50 ${x.p50} s, p95 ${x.p95} s, max ${x.max} s (n=${x.n})`;
  };
  console.log(`\n==== soak ${RUN}: ${ARGS.minutes} min, ${HOSTS.length} hosts, ${ARGS.loops} loops, seed ${ARGS.seed}`);
  console.log(
    `boots ${get<number>('boots')}: ACTIVE ${get<number>('bootsActive')}, ERROR with a fault under a fault ` +
      `${get<number>('bootErrorUnderFault')}, SHUTOFF under dockerd ${get<number>('bootShutoffUnderFault')}, ` +
      `never claimed (known gap) ${get<number>('unclaimedBuilds')}`,
  );
  console.log(
    `ACTIVE servers SHUTOFF by the dockerd restart while living: ${get<number>('shutoffWhileLivingUnderDockerd')}`,
  );
  console.log(`deletes done ${get<number>('deletesDone')}; API errors (retried) ${get<number>('apiErrors')}`);
  console.log(`API → ACTIVE: ${st('apiToActiveS')}`);
  console.log(`API → ACTIVE, no fault in the window: ${st('apiToActiveNoFaultS')}`);
  console.log(`DELETE → gone: ${st('deleteToGoneS')}`);
  console.log('faults:');
  for (const f of get<Array<Record<string, unknown>>>('faults')) console.log(`  ${JSON.stringify(f)}`);
  for (const e of underFault.buildError) console.log(`  build ERROR under ${e}`);
  for (const u of unclaimed) console.log(`  never claimed: ${u}`);
  console.log('agent VmRSS (every 30 s):');
  for (const r of get<RssRow[]>('rss')) {
    console.log(
      `  ${r.agent.padEnd(14)} ${String(r.samples).padStart(4)} samples over ${r.minutes} min: first ${r.firstMb} MB, ` +
        `last ${r.lastMb} MB, max ${r.maxMb} MB; slope ${r.slopeMbPerH} MB/h (after 5 min: ${r.slopeAfter5MinMbPerH} MB/h)`,
    );
  }
  console.log(`end state per host: ${JSON.stringify(endState.hosts)}; untracked servers deleted ${endState.untracked}`);
  if (apiErrors.length) console.log(`API errors:\n  ${apiErrors.slice(0, 20).join('\n  ')}`);
  console.log(breaks.length ? `INVARIANTS BROKEN: ${breaks.length}\n  ${breaks.join('\n  ')}` : 'every invariant held');
}

// ---------------------------------------------------------------- setup and cleanup

/** The compute service records of `host` (Nova deletes its compute node, host mapping and provider with them). */
async function deleteComputeService(host: string): Promise<void> {
  const v = ['--os-compute-api-version', '2.53'];
  const rows = await openstackJson<Array<{ ID: string }>>([
    ...v,
    'compute',
    'service',
    'list',
    '--service',
    'nova-compute',
    '--host',
    host,
  ]);
  for (const r of rows) await openstack([...v, 'compute', 'service', 'delete', r.ID]);
  // its node identity (labNovaConf's state_path): a new node gets a new uuid, not the deleted node's
  rmSync(join(tmpdir(), 'nova-docker-e2e-state', host), { recursive: true, force: true });
}

async function setUp(): Promise<void> {
  process.env.MALLOC_ARENA_MAX ??= '2';
  await rabbit.ensureUp();
  await dockerd.ensureUp();
  await glance.ensureUp();
  await Promise.all([...hosts.values()].map((h) => startHostAgent(h)));
  await discoverHosts();
  // leftovers of an earlier run that was killed
  for (const h of hosts.values()) {
    const old = (await serversNamed(`${h.s.host}-`)).map((x) => x.id);
    if (old.length) {
      note(`${h.s.host}: deleting ${old.length} server(s) left by an earlier run`);
      await deleteAndWaitGone(old, GONE_TIMEOUT_MS);
    }
  }
  imageId = await uploadDockerImage(`nd-soak-${RUN}`, 'busybox:latest');
  for (const h of hosts.values()) h.s.imageId = imageId;
  // one warm-up boot per host: the image is loaded once, not by the first measured boots
  await Promise.all(
    [...hosts.values()].map(async (h) => {
      const id = await createServer(h.s.host, imageId, `${h.s.host}-${RUN}-warm`);
      h.ids.add(id);
      h.s.created.add(id);
      const x = await waitServer(id, settled, 'warm-up settled', BUILD_TIMEOUT_MS, 500);
      if (x?.status !== 'ACTIVE') throw new Error(`warm-up boot on ${h.s.host}: ${describeServer(x)}`);
      await deleteAndWaitGone([id], GONE_TIMEOUT_MS);
      h.s.created.delete(id);
    }),
  );
}

/** Services up, every server deleted, agents stopped (each must exit 0), image and compute services removed. */
async function cleanUp(clean: boolean): Promise<void> {
  aborted = true;
  for (const h of hosts.values()) {
    // the compute service of a host whose agent never started (or is dead) is still deleted below
    await h.s.tearDown().catch((err: unknown) => {
      const msg = (err as Error).message.split('\n')[0] ?? '';
      if (clean) broke(`${h.s.host} tear-down: ${msg}`);
      else console.error(`cleanup ${h.s.host}: ${msg}`);
    });
  }
  if (imageId) {
    await openstack(['image', 'delete', imageId]).catch(() => undefined);
    await removeGlanceCacheTags(imageId);
  }
  for (const host of HOSTS) {
    await deleteComputeService(host).catch((err: unknown) =>
      console.error(`cleanup: compute service of ${host}: ${(err as Error).message.split('\n')[0]}`),
    );
  }
}

function saveLogs(dir: string, sum: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  for (const h of hosts.values()) {
    h.agents.forEach((a, i) => writeFileSync(join(dir, `${h.s.host}.${i + 1}.log`), a.log()));
  }
  writeFileSync(join(dir, 'summary.json'), `${JSON.stringify(sum, null, 2)}\n`);
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const faultRnd = prng(ARGS.seed);
  faults.push(...planFaults(faultRnd));
  if (ARGS.plan) {
    console.log(JSON.stringify(faults.map((f) => ({ ...f, plannedAt: stamp(f.plannedAt) }))));
    return 0;
  }
  const logDir = ARGS.logDir ?? mkdtempSync(join(tmpdir(), 'nd-soak-'));
  console.log(
    `soak ${RUN}: ${ARGS.minutes} min, hosts ${HOSTS.join(' ')}, ${ARGS.loops} loops, life ${ARGS.lifeS.join('–')} s, ` +
      `seed ${ARGS.seed}; logs in ${logDir}`,
  );
  console.log(
    `planned faults: ${faults.map((f) => `${f.kind}${f.host ? `(${f.host})` : ''} at ${stamp(f.plannedAt)}`).join(', ')}`,
  );

  let interrupted = false;
  const interrupt = new Promise<void>((resolve) => {
    process.on('SIGINT', () => {
      if (interrupted) process.exit(130);
      interrupted = true;
      aborted = true;
      console.error('\ninterrupted: cleaning up (Ctrl-C again to quit at once)');
      resolve();
    });
  });
  process.on('exit', () => {
    for (const h of hosts.values()) if (h.s.agent && h.s.agent.proc.exitCode === null) h.s.agent.proc.kill('SIGTERM');
  });

  let finished = false;
  try {
    await Promise.race([setUp(), interrupt]);
    if (interrupted) return 130;
    t0 = performance.now();
    note('churn begins');
    sampleRss();
    const sampler = setInterval(sampleRss, RSS_EVERY_MS);
    const progress = setInterval(() => {
      const rss = [...hosts.values()].map((h) => `${h.s.host} ${round1(h.rss[h.rss.length - 1]?.mb ?? NaN)}`);
      note(
        `boots ${lives.length} (ACTIVE ${lives.filter((l) => l.built === 'ACTIVE').length}), ` +
          `gone ${lives.filter((l) => l.phase === 'gone').length}; ${inFlight()}; breaks ${breaks.length}; RSS MB ${rss.join(', ')}`,
      );
    }, 60_000);
    const faultRuns = faults.map((f) => runFault(f, faultRnd));
    const loops = Array.from({ length: ARGS.loops }, (_, i) => churnLoop(i, DURATION_S));
    await Promise.race([Promise.all([...loops, ...faultRuns]), interrupt]);
    clearInterval(progress);
    clearInterval(sampler);
    sampleRss();
    if (interrupted) return 130;
    note('churn over: end check');
    await endCheck();
    finished = true;
  } catch (err) {
    broke(`soak: ${(err as Error).stack ?? String(err)}`);
  } finally {
    // the logs first: a cleanup that hangs or dies must not lose them
    saveLogs(logDir, summary());
    await cleanUp(finished && !interrupted);
    const sum = summary();
    saveLogs(logDir, sum);
    printSummary(sum);
    console.log(`agent logs and summary.json: ${logDir}`);
  }
  return breaks.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
