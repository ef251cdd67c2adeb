/**
 * End to end against the lab's real Nova with the stock `openstack` CLI:
 * `server shelve` commits the container into the `<name>-shelved` Glance
 * image and (shelved_offload_time 0, Nova's default) offloads it: no
 * container, no allocations, no host. `server unshelve` spawns the same uuid
 * from that image on the host the scheduler picks (pinned here by an
 * availability zone holding only this agent's host), with what the
 * container had written, and the image is deleted. A shelved server deletes
 * cleanly, offloaded (the API's own delete; this one shelved while paused)
 * or not (a host with shelved_offload_time -1 keeps the stopped container
 * until the delete).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  consumerAllocations,
  containerLabels,
  discoverHosts,
  docker,
  e2eHost,
  hostContainers,
  openstack,
  openstackJson,
  providerUsage,
  useE2eLab,
  type LabServer,
} from '../support/lab.js';
import { instanceActions, waitServerApi } from '../support/nova-api.js';

const HOST = e2eHost('shelve-e2e-1');
/** A second agent that never offloads by itself. */
const HOST_KEEP = e2eHost('shelve-e2e-2');
const ZONE = `nd-shelve-az-${randomUUID().slice(0, 6)}`;

interface ImageRow {
  ID: string;
  Name: string;
  Status: string;
}

/** The milliseconds between the agent's log line matching `from` and the next one matching `to`, from `offset`. */
function agentSpan(log: string, offset: number, from: RegExp, to: RegExp): number {
  const lines = log.slice(offset).split('\n');
  const at = (i: number) => Date.parse((lines[i] ?? '').slice(0, 23).replace(' ', 'T'));
  const a = lines.findIndex((l) => from.test(l));
  const b = lines.findIndex((l, i) => i > a && to.test(l));
  assert.ok(a >= 0 && b > a, `agent log lines ${String(from)} … ${String(to)}`);
  return at(b) - at(a);
}

describe('e2e: server shelve, unshelve and delete of shelved servers', function () {
  this.timeout(900_000);
  const lab = useE2eLab(HOST);
  let base = '';

  /** The `<name>-shelved` images Nova's API created for server `id`. */
  async function shelvedImages(id: string): Promise<ImageRow[]> {
    return await openstackJson<ImageRow[]>(['image', 'list', '--property', `instance_uuid=${id}`]);
  }

  async function boot(host: string): Promise<LabServer> {
    return await lab.bootActive(base, 'nd-shelve', { host });
  }

  /** `server shelve`, then waits for `status` with no task; returns the wall-clock seconds. */
  async function shelve(id: string, status: string): Promise<number> {
    const t0 = Date.now();
    await openstack(['server', 'shelve', id]);
    await waitServerApi(id, (s) => s.status === status && !s['OS-EXT-STS:task_state'], status, 180_000);
    return (Date.now() - t0) / 1000;
  }

  before(async () => {
    base = await lab.uploadImage(`nd-shelve-base-${randomUUID().slice(0, 8)}`, 'busybox:latest');
  });

  let server: LabServer;
  let shelvedImage: ImageRow;
  const marker = `written-before-shelve-${randomUUID().slice(0, 8)}`;

  it('shelve: the container committed to Glance, then offloaded: SHELVED_OFFLOADED, no container, host freed', async () => {
    server = await boot(HOST);
    await docker(['exec', `nova-${server.id}`, 'sh', '-c', `echo ${marker} > /shelve-marker`]);
    assert.ok(Object.keys(await providerUsage(HOST)).length > 0, 'the server uses the host');

    const mark = lab.agent().log().length;
    const secs = await shelve(server.id, 'SHELVED_OFFLOADED');
    const agentMs = agentSpan(lab.agent().log(), mark, /dispatching shelve_instance/, /Shelve offloaded/);
    const shown = await openstackJson<LabServer>(['server', 'show', server.id]);
    assert.equal(shown['OS-EXT-STS:vm_state'], 'shelved_offloaded');
    assert.equal(shown['OS-EXT-SRV-ATTR:host'] ?? null, null, 'on no host');
    assert.deepEqual(await hostContainers(HOST), [], 'the container is gone');
    assert.deepEqual(await consumerAllocations(server.id), [], 'no allocations');
    assert.deepEqual(await providerUsage(HOST), {}, 'nothing used on the host');

    const shelved = await shelvedImages(server.id);
    assert.equal(shelved.length, 1, JSON.stringify(shelved));
    shelvedImage = shelved[0]!;
    lab.cleanup.image(shelvedImage.ID);
    assert.equal(shelvedImage.Name, `${String(server.name)}-shelved`);
    assert.equal(shelvedImage.Status, 'active');
    const img = await openstackJson<{ container_format: string; disk_format: string }>([
      'image',
      'show',
      shelvedImage.ID,
    ]);
    assert.deepEqual([img.container_format, img.disk_format], ['docker', 'raw']);

    const shelveAction = (await instanceActions(server.id)).find((a) => a.action === 'shelve');
    assert.deepEqual(
      shelveAction?.events?.map((e) => [e.event, e.result]),
      [['compute_shelve_instance', 'Success']],
    );
    process.stdout.write(
      `      shelve → SHELVED_OFFLOADED: agent ${(agentMs / 1000).toFixed(2)} s, CLI to state ${secs.toFixed(1)} s\n`,
    );
  });

  it('unshelve: the same uuid spawned from the shelved image on the host picked, ACTIVE; the image deleted', async () => {
    assert.ok(server && shelvedImage, 'the shelve test ran');
    // the scheduler may pick any host that is up: an availability zone of this agent's host alone pins it
    const aggregate = `nd-shelve-${randomUUID().slice(0, 6)}`;
    await openstack(['aggregate', 'create', '--zone', ZONE, aggregate]);
    lab.cleanup.defer(() => openstack(['aggregate', 'delete', aggregate]));
    await openstack(['aggregate', 'add', 'host', aggregate, HOST]);
    lab.cleanup.defer(() => openstack(['aggregate', 'remove', 'host', aggregate, HOST]));

    const mark = lab.agent().log().length;
    const t0 = Date.now();
    await openstack(['--os-compute-api-version', '2.77', 'server', 'unshelve', '--availability-zone', ZONE, server.id]);
    const after = await waitServerApi(
      server.id,
      (s) => s.status === 'ACTIVE' && !s['OS-EXT-STS:task_state'],
      'unshelved',
      180_000,
    );
    const secs = (Date.now() - t0) / 1000;
    const agentMs = agentSpan(lab.agent().log(), mark, /dispatching unshelve_instance/, /Unshelved from image/);
    assert.equal(after['OS-EXT-SRV-ATTR:host'], HOST);
    assert.deepEqual(await hostContainers(HOST), [`nova-${server.id} running`]);
    assert.equal(await docker(['exec', `nova-${server.id}`, 'cat', '/shelve-marker']), marker, 'the disk came back');
    const labels = await containerLabels(server.id);
    assert.equal(labels?.['org.openstack.nova.image-id'], shelvedImage.ID, 'spawned from the shelved image');
    assert.equal(labels?.['org.openstack.nova.instance-uuid'], server.id, 'the same uuid');

    const allocations = await consumerAllocations(server.id);
    assert.equal(allocations.length, 1, JSON.stringify(allocations));
    assert.ok(Object.keys(await providerUsage(HOST)).length > 0, 'the host is used again');
    assert.deepEqual(await shelvedImages(server.id), [], 'the shelved image is deleted');

    const unshelveAction = (await instanceActions(server.id)).find((a) => a.action === 'unshelve');
    const events = unshelveAction?.events?.map((e) => [e.event, e.result]) ?? [];
    assert.deepEqual(
      events.filter(([e]) => e === 'compute_unshelve_instance'),
      [['compute_unshelve_instance', 'Success']],
      JSON.stringify(unshelveAction),
    );
    process.stdout.write(
      `      unshelve → ACTIVE: agent ${(agentMs / 1000).toFixed(2)} s, CLI to state ${secs.toFixed(1)} s\n`,
    );
  });

  it('delete of a shelved server: offloaded (the API alone) and kept on its host (shelved_offload_time -1, unshelved and shelved again first)', async () => {
    // offloaded (shelved while paused, as Tempest's test_shelve_paused_server): nothing of it on any host;
    // the API deletes the shelved image and the records
    const offloaded = await boot(HOST);
    await openstack(['server', 'pause', offloaded.id]);
    await waitServerApi(offloaded.id, (s) => s.status === 'PAUSED' && !s['OS-EXT-STS:task_state'], 'paused');
    await shelve(offloaded.id, 'SHELVED_OFFLOADED');
    const left = (await hostContainers(HOST)).filter((c) => c.startsWith(`nova-${offloaded.id} `));
    assert.deepEqual(left, [], 'the paused container is gone');
    const [offImage] = await shelvedImages(offloaded.id);
    assert.ok(offImage);
    lab.cleanup.image(offImage.ID);
    await lab.deleteServer(offloaded.id);
    assert.deepEqual(await shelvedImages(offloaded.id), []);

    // kept: SHELVED with its stopped container and allocations; our terminate removes them
    await lab.start(HOST_KEEP, '\n[DEFAULT]\nshelved_offload_time = -1\n');
    await discoverHosts();
    const kept = await boot(HOST_KEEP);
    const secs = await shelve(kept.id, 'SHELVED');
    assert.deepEqual(await hostContainers(HOST_KEEP), [`nova-${kept.id} exited`]);
    // its unshelve is the conductor's start_instance: the same container runs again, the shelved image goes
    const [first] = await shelvedImages(kept.id);
    assert.ok(first);
    lab.cleanup.image(first.ID);
    await openstack(['server', 'unshelve', kept.id]);
    await waitServerApi(kept.id, (s) => s.status === 'ACTIVE' && !s['OS-EXT-STS:task_state'], 'unshelved', 120_000);
    assert.deepEqual(await hostContainers(HOST_KEEP), [`nova-${kept.id} running`]);
    assert.deepEqual(await shelvedImages(kept.id), [], 'the shelved image deleted by start_instance');
    await shelve(kept.id, 'SHELVED');
    assert.equal((await consumerAllocations(kept.id)).length, 1, 'a shelved server keeps its allocations');
    const [keptImage] = await shelvedImages(kept.id);
    assert.ok(keptImage);
    assert.equal(keptImage.Status, 'active');
    lab.cleanup.image(keptImage.ID);
    await lab.deleteServer(kept.id);
    assert.deepEqual(await hostContainers(HOST_KEEP), [], 'the stopped container is removed');
    assert.deepEqual(await consumerAllocations(kept.id), [], 'allocations removed');
    assert.deepEqual(await shelvedImages(kept.id), [], 'the shelved image deleted');
    process.stdout.write(`      shelve without offload → SHELVED: CLI to state ${secs.toFixed(1)} s\n`);
  });
});
