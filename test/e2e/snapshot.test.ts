/**
 * End to end, `openstack server image create`: the real Nova API creates the
 * Glance record and casts snapshot_instance; our agent commits the container
 * and streams it into Glance; the snapshot is an active docker/raw image that
 * boots again on this host, with what the first server wrote to its disk.
 * `server backup create` takes the same path and rotates the older backups.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pollUntil } from '../../src/common/poll.js';
import { containerLabels, docker, hostContainers, openstackJson, useE2eLab, waitServer } from '../support/lab.js';

const HOST = 'nd-snapshot-1';

interface ImageShow {
  id: string;
  name: string;
  status: string;
  container_format: string | null;
  disk_format: string | null;
  size: number | null;
  properties?: Record<string, unknown>;
}

interface ActionDetail {
  action: string;
  events?: Array<{ event: string; result?: string | null }>;
}

describe('e2e: server image create (snapshot)', function () {
  this.timeout(900_000);
  const lab = useE2eLab(HOST);

  it('snapshots a running busybox server into an active docker image that boots again with its changes; backups rotate', async () => {
    const base = `nd-snap-base-${randomUUID().slice(0, 8)}`;
    await lab.uploadImage(base, 'busybox:latest');
    const first = await lab.boot(base, 'nd-snap-a');
    assert.equal(first.status, 'ACTIVE', JSON.stringify(first));
    const marker = `written-by-${first.id}`;
    await docker(['exec', `nova-${first.id}`, 'sh', '-c', `echo ${marker} > /snapshot-marker`]);

    const name = `nd-snap-${randomUUID().slice(0, 8)}`;
    const created = await openstackJson<ImageShow>(
      ['server', 'image', 'create', '--wait', '--name', name, first.id],
      600_000,
    );
    lab.cleanup.image(created.id);
    const img = await openstackJson<ImageShow>(['image', 'show', created.id]);
    assert.equal(img.status, 'active', JSON.stringify(img));
    assert.equal(img.container_format, 'docker');
    assert.equal(img.disk_format, 'raw');
    assert.ok((img.size ?? 0) > 100_000, `size ${String(img.size)}`);
    assert.equal(img.properties?.image_type, 'snapshot');
    assert.equal(img.properties?.instance_uuid, first.id);
    assert.equal(img.properties?.image_location, 'snapshot');

    // the server is back to no task, still running, and the action's event succeeded
    const after = await waitServer(first.id, (s) => !s['OS-EXT-STS:task_state'], 'task_state cleared');
    assert.equal(after.status, 'ACTIVE');
    assert.deepEqual(await hostContainers(HOST), [`nova-${first.id} running`]);
    const actions = await openstackJson<Array<{ Action: string; 'Request ID': string }>>([
      'server',
      'event',
      'list',
      first.id,
    ]);
    const snap = actions.find((a) => a.Action === 'createImage');
    assert.ok(snap, JSON.stringify(actions));
    const detail = await openstackJson<ActionDetail>([
      '--os-compute-api-version',
      '2.51',
      'server',
      'event',
      'show',
      first.id,
      snap['Request ID'],
    ]);
    assert.deepEqual(
      detail.events?.map((e) => [e.event, e.result]),
      [['compute_snapshot_instance', 'Success']],
    );
    // the committed intermediate image is gone from dockerd
    assert.equal(await docker(['images', '-q', `nova-snapshot/${created.id}`]), '');

    const second = await lab.boot(name, 'nd-snap-b');
    assert.equal(second.status, 'ACTIVE', JSON.stringify(second));
    assert.equal(second['OS-EXT-SRV-ATTR:host'], HOST);
    assert.equal(await docker(['exec', `nova-${second.id}`, 'cat', '/snapshot-marker']), marker);
    const labels = await containerLabels(second.id);
    assert.equal(labels?.['org.openstack.nova.instance-uuid'], second.id);
    assert.equal(labels?.['org.openstack.nova.image-id'], created.id);
    assert.deepEqual(
      (await hostContainers(HOST)).sort(),
      [`nova-${first.id} running`, `nova-${second.id} running`].sort(),
    );

    // backups of the first server (the same path with task image_backup): with rotation 1 only the newest stays
    const backups: string[] = [];
    for (const round of [1, 2]) {
      const b = await openstackJson<ImageShow>(
        [
          'server',
          'backup',
          'create',
          '--name',
          `${name}-bk${round}`,
          '--type',
          'daily',
          '--rotate',
          '1',
          '--wait',
          first.id,
        ],
        600_000,
      );
      lab.cleanup.image(b.id);
      backups.push(b.id);
      await waitServer(first.id, (s) => !s['OS-EXT-STS:task_state'], `backup ${round} done`);
    }
    const left = await pollUntil(
      async () => {
        const list = await openstackJson<Array<{ ID: string }>>([
          'image',
          'list',
          '--property',
          `instance_uuid=${first.id}`,
          '--property',
          'image_type=backup',
        ]);
        return list.length === 1 ? list : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 2000, what: 'the backup rotation' },
    );
    assert.equal(left[0]?.ID, backups[1]);
    const bk = await openstackJson<ImageShow>(['image', 'show', backups[1]!]);
    assert.equal(bk.status, 'active');
    assert.equal(bk.container_format, 'docker');
    assert.equal(bk.properties?.backup_type, 'daily');
  });
});
