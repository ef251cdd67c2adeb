/**
 * Instance actions through the lab's real Nova Zed with our agent as the
 * compute host, next to the raw Docker operations they are made of:
 *
 *   node dist/bench/actions.js [N=5] [MB=200]
 *
 *   - soft reboot: POST /servers/{id}/action {"reboot": SOFT} → ACTIVE with no
 *     task again, vs the Engine's restart of a like container (busybox,
 *     docker-init, network none, 10 s grace) — skipped with a note when the
 *     agent answers reboot_instance with NotImplementedError;
 *   - snapshot of busybox and of busybox + MB of random data:
 *     POST {"createImage"} → Glance image active and the server's task None,
 *     vs `docker commit` + `docker save` of the same container to /dev/null.
 *
 * Nova is driven over HTTP (Keystone token, microversion 2.51, 100 ms polling);
 * setup (image uploads, boots) uses the `openstack` CLI. The agent's share of
 * an action is the span of its log lines carrying the action's request id,
 * from "dispatching <method>" to the last one. The busybox + MB image is
 * built locally from busybox as bench/image-load does (no network).
 * Everything created (servers, Glance images, docker images and containers)
 * is removed and the agent SIGTERMed at the end, also on failure.
 */
import { LAB_ENDPOINTS } from '../test/support/lab-env.js';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DockerClient } from '../src/clients/docker/client.js';
import { pollUntil } from '../src/common/poll.js';
import { logTime } from '../test/support/agent-log.js';
import {
  bootServer,
  discoverHosts,
  docker as dockerCli,
  openstack,
  removeGlanceCacheTags,
  startAgent,
  uploadDockerImage,
  type AgentProcess,
} from '../test/support/lab.js';
import { labAdminToken, labRequest, type RestReply } from '../test/support/nova-api.js';
import { buildBigImage, row as printRow, settledLog } from './support.js';

const N = Number(process.argv[2] ?? 5);
const MB = Number(process.argv[3] ?? 200);
const HOST = 'nd-bench-actions';
const RUN = randomUUID().slice(0, 8);
// the lab NOVA_DOCKER_LAB names (zed, 2025.1, 2026.1): the same bench on every release
const NOVA = LAB_ENDPOINTS.nova;
const GLANCE = LAB_ENDPOINTS.glance;
const MICROVERSION = { 'OpenStack-API-Version': 'compute 2.51', 'X-OpenStack-Nova-API-Version': '2.51' };
const POLL_MS = 100;
const WAIT_MS = 600_000;
const LABEL = 'org.openstack.nova.bench-run';
const engine = new DockerClient({ socketPath: '/var/run/docker.sock' });

// ---------------------------------------------------------------- HTTP

function row(what: string, values: number[]): void {
  printRow(what, values, 46, 0);
}

let token = '';

async function call(
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<RestReply> {
  const r = await labRequest(method, url, { token, body, headers });
  if (r.status >= 400) throw new Error(`${method} ${url}: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  return r;
}

const nova = (method: string, path: string, body?: unknown) => call(method, `${NOVA}${path}`, body, MICROVERSION);

interface ServerView {
  status: string;
  'OS-EXT-STS:task_state': string | null;
}

async function server(id: string): Promise<ServerView> {
  return ((await nova('GET', `/servers/${id}`)).body as { server: ServerView }).server;
}

/** Polls `fn` every POLL_MS until it returns a value; what it throws ends the wait at once. */
async function until<T>(what: string, fn: () => Promise<T | undefined>): Promise<T> {
  const r = await pollUntil(
    async () => {
      try {
        const v = await fn();
        return v === undefined ? undefined : { v };
      } catch (err) {
        return { err };
      }
    },
    { timeoutMs: WAIT_MS, intervalMs: POLL_MS, what },
  );
  if ('err' in r) throw r.err;
  return r.v;
}

// ---------------------------------------------------------------- agent log

/** ms between the agent's "dispatching <method>" line of request `req` and its last line of that request. */
function agentShare(log: string, req: string, method: string): number | undefined {
  let start: number | undefined;
  let last: number | undefined;
  for (const line of log.split('\n')) {
    if (!line.includes(req)) continue;
    const t = logTime(line);
    if (t === undefined) continue;
    if (line.includes(`dispatching ${method}`)) start = t;
    else if (start !== undefined) last = t;
  }
  return start !== undefined && last !== undefined ? last - start : undefined;
}

// ---------------------------------------------------------------- setup

async function boot(image: string, tag: string, servers: string[]): Promise<string> {
  const s = await bootServer(image, HOST, `nd-bench-${tag}-${RUN}`, { timeoutMs: 600_000 });
  servers.push(s.id);
  if (s.status !== 'ACTIVE') throw new Error(`server ${s.id} is ${s.status}`);
  return s.id;
}

// ---------------------------------------------------------------- measurements

async function rebootOnce(id: string, agent: AgentProcess): Promise<{ ms: number; share?: number } | string> {
  const t0 = performance.now();
  const r = await nova('POST', `/servers/${id}/action`, { reboot: { type: 'SOFT' } });
  const req = r.headers.get('x-openstack-request-id') ?? '';
  await until('the reboot to finish', async () => {
    const s = await server(id);
    return s.status === 'ACTIVE' && !s['OS-EXT-STS:task_state'] ? true : undefined;
  });
  const ms = performance.now() - t0;
  const action = (await nova('GET', `/servers/${id}/os-instance-actions/${req}`)).body as {
    instanceAction: { events?: Array<{ event: string; result: string | null; traceback?: string | null }> };
  };
  const ev = action.instanceAction.events?.find((e) => e.event === 'compute_reboot_instance');
  if (ev?.result !== 'Success') return `reboot_instance did not succeed (${ev?.result ?? 'no event'})`;
  const share = await settledLog(agent, (log) => agentShare(log, req, 'reboot_instance'));
  return share === undefined ? { ms } : { ms, share };
}

async function snapshotOnce(
  id: string,
  agent: AgentProcess,
  images: string[],
): Promise<{ ms: number; share?: number }> {
  const t0 = performance.now();
  const r = await nova('POST', `/servers/${id}/action`, { createImage: { name: `nd-bench-snap-${RUN}` } });
  const req = r.headers.get('x-openstack-request-id') ?? '';
  const imageId = (r.body as { image_id: string }).image_id;
  images.push(imageId);
  await until('the snapshot to finish', async () => {
    const img = (await call('GET', `${GLANCE}/v2/images/${imageId}`)).body as { status: string };
    if (img.status === 'killed' || img.status === 'deleted') throw new Error(`snapshot ${imageId} is ${img.status}`);
    if (img.status !== 'active') return undefined;
    return (await server(id))['OS-EXT-STS:task_state'] ? undefined : true;
  });
  const ms = performance.now() - t0;
  const share = await settledLog(agent, (log) => agentShare(log, req, 'snapshot_instance'));
  await call('DELETE', `${GLANCE}/v2/images/${imageId}`);
  images.splice(images.indexOf(imageId), 1);
  return share === undefined ? { ms } : { ms, share };
}

/** `docker commit` + `docker save` to nowhere of the server's container (Engine API), image removed untimed. */
async function rawCommitSave(serverId: string): Promise<number> {
  const ref = `nd-bench/raw-snap-${RUN}`;
  const t0 = performance.now();
  await engine.commitContainer(`nova-${serverId}`, { repo: ref, tag: 'x', pause: true });
  const tar = await engine.saveImage(`${ref}:x`);
  await pipeline(
    tar,
    new Writable({
      write(_c, _e, cb) {
        cb();
      },
    }),
  );
  const ms = performance.now() - t0;
  await engine.removeImage(`${ref}:x`);
  return ms;
}

async function rawRestart(cid: string): Promise<number> {
  const t0 = performance.now();
  await engine.restartContainer(cid, 10);
  return performance.now() - t0;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  if (!Number.isInteger(N) || N < 1) throw new Error(`bad N: ${N}`);
  const servers: string[] = [];
  const images: string[] = [];
  const glanceImages: string[] = [];
  const bigRef = `nd-bench/actions-big-${RUN}:src`;
  let rawCid: string | undefined;
  const agent = await startAgent(HOST);
  try {
    await discoverHosts();
    token = (await labAdminToken()).token;
    const small = await uploadDockerImage(`nd-bench-actions-small-${RUN}`, 'busybox:latest');
    glanceImages.push(small);
    await buildBigImage(bigRef, MB);
    const big = await uploadDockerImage(`nd-bench-actions-big-${RUN}`, bigRef);
    glanceImages.push(big);
    await dockerCli(['rmi', bigRef]);
    const smallServer = await boot(small, 'small', servers);
    const bigServer = await boot(big, 'big', servers);
    const created = await engine.createContainer(`nd-bench-raw-${RUN}`, {
      Image: 'busybox:latest',
      Labels: { [LABEL]: RUN },
      HostConfig: { NetworkMode: 'none', Init: true },
    });
    rawCid = created.Id;
    await engine.startContainer(rawCid);
    console.log(`agent host ${HOST}, N=${N}, big image = busybox + ${MB} MB`);

    // soft reboot, interleaved with the raw restart
    const reboot: number[] = [];
    const rebootShare: number[] = [];
    const restart: number[] = [];
    let rebootNote: string | undefined;
    for (let i = 0; i < N && rebootNote === undefined; i++) {
      restart.push(await rawRestart(rawCid));
      const r = await rebootOnce(smallServer, agent);
      if (typeof r === 'string') rebootNote = r;
      else {
        reboot.push(r.ms);
        if (r.share !== undefined) rebootShare.push(r.share);
      }
    }
    console.log('soft reboot (busybox)');
    row('raw: Engine restart (10 s grace)', restart);
    if (rebootNote) console.log(`  Nova soft reboot: skipped: ${rebootNote}`);
    else {
      row('Nova: reboot SOFT → ACTIVE, no task', reboot);
      row("  of which the agent's share", rebootShare);
    }

    for (const [what, id] of [
      ['busybox', smallServer],
      [`busybox + ${MB} MB`, bigServer],
    ] as const) {
      const snap: number[] = [];
      const share: number[] = [];
      const raw: number[] = [];
      for (let i = 0; i < N; i++) {
        raw.push(await rawCommitSave(id));
        const r = await snapshotOnce(id, agent, images);
        snap.push(r.ms);
        if (r.share !== undefined) share.push(r.share);
      }
      console.log(`snapshot (${what})`);
      row('raw: commit + save > /dev/null', raw);
      row('Nova: createImage → image active, no task', snap);
      row("  of which the agent's share", share);
    }
  } finally {
    if (rawCid) await engine.removeContainer(rawCid, { force: true }).catch(() => undefined);
    for (const id of servers) await openstack(['server', 'delete', '--wait', id], 300_000).catch(() => undefined);
    for (const id of [...images, ...glanceImages]) {
      await openstack(['image', 'delete', id]).catch(() => undefined);
      await removeGlanceCacheTags(id);
    }
    await dockerCli(['rmi', bigRef]).catch(() => undefined);
    await agent.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
