/**
 * End to end against the lab's real Nova Zed control plane with the stock
 * CLIs: our agent is the compute host; boot, list, delete; bad images end in
 * ERROR with a fault; nothing is left behind.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  consumerAllocations,
  createGlanceImage,
  docker,
  nova,
  stopFakeCompute,
  useE2eLab,
  waitServer,
  type LabServer,
} from '../support/lab.js';

const HOST = 'nova-docker-e2e';

async function dockerPs(uuid: string): Promise<string> {
  return await docker([
    'ps',
    '-a',
    '--filter',
    `name=^/nova-${uuid}$`,
    '--format',
    '{{.Names}} {{.State}} {{.Command}}',
  ]);
}

async function waitStatus(id: string, want: string[], timeoutMs = 120_000): Promise<LabServer> {
  return await waitServer(id, (s) => want.includes(s.status), `reach ${want.join('/')}`, timeoutMs);
}

describe('e2e: the real Nova schedules onto nova-docker', function () {
  this.timeout(600_000);
  before(stopFakeCompute);
  // a short power-state sync so a container stopped behind Nova's back shows quickly
  const lab = useE2eLab(HOST, '\n[DEFAULT]\nsync_power_state_interval = 2\n');

  it('boots a Glance docker image to ACTIVE, runs its command, lists it, deletes it cleanly', async () => {
    const name = `nd-busybox-${randomUUID().slice(0, 8)}`;
    await lab.uploadImage(name, 'busybox:latest');
    const server = await lab.bootActive(name, 'nd-e2e');
    const ps = await dockerPs(server.id);
    assert.match(ps, new RegExp(`^nova-${server.id} running .*sleep 3600`), ps);
    const list = await nova(['list']);
    assert.match(list, new RegExp(`${server.id} .*\\| ACTIVE .*\\| Running`));
    assert.equal((await consumerAllocations(server.id)).length, 1);

    await lab.deleteServer(server.id);
    assert.equal(await dockerPs(server.id), '', 'container removed');
    assert.deepEqual(await consumerAllocations(server.id), [], 'placement allocations removed');
  });

  it('an image whose command exits at once ends in ERROR with a fault, and can be deleted', async () => {
    const name = `nd-exit1-${randomUUID().slice(0, 8)}`;
    await lab.uploadImage(name, 'lab/exit1:latest');
    const { id } = await lab.boot(name, 'nd-e2e-bad', { wait: false });
    const s = await waitStatus(id, ['ERROR', 'ACTIVE']);
    assert.equal(s.status, 'ERROR');
    assert.match(String(s.fault?.message), /exit/i);
    assert.equal(await dockerPs(id), '', 'no container left behind');
    await lab.deleteServer(id);
  });

  it('a container stopped outside Nova shows SHUTOFF after the power-state sync', async () => {
    const name = `nd-busybox-${randomUUID().slice(0, 8)}`;
    await lab.uploadImage(name, 'busybox:latest');
    const server = await lab.boot(name, 'nd-e2e-sync');
    assert.equal(server.status, 'ACTIVE');
    await docker(['stop', '-t', '1', `nova-${server.id}`]);
    const s = await waitStatus(server.id, ['SHUTOFF'], 60_000);
    // the CLI's JSON gives the integer, its table the name
    assert.ok([4, 'Shutdown'].includes(s['OS-EXT-STS:power_state'] ?? ''), String(s['OS-EXT-STS:power_state']));
    await lab.deleteServer(server.id);
    assert.equal(await dockerPs(server.id), '', 'container removed');
  });

  it('a corrupt tarball ends in ERROR with a fault naming the image problem', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nd-bad-'));
    const file = join(dir, 'bad.tar');
    writeFileSync(file, randomBytes(64 * 1024));
    const name = `nd-corrupt-${randomUUID().slice(0, 8)}`;
    try {
      lab.cleanup.image(await createGlanceImage(name, file));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const { id } = await lab.boot(name, 'nd-e2e-corrupt', { wait: false });
    const s = await waitStatus(id, ['ERROR', 'ACTIVE']);
    assert.equal(s.status, 'ERROR');
    assert.match(String(s.fault?.message), /image|tar/i);
    assert.equal(await dockerPs(id), '', 'no container left behind');
    await lab.deleteServer(id);
  });
});
