/**
 * End to end against the lab's real Nova Zed control plane with the stock
 * CLIs: our agent is the compute host; boot, list, delete; bad images end in
 * ERROR with a fault; nothing is left behind.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pollUntil } from '../../src/common/poll.js';
import { execFileP, SYSTEM_ENV } from '../support/broker.js';
import {
  discoverHosts,
  dockerSave,
  nova,
  openstack,
  openstackJson,
  startAgent,
  stopFakeCompute,
  type AgentProcess,
} from '../support/lab.js';

const HOST = 'nova-docker-e2e';

interface Server {
  id: string;
  status: string;
  'OS-EXT-STS:power_state'?: string | number;
  'OS-EXT-SRV-ATTR:host'?: string | null;
  fault?: { message?: string } | null;
}

async function dockerPs(uuid: string): Promise<string> {
  const { stdout } = await execFileP(
    'docker',
    ['ps', '-a', '--filter', `name=^/nova-${uuid}$`, '--format', '{{.Names}} {{.State}} {{.Command}}'],
    { env: SYSTEM_ENV },
  );
  return stdout.trim();
}

async function allocations(uuid: string): Promise<Record<string, unknown>> {
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
  ]).catch(() => '[]');
  const rows = JSON.parse(out) as unknown[];
  return { count: rows.length };
}

async function uploadImage(name: string, dockerImage: string): Promise<string> {
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
      name,
    ]);
    return img.id;
  } finally {
    rmSync(dirname(tar), { recursive: true, force: true });
  }
}

async function waitStatus(id: string, want: string[], timeoutMs = 120_000): Promise<Server> {
  return await pollUntil(
    async () => {
      const s = await openstackJson<Server>(['server', 'show', id]);
      return want.includes(s.status) ? s : undefined;
    },
    { timeoutMs, intervalMs: 1000, what: `server ${id} to reach ${want.join('/')}` },
  );
}

async function deleteServer(id: string): Promise<void> {
  await openstack(['server', 'delete', '--wait', id], 180_000);
}

describe('e2e: the real Nova schedules onto nova-docker', function () {
  this.timeout(600_000);
  let agent: AgentProcess;
  const images: string[] = [];
  const servers: string[] = [];

  before(async () => {
    await stopFakeCompute();
    // a short power-state sync so a container stopped behind Nova's back shows quickly
    agent = await startAgent(HOST, '\n[DEFAULT]\nsync_power_state_interval = 2\n');
    await discoverHosts();
  });

  after(async () => {
    for (const id of servers) await deleteServer(id).catch(() => undefined);
    for (const id of images) await openstack(['image', 'delete', id]).catch(() => undefined);
    const code = await agent?.stop();
    assert.equal(code, 0, 'the agent exits 0 on SIGTERM');
  });

  it('boots a Glance docker image to ACTIVE, runs its command, lists it, deletes it cleanly', async () => {
    const name = `nd-busybox-${randomUUID().slice(0, 8)}`;
    images.push(await uploadImage(name, 'busybox:latest'));
    const server = await openstackJson<Server>([
      'server',
      'create',
      '--image',
      name,
      '--flavor',
      'm1.tiny',
      '--nic',
      'none',
      '--availability-zone',
      `nova:${HOST}`,
      '--wait',
      `nd-e2e-${randomUUID().slice(0, 6)}`,
    ]);
    servers.push(server.id);
    assert.equal(server.status, 'ACTIVE', JSON.stringify(server));
    assert.equal(server['OS-EXT-SRV-ATTR:host'], HOST);
    const ps = await dockerPs(server.id);
    assert.match(ps, new RegExp(`^nova-${server.id} running .*sleep 3600`), ps);
    const list = await nova(['list']);
    assert.match(list, new RegExp(`${server.id} .*\\| ACTIVE .*\\| Running`));
    assert.equal((await allocations(server.id)).count, 1);

    await deleteServer(server.id);
    servers.splice(servers.indexOf(server.id), 1);
    assert.equal(await dockerPs(server.id), '', 'container removed');
    assert.equal((await allocations(server.id)).count, 0, 'placement allocations removed');
  });

  it('an image whose command exits at once ends in ERROR with a fault, and can be deleted', async () => {
    const name = `nd-exit1-${randomUUID().slice(0, 8)}`;
    images.push(await uploadImage(name, 'lab/exit1:latest'));
    await openstack([
      'server',
      'create',
      '--image',
      name,
      '--flavor',
      'm1.tiny',
      '--nic',
      'none',
      '--availability-zone',
      `nova:${HOST}`,
      `nd-e2e-bad-${randomUUID().slice(0, 6)}`,
      '-f',
      'json',
    ]).then((out) => servers.push((JSON.parse(out) as Server).id));
    const id = servers[servers.length - 1]!;
    const s = await waitStatus(id, ['ERROR', 'ACTIVE']);
    assert.equal(s.status, 'ERROR');
    assert.match(String(s.fault?.message), /exit/i);
    assert.equal(await dockerPs(id), '', 'no container left behind');
    await deleteServer(id);
    servers.splice(servers.indexOf(id), 1);
  });

  it('a container stopped outside Nova shows SHUTOFF after the power-state sync', async () => {
    const name = `nd-busybox-${randomUUID().slice(0, 8)}`;
    images.push(await uploadImage(name, 'busybox:latest'));
    const server = await openstackJson<Server>([
      'server',
      'create',
      '--image',
      name,
      '--flavor',
      'm1.tiny',
      '--nic',
      'none',
      '--availability-zone',
      `nova:${HOST}`,
      '--wait',
      `nd-e2e-sync-${randomUUID().slice(0, 6)}`,
    ]);
    servers.push(server.id);
    assert.equal(server.status, 'ACTIVE');
    await execFileP('docker', ['stop', '-t', '1', `nova-${server.id}`], { env: SYSTEM_ENV });
    const s = await waitStatus(server.id, ['SHUTOFF'], 60_000);
    // the CLI's JSON gives the integer, its table the name
    assert.ok([4, 'Shutdown'].includes(s['OS-EXT-STS:power_state'] ?? ''), String(s['OS-EXT-STS:power_state']));
    await deleteServer(server.id);
    servers.splice(servers.indexOf(server.id), 1);
    assert.equal(await dockerPs(server.id), '', 'container removed');
  });

  it('a corrupt tarball ends in ERROR with a fault naming the image problem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nd-bad-'));
    const file = join(dir, 'bad.tar');
    writeFileSync(file, randomBytes(64 * 1024));
    const name = `nd-corrupt-${randomUUID().slice(0, 8)}`;
    try {
      const img = await openstackJson<{ id: string }>([
        'image',
        'create',
        '--container-format',
        'docker',
        '--disk-format',
        'raw',
        '--file',
        file,
        name,
      ]);
      images.push(img.id);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const out = await openstack([
      'server',
      'create',
      '--image',
      name,
      '--flavor',
      'm1.tiny',
      '--nic',
      'none',
      '--availability-zone',
      `nova:${HOST}`,
      `nd-e2e-corrupt-${randomUUID().slice(0, 6)}`,
      '-f',
      'json',
    ]);
    const id = (JSON.parse(out) as Server).id;
    servers.push(id);
    const s = await waitStatus(id, ['ERROR', 'ACTIVE']);
    assert.equal(s.status, 'ERROR');
    assert.match(String(s.fault?.message), /image|tar/i);
    assert.equal(await dockerPs(id), '', 'no container left behind');
    await deleteServer(id);
    servers.splice(servers.indexOf(id), 1);
  });
});
