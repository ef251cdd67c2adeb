/**
 * End to end, many hosts: two agents with different `host` on this one
 * machine share one dockerd. The real Nova schedules onto each; each container
 * carries its host's label, each agent counts and touches only its own, and
 * deleting leaves no container and no Placement allocation.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pollUntil } from '../../src/common/poll.js';
import {
  consumerAllocations,
  containerLabels,
  e2eHost,
  hostContainers,
  openstackJson,
  useE2eLab,
  waitServer,
  type LabServer,
} from '../support/lab.js';
import { novaGet } from '../support/nova-api.js';

const HOST_A = e2eHost('nova-docker-e2e-a');
const HOST_B = e2eHost('nova-docker-e2e-b');
const HOSTS = [HOST_A, HOST_B] as const;

interface Hypervisor {
  'Hypervisor Hostname': string;
  State: string;
}

interface HypervisorShow {
  id: number | string;
  hypervisor_hostname: string;
  state: string;
  vcpus_used: number;
  memory_mb_used: number;
}

async function hypervisorShow(name: string): Promise<HypervisorShow> {
  return await openstackJson<HypervisorShow>(['hypervisor', 'show', name]);
}

/** `GET /os-hypervisors/detail` (microversion 2.37): the hypervisor of each host, as Nova's API answers. */
async function hypervisorDetail(host: string): Promise<Record<string, unknown>> {
  const { hypervisors } = await novaGet<{ hypervisors: Array<Record<string, unknown>> }>('/os-hypervisors/detail');
  const h = hypervisors.find((x) => x.hypervisor_hostname === host);
  assert.ok(h, `hypervisor ${host} in /os-hypervisors/detail`);
  return h;
}

async function providerUuid(name: string): Promise<string> {
  const rows = await openstackJson<Array<{ uuid: string; name: string }>>([
    'resource',
    'provider',
    'list',
    '--name',
    name,
  ]);
  assert.equal(rows.length, 1, `one resource provider named ${name}`);
  return rows[0]!.uuid;
}

describe('e2e: two nova-docker hosts on one dockerd', function () {
  this.timeout(900_000);
  const lab = useE2eLab(HOSTS);

  it('the hypervisor list shows both nodes up, each with its own resource provider', async () => {
    await pollUntil(
      async () => {
        const list = await openstackJson<Hypervisor[]>(['hypervisor', 'list']);
        const states = HOSTS.map((h) => list.find((x) => x['Hypervisor Hostname'] === h)?.State);
        return states.every((s) => s === 'up') ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 2000, what: `hypervisors ${HOSTS.join(', ')} up` },
    );
    const [a, b] = await Promise.all(HOSTS.map((h) => providerUuid(h)));
    assert.notEqual(a, b);
  });

  it('boots one instance on each host; each lands, is labelled and counted on its own host only; deletes clean', async () => {
    const image = `nd-hosts-${randomUUID().slice(0, 8)}`;
    await lab.uploadImage(image, 'busybox:latest');
    const baseline = new Map<string, HypervisorShow>();
    const baselineVms = new Map<string, number>();
    for (const h of HOSTS) {
      baseline.set(h, await hypervisorShow(h));
      // Nova's API schema (and Tempest's check of it) wants an integer: nova-compute never leaves it NULL
      const vms = (await hypervisorDetail(h)).running_vms;
      assert.ok(Number.isInteger(vms), `${h} running_vms: ${String(vms)}`);
      baselineVms.set(h, vms as number);
    }

    // both boots at once: two hosts, two agents, one dockerd
    const booted = await Promise.all(
      HOSTS.map(async (host) => [host, await lab.boot(image, `nd-e2e-${host.slice(-1)}`, { host })] as const),
    );
    const byHost = new Map<string, LabServer>(booted);

    for (const host of HOSTS) {
      const s = byHost.get(host)!;
      assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
      assert.equal(s['OS-EXT-SRV-ATTR:host'], host);
      assert.equal(s['OS-EXT-SRV-ATTR:hypervisor_hostname'], host);
      // exactly one container with this host's label, and it is this server's
      assert.deepEqual(await hostContainers(host), [`nova-${s.id} running`], `containers of ${host}`);
      const labels = await containerLabels(s.id);
      assert.equal(labels?.['org.openstack.nova.host'], host);
      assert.equal(labels?.['org.openstack.nova.instance-uuid'], s.id);
      assert.equal(labels?.['org.openstack.nova.node'], host);
      // Placement: the allocation is against this host's provider
      const allocs = await consumerAllocations(s.id);
      assert.deepEqual(
        allocs.map((r) => r.resource_provider),
        [await providerUuid(host)],
        `allocations of ${s.id}`,
      );
    }

    // Each agent counts only its own container: a restart runs update_available_resource at once,
    // so the ComputeNode usage is re-read from the driver (one container of m1.tiny each, not two).
    for (const host of HOSTS) {
      await lab.stop(host);
      await lab.start(host);
    }
    for (const host of HOSTS) {
      const before = baseline.get(host)!;
      const now = await hypervisorShow(host);
      assert.equal(now.state, 'up');
      assert.equal(now.memory_mb_used - before.memory_mb_used, 512, `${host} memory_mb_used: ${JSON.stringify(now)}`);
      assert.equal(now.vcpus_used - before.vcpus_used, 1, `${host} vcpus_used: ${JSON.stringify(now)}`);
      const vms = (await hypervisorDetail(host)).running_vms;
      assert.equal(vms, baselineVms.get(host)! + 1, `${host} running_vms counts its one instance`);
    }
    // the restarts left both containers alone and each server ACTIVE on its host
    for (const host of HOSTS) {
      const s = byHost.get(host)!;
      assert.deepEqual(await hostContainers(host), [`nova-${s.id} running`]);
      const shown = await openstackJson<LabServer>(['server', 'show', s.id]);
      assert.equal(shown.status, 'ACTIVE');
      assert.equal(shown['OS-EXT-SRV-ATTR:host'], host);
    }

    // delete A first: B's container is untouched by A's agent
    const [a, b] = [byHost.get(HOST_A)!, byHost.get(HOST_B)!];
    await lab.deleteServer(a.id);
    assert.deepEqual(await hostContainers(HOST_A), []);
    assert.deepEqual(await hostContainers(HOST_B), [`nova-${b.id} running`]);
    assert.equal((await waitServer(b.id, () => true, 'show')).status, 'ACTIVE');
    await lab.deleteServer(b.id);

    for (const host of HOSTS) assert.deepEqual(await hostContainers(host), [], `no container left for ${host}`);
    for (const s of [a, b]) assert.deepEqual(await consumerAllocations(s.id), [], `allocations of ${s.id} gone`);
  });
});
