/**
 * End to end against the lab's real Nova Zed with the stock CLI: rebuild to
 * another image, resize on the same host (allow_resize_to_same_host) with
 * confirm and with revert, checking the container's Engine limits, the
 * Placement allocations of the instance and of the migration, and the
 * migration records Nova keeps.
 *
 * The flavors require a custom trait that only this test's compute node
 * carries, so the scheduler cannot pick another agent running in the lab.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pollUntil } from '../../src/common/poll.js';
import {
  consumerAllocations,
  docker,
  openstack,
  openstackJson,
  providerUuid,
  setProviderTraits,
  useE2eLab,
  waitServer,
  type LabServer,
} from '../support/lab.js';

const HOST = 'nd-resize-1';
const SUFFIX = randomUUID().slice(0, 8);
const TRAIT = `CUSTOM_ND_RESIZE_${SUFFIX.toUpperCase()}`;
const SMALL = { name: `nd-rs-small-${SUFFIX}`, ram: 128, vcpus: 1 };
const BIG = { name: `nd-rs-big-${SUFFIX}`, ram: 256, vcpus: 2 };
const MiB = 1024 * 1024;

interface MigrationRow {
  UUID?: string;
  Status: string;
  'Source Compute'?: string;
  'Dest Compute'?: string;
  Type?: string;
}

/** Engine limits of the instance's container: [Memory, NanoCpus, CpuShares]. */
async function limits(uuid: string): Promise<number[]> {
  const out = await docker([
    'inspect',
    '-f',
    '{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}}',
    `nova-${uuid}`,
  ]);
  return out.split(' ').map(Number);
}

async function containerState(uuid: string): Promise<string> {
  return await docker(['inspect', '-f', '{{.State.Status}}', `nova-${uuid}`]);
}

async function migrations(server: string): Promise<MigrationRow[]> {
  return await openstackJson<MigrationRow[]>([
    '--os-compute-api-version',
    '2.59',
    'server',
    'migration',
    'list',
    '--server',
    server,
  ]);
}

describe('e2e: rebuild and resize (confirm, revert) on the real Nova', function () {
  this.timeout(1_200_000);
  const lab = useE2eLab(HOST, '\n[docker]\ncpu_hard_limit = true\n');
  let rp = '';
  /** The busybox image every test boots first. */
  let busybox = '';

  before(async () => {
    rp = await providerUuid(HOST);
    await openstack(['--os-placement-api-version', '1.6', 'trait', 'create', TRAIT]);
    lab.cleanup.defer(() => openstack(['--os-placement-api-version', '1.6', 'trait', 'delete', TRAIT]));
    await setProviderTraits(rp, (t) => [...t, TRAIT]);
    lab.cleanup.defer(() => setProviderTraits(rp, (t) => t.filter((x) => x !== TRAIT)));
    for (const f of [SMALL, BIG]) {
      await openstack([
        'flavor',
        'create',
        '--ram',
        String(f.ram),
        '--vcpus',
        String(f.vcpus),
        '--disk',
        '1',
        '--property',
        `trait:${TRAIT}=required`,
        f.name,
      ]);
      lab.cleanup.defer(() => openstack(['flavor', 'delete', f.name]));
    }
    busybox = await lab.uploadImage(`nd-mv-busybox-${SUFFIX}`, 'busybox:latest');
  });

  async function boot(image: string, flavor: string): Promise<LabServer> {
    const s = await lab.boot(image, 'nd-move', { flavor, wait: false });
    return await waitServer(s.id, (x) => x.status === 'ACTIVE' || x.status === 'ERROR', 'boot', 180_000);
  }

  it('rebuilds to another image: ACTIVE, the same container name from the new image, image label updated', async () => {
    const httpd = await lab.uploadImage(`nd-mv-httpd-${SUFFIX}`, 'lab/httpd:latest');
    const s = await boot(busybox, SMALL.name);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
    const before = await docker(['inspect', '-f', '{{.Id}} {{.Config.Image}}', `nova-${s.id}`]);

    const t0 = Date.now();
    await openstack(['server', 'rebuild', '--image', httpd, s.id]);
    const after = await waitServer(
      s.id,
      (x) => (x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state']) || x.status === 'ERROR',
      'rebuild',
    );
    const ms = Date.now() - t0;
    assert.equal(after.status, 'ACTIVE', JSON.stringify(after));
    const shown = await openstackJson<{ image: string }>(['server', 'show', s.id]);
    assert.match(shown.image, new RegExp(httpd), 'image_ref is the new image');
    const now = await docker([
      'inspect',
      '-f',
      '{{.Id}} {{.Config.Image}} {{index .Config.Labels "org.openstack.nova.image-id"}} {{index .Config.Labels "org.openstack.nova.host"}} {{.State.Status}}',
      `nova-${s.id}`,
    ]);
    const [id, , label, host, state] = now.split(' ');
    assert.notEqual(id, before.split(' ')[0], 'a new container');
    assert.equal(label, httpd, 'image label updated');
    assert.equal(host, HOST);
    assert.equal(state, 'running');
    const actions = await openstackJson<Array<{ Action: string }>>(['server', 'event', 'list', s.id]);
    assert.ok(
      actions.some((a) => a.Action === 'rebuild'),
      JSON.stringify(actions),
    );
    console.log(`      rebuild → ACTIVE in ${ms} ms (CLI polling at 1 s)`);
  });

  it('resizes up (VERIFY_RESIZE, new limits), confirms (new flavor only in Placement), resizes down and reverts, deletes', async () => {
    const s = await boot(busybox, SMALL.name);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
    assert.deepEqual(await limits(s.id), [SMALL.ram * MiB, SMALL.vcpus * 1e9, SMALL.vcpus * 1024]);

    const t0 = Date.now();
    await openstack(['server', 'resize', '--flavor', BIG.name, s.id]);
    const v = await waitServer(
      s.id,
      (x) => ['VERIFY_RESIZE', 'ERROR', 'ACTIVE'].includes(x.status) && !x['OS-EXT-STS:task_state'],
      'resize',
    );
    const ms = Date.now() - t0;
    assert.equal(v.status, 'VERIFY_RESIZE', JSON.stringify(v));
    assert.equal(v['OS-EXT-SRV-ATTR:host'], HOST);
    assert.deepEqual(await limits(s.id), [BIG.ram * MiB, BIG.vcpus * 1e9, BIG.vcpus * 1024], 'new limits');
    assert.equal(await containerState(s.id), 'running');
    const [mig] = await migrations(s.id);
    assert.ok(mig?.UUID, JSON.stringify(mig));
    assert.equal(mig.Status, 'finished');
    // during VERIFY_RESIZE: the instance holds the new flavor, the migration the old one, on our provider
    const inst = await consumerAllocations(s.id);
    assert.equal(inst.length, 1);
    assert.equal(inst[0]?.resource_provider, rp);
    assert.equal(inst[0]?.resources.MEMORY_MB, BIG.ram);
    const held = await consumerAllocations(mig.UUID);
    assert.equal(held[0]?.resources.MEMORY_MB, SMALL.ram, 'the migration holds the old flavor');

    await openstack(['server', 'resize', 'confirm', s.id]);
    const c = await waitServer(s.id, (x) => x.status !== 'VERIFY_RESIZE' && !x['OS-EXT-STS:task_state'], 'confirm');
    assert.equal(c.status, 'ACTIVE', JSON.stringify(c));
    await pollUntil(async () => ((await migrations(s.id))[0]?.Status === 'confirmed' ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 500,
      what: 'the migration to be confirmed',
    });
    const afterInst = await consumerAllocations(s.id);
    assert.deepEqual(
      afterInst.map((r) => [r.resource_provider, r.resources.MEMORY_MB, r.resources.VCPU]),
      [[rp, BIG.ram, BIG.vcpus]],
    );
    assert.deepEqual(await consumerAllocations(mig.UUID), [], 'no leftover migration consumer');
    const flavor = await openstackJson<{ flavor: string | Record<string, unknown> }>(['server', 'show', s.id]);
    assert.match(JSON.stringify(flavor.flavor), new RegExp(BIG.name));
    console.log(`      resize → VERIFY_RESIZE in ${ms} ms (CLI polling at 1 s)`);

    // resize again (back to the small flavor) and revert: the big flavor's limits and allocations stay
    await openstack(['server', 'resize', '--flavor', SMALL.name, s.id]);
    const v2 = await waitServer(
      s.id,
      (x) => ['VERIFY_RESIZE', 'ERROR', 'ACTIVE'].includes(x.status) && !x['OS-EXT-STS:task_state'],
      'second resize',
    );
    assert.equal(v2.status, 'VERIFY_RESIZE', JSON.stringify(v2));
    assert.deepEqual(await limits(s.id), [SMALL.ram * MiB, SMALL.vcpus * 1e9, SMALL.vcpus * 1024]);
    const mig2 = (await migrations(s.id)).find((m) => m.UUID !== mig.UUID);
    assert.ok(mig2?.UUID, 'a second migration');
    const t1 = Date.now();
    await openstack(['server', 'resize', 'revert', s.id]);
    const r = await waitServer(
      s.id,
      (x) => x.status !== 'VERIFY_RESIZE' && x.status !== 'REVERT_RESIZE' && !x['OS-EXT-STS:task_state'],
      'revert',
    );
    const revertMs = Date.now() - t1;
    assert.equal(r.status, 'ACTIVE', JSON.stringify(r));
    assert.deepEqual(await limits(s.id), [BIG.ram * MiB, BIG.vcpus * 1e9, BIG.vcpus * 1024], 'limits of before');
    assert.equal(await containerState(s.id), 'running');
    assert.equal((await migrations(s.id)).find((m) => m.UUID === mig2.UUID)?.Status, 'reverted');
    assert.deepEqual(
      (await consumerAllocations(s.id)).map((x) => [x.resource_provider, x.resources.MEMORY_MB, x.resources.VCPU]),
      [[rp, BIG.ram, BIG.vcpus]],
    );
    assert.deepEqual(await consumerAllocations(mig2.UUID), [], 'no leftover migration consumer');
    const shown = await openstackJson<{ flavor: unknown }>(['server', 'show', s.id]);
    assert.match(JSON.stringify(shown.flavor), new RegExp(BIG.name));
    console.log(`      revert → ACTIVE in ${revertMs} ms (CLI polling at 1 s)`);

    await lab.deleteServer(s.id);
    assert.equal(await docker(['ps', '-a', '-q', '--filter', `name=^/nova-${s.id}$`]), '', 'container removed');
    assert.deepEqual(await consumerAllocations(s.id), [], 'allocations removed');
  });

  it('a rebuild to an image whose command exits at once ends in ERROR with a fault', async () => {
    const bad = await lab.uploadImage(`nd-mv-exit1-${SUFFIX}`, 'lab/exit1:latest');
    const s = await boot(busybox, SMALL.name);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
    await openstack(['server', 'rebuild', '--image', bad, s.id]);
    const e = await waitServer(s.id, (x) => x.status === 'ERROR', 'rebuild to fail');
    assert.ok(!e['OS-EXT-STS:task_state'], 'task_state cleared');
    assert.match(e.fault?.message ?? '', /exited at once|status 1/, JSON.stringify(e.fault));
    await lab.deleteServer(s.id);
    assert.deepEqual(await consumerAllocations(s.id), []);
  });
});
