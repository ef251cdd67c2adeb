/**
 * End to end, dockerd coming up after the agent (ordinary at boot), without
 * touching the shared dockerd: the agent's `[docker] host_url` is a unix
 * socket where nothing listens yet. While it waits it must not look like a
 * compute host (no service record in Nova, no compute queue); once a proxy to
 * the real /var/run/docker.sock answers on that socket it registers within
 * seconds and a boot succeeds. Then the socket goes away again (dockerd
 * stopped after start): the agent stays up and works once it is back.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from '../../src/common/poll.js';
import { rabbitmqctl } from '../support/broker.js';
import {
  type AgentProcess,
  agentServing,
  bootServer,
  discoverHosts,
  hostContainers,
  openstack,
  openstackJson,
  removeGlanceCacheTags,
  spawnAgent,
  uploadDockerImage,
  waitServer,
} from '../support/lab.js';

const HOST = `i15-wait-${randomUUID().slice(0, 6)}`;
const DOCKERD = '/var/run/docker.sock';

/** A byte-for-byte proxy from `path` to the real dockerd socket; close() drops every connection. */
class DockerProxy {
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;

  constructor(readonly path: string) {}

  async open(): Promise<void> {
    const server = createServer((client) => {
      const upstream = connect(DOCKERD);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, resolve);
    });
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise((r) => server.close(r));
    rmSync(this.path, { force: true });
  }
}

async function computeServices(): Promise<Array<{ ID: string; Host: string; State: string }>> {
  return await openstackJson<Array<{ ID: string; Host: string; State: string }>>([
    'compute',
    'service',
    'list',
    '--service',
    'nova-compute',
    '--host',
    HOST,
  ]);
}

async function computeQueues(): Promise<string[]> {
  const out = await rabbitmqctl('-q', 'list_queues', 'name');
  return out.split('\n').filter((q) => q.startsWith(`compute.${HOST}`));
}

describe('e2e: the agent waits for a dockerd that is not there yet', function () {
  this.timeout(900_000);
  const dir = mkdtempSync(join(tmpdir(), 'i15-dockerd-'));
  const proxy = new DockerProxy(join(dir, 'docker.sock'));
  let agent: AgentProcess | undefined;
  let imageId: string | undefined;
  let serverId: string | undefined;

  after(async () => {
    // the agent must see dockerd to clean up after itself
    await proxy.open().catch(() => undefined);
    if (serverId) await openstack(['server', 'delete', '--wait', serverId], 180_000).catch(() => undefined);
    if (imageId) {
      await openstack(['image', 'delete', imageId]).catch(() => undefined);
      await removeGlanceCacheTags(imageId);
    }
    const code = await agent?.stop();
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
    // a host name of this run only: its service record (and with it the compute node and provider) and
    // its compute queue (kept across the agent's restarts) go too
    for (const s of await computeServices().catch(() => [])) {
      await openstack(['compute', 'service', 'delete', s.ID]).catch(() => undefined);
    }
    await rabbitmqctl('-q', 'delete_queue', `compute.${HOST}`).catch(() => undefined);
    assert.equal(code, 0, `the agent exits 0 on SIGTERM:\n${agent?.log().slice(-4000) ?? ''}`);
    assert.deepEqual(await hostContainers(HOST), [], `no container left for ${HOST}`);
  });

  it('waits without registering, serves within seconds of dockerd answering, boots; survives dockerd going away', async () => {
    agent = spawnAgent(HOST, `[docker]\nhost_url = unix://${proxy.path}\n`);
    const a = agent;
    // three tries at least (1 s, 2 s, then 4 s pauses): the wait is under way, not just begun
    await pollUntil(() => (/next try in 4000 ms/.test(a.log()) ? true : undefined), {
      timeoutMs: 120_000,
      intervalMs: 200,
      what: `the agent to wait for dockerd (log: ${a.log().slice(-2000)})`,
    });
    assert.equal(a.proc.exitCode, null, 'still running: waiting, not given up');
    const warnings = a.log().match(/WARNING nova_docker\.compute\.manager \[-\] Waiting for the hypervisor \(.*\)/g);
    assert.equal(warnings?.length, 1, `one WARNING for the whole wait:\n${a.log()}`);
    assert.match(warnings[0] ?? '', /no answer: ENOENT/);
    assert.doesNotMatch(a.log(), /RPC server consuming|Created the nova-compute service record/);
    assert.deepEqual(await computeServices(), [], 'no service record in Nova while it cannot serve');
    assert.deepEqual(await computeQueues(), [], 'no compute queue while it cannot serve');

    await proxy.open();
    const answered = Date.now();
    await agentServing(a, 120_000);
    const servingMs = Date.now() - answered;
    const waited = /The hypervisor answers after (\d+\.\d) s of waiting/.exec(a.log())?.[1];
    assert.ok(waited, 'one INFO line when the wait ends');
    // the note needs the number: printed, never asserted (timing)
    console.log(`      dockerd answering → agent serving: ${servingMs} ms (agent waited ${waited} s for dockerd)`);

    await discoverHosts();
    await pollUntil(async () => ((await computeServices()).some((s) => s.State === 'up') ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 2000,
      what: `compute service ${HOST} up`,
    });
    assert.deepEqual(await computeQueues(), [`compute.${HOST}`]);

    const image = `i15-wait-${randomUUID().slice(0, 8)}`;
    imageId = await uploadDockerImage(image, 'busybox:latest');
    const created = await bootServer(image, HOST, `i15-wait-${randomUUID().slice(0, 6)}`, { wait: false });
    serverId = created.id;
    const booted = await waitServer(created.id, (s) => s.status !== 'BUILD', 'leave BUILD', 240_000);
    assert.equal(booted.status, 'ACTIVE', JSON.stringify(booted.fault));
    assert.equal(booted['OS-EXT-SRV-ATTR:host'], HOST);
    assert.deepEqual(await hostContainers(HOST), [`nova-${created.id} running`]);

    // dockerd goes away after start: the agent stays up (its event stream reconnects), and works once it is back
    await proxy.close();
    await pollUntil(() => (/docker event stream lost/.test(a.log()) ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 200,
      what: 'the agent to notice dockerd gone',
    });
    assert.equal(a.proc.exitCode, null, 'a dockerd gone after start does not stop the agent');
    await proxy.open();
    await openstack(['server', 'delete', '--wait', created.id], 180_000);
    serverId = undefined;
    assert.deepEqual(await hostContainers(HOST), []);
    assert.ok(
      (await computeServices()).some((s) => s.State === 'up'),
      'still up',
    );
  });
});
