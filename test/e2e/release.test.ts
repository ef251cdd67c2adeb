/**
 * End to end, the release the agent speaks, against whichever lab
 * NOVA_DOCKER_LAB names (Zed, 2025.1 or 2026.1): the release auto-selected
 * from nova-conductor, the Service version it reports, `nova-status upgrade
 * check` passing with it registered, the compute-alt topic exactly where the
 * release has one, a disabled service becoming COMPUTE_STATUS_DISABLED at
 * once, and an availability zone mapped to a Placement aggregate that the
 * agent's own updates never overwrite, so a boot into the zone lands here.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from '../../src/common/poll.js';
import { RELEASES } from '../../src/objects/releases.js';
import { adminContext } from '../../src/rpc/context.js';
import { Messaging } from '../../src/rpc/messaging.js';
import { BROKER, execFileP, messagingOptions, REPO_ROOT, SYSTEM_ENV } from '../support/broker.js';
import { LAB_ENDPOINTS, LAB_RELEASE, labExec } from '../support/lab-env.js';
import {
  discoverHosts,
  hostContainers,
  labNovaConf,
  openstack,
  openstackJson,
  removeGlanceCacheTags,
  startAgent,
  uploadDockerImage,
  waitServer,
  type AgentProcess,
} from '../support/lab.js';

const HOST = `nd-release-${LAB_RELEASE.replace('.', '')}`;
const EXPECTED = RELEASES.find((r) => r.name === LAB_RELEASE);
const PLACEMENT = ['--os-placement-api-version', '1.19'];

async function providerUuid(name: string): Promise<string> {
  const rows = await openstackJson<Array<{ uuid: string }>>(['resource', 'provider', 'list', '--name', name]);
  assert.equal(rows.length, 1, `one resource provider named ${name}`);
  return rows[0]!.uuid;
}

async function traits(rp: string): Promise<string[]> {
  const rows = await openstackJson<Array<{ name: string }>>([
    ...PLACEMENT,
    'resource',
    'provider',
    'trait',
    'list',
    rp,
  ]);
  return rows.map((r) => r.name);
}

async function aggregates(rp: string): Promise<string[]> {
  const rows = await openstackJson<Array<{ uuid: string }>>([
    ...PLACEMENT,
    'resource',
    'provider',
    'aggregate',
    'list',
    rp,
  ]);
  return rows.map((r) => r.uuid);
}

/** A compute RPC call through RabbitMQ, as nova-api or nova-conductor would send it. */
async function computeCall(topic: string, method: string, version: string): Promise<unknown> {
  const messaging = new Messaging(messagingOptions({ hosts: [{ ...BROKER, port: LAB_ENDPOINTS.rabbitPort }] }));
  await messaging.start();
  try {
    return await messaging.client(topic).call(adminContext(), method, {}, { server: HOST, version, timeoutS: 15 });
  } finally {
    await messaging.close(0);
  }
}

describe(`e2e: the Nova release the agent speaks (lab ${LAB_RELEASE})`, function () {
  this.timeout(900_000);
  let agent: AgentProcess | undefined;
  const cleanups: Array<() => Promise<unknown>> = [];

  before(async () => {
    assert.ok(EXPECTED, `a table for ${LAB_RELEASE}`);
    // frequent resource updates: the aggregate test needs several after the operator's change
    agent = await startAgent(HOST, '[DEFAULT]\nupdate_resources_interval = 2\n');
    await discoverHosts();
  });

  after(async () => {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    const code = await agent?.stop();
    assert.equal(code, 0, agent?.log().slice(-3000));
  });

  it('auto-selects the lab’s release from nova-conductor and says so at start', () => {
    const log = agent?.log() ?? '';
    assert.match(
      log,
      new RegExp(
        `Speaking Nova ${EXPECTED!.name.replace('.', '\\.')} \\(service version ${EXPECTED!.serviceVersion}, ` +
          `compute RPC ${EXPECTED!.computeRpcVersion.replace('.', '\\.')}`,
      ),
    );
  });

  it('`nova-docker status` shows the release the Service record reports and the control plane', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nd-rel-'));
    try {
      const conf = join(dir, 'nova.conf');
      writeFileSync(conf, labNovaConf(HOST));
      const { stdout } = await execFileP(
        process.execPath,
        [join(REPO_ROOT, 'dist/src/cli.js'), 'status', '--config-file', conf, '--format', 'json'],
        { env: SYSTEM_ENV, timeout: 60_000 },
      );
      const report = JSON.parse(stdout) as { nova: { release?: string; control_plane?: string } };
      assert.match(report.nova.release ?? '', new RegExp(`^${EXPECTED!.name.replace('.', '\\.')} \\(service version`));
      assert.match(report.nova.control_plane ?? '', new RegExp(`Nova [^ ]*${LAB_RELEASE.replace('.', '\\.')}`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a second agent pinned to a release this control plane would refuse stops at start, naming both', async () => {
    // on Zed: a 2025.1 agent would report a version Zed does not know; on 2025.1/2026.1: a Zed agent is too old
    const wrong = LAB_RELEASE === 'zed' ? '2025.1' : 'zed';
    const dir = mkdtempSync(join(tmpdir(), 'nd-rel-'));
    try {
      const conf = join(dir, 'nova.conf');
      writeFileSync(conf, labNovaConf(`${HOST}-pinned`, `[docker]\nnova_release = ${wrong}\n`));
      const run = execFileP(process.execPath, [join(REPO_ROOT, 'dist/src/cli.js'), 'compute', '--config-file', conf], {
        env: SYSTEM_ENV,
        timeout: 120_000,
      });
      const err = await run.then(
        () => assert.fail('the pinned agent kept running'),
        (e: Error & { code?: number; stderr?: string }) => e,
      );
      assert.equal(err.code, 1);
      assert.match(err.stderr ?? '', new RegExp(`nova_release = ${wrong.replace('.', '\\.')} \\(service version`));
      assert.match(err.stderr ?? '', new RegExp(`Nova [^ ]*${LAB_RELEASE.replace('.', '\\.')}`));
      // it never registered: the cloud is not pinned to it
      const services = await openstackJson<Array<{ Host: string }>>(['compute', 'service', 'list']);
      assert.ok(!services.some((s) => s.Host === `${HOST}-pinned`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('`nova-status upgrade check` passes with the agent registered', async () => {
    // exit 0 = all passed, 1 = warnings only (hw_machine_type on non-libvirt instances), 2 = a failure
    const out = await labExec(['nova-status', 'upgrade', 'check']).catch(
      (err: Error & { code?: number; stdout?: string }) => {
        assert.equal(err.code, 1, `nova-status upgrade check failed:\n${err.stdout ?? err.message}`);
        return err.stdout ?? '';
      },
    );
    assert.match(out, /Check: Older than N-1 computes|Check: Cells v2/);
    assert.doesNotMatch(out, /Result: Failure/);
  });

  it('serves compute-alt.<host> exactly when the release has it (service version 71+)', async () => {
    assert.match(String(await computeCall('compute', 'get_host_uptime', '6.0')), /load average/);
    if (EXPECTED!.computeTopics.includes('compute-alt')) {
      assert.match(String(await computeCall('compute-alt', 'get_host_uptime', '6.5')), /load average/);
    } else {
      await assert.rejects(computeCall('compute-alt', 'get_host_uptime', '6.0'), /MessagingTimeout|timed out/i);
    }
  });

  it('a disabled compute service is COMPUTE_STATUS_DISABLED in Placement at once; enabling clears it', async () => {
    const rp = await providerUuid(HOST);
    cleanups.push(() => openstack(['compute', 'service', 'set', '--enable', HOST, 'nova-compute']));
    await openstack(['compute', 'service', 'set', '--disable', '--disable-reason', 'e2e', HOST, 'nova-compute']);
    assert.ok((await traits(rp)).includes('COMPUTE_STATUS_DISABLED'));
    await openstack(['compute', 'service', 'set', '--enable', HOST, 'nova-compute']);
    assert.ok(!(await traits(rp)).includes('COMPUTE_STATUS_DISABLED'));
  });

  it('an availability zone is a Placement aggregate the agent never overwrites; a boot into it lands here', async () => {
    const suffix = randomUUID().slice(0, 6);
    const zone = `nd-az-${suffix}`;
    // a host is in one zone at most: drop what an interrupted earlier run left
    for (const a of await openstackJson<Array<{ ID: number; Name: string }>>(['aggregate', 'list'])) {
      if (a.Name.startsWith('nd-agg-')) {
        await openstack(['aggregate', 'remove', 'host', String(a.ID), HOST]).catch(() => undefined);
        await openstack(['aggregate', 'delete', String(a.ID)]).catch(() => undefined);
      }
    }
    // aggregates show their uuid (the Placement aggregate's) from compute API 2.41
    const agg = await openstackJson<{ id: number; uuid: string }>([
      '--os-compute-api-version',
      '2.41',
      'aggregate',
      'create',
      '--zone',
      zone,
      `nd-agg-${suffix}`,
    ]);
    cleanups.push(() => openstack(['aggregate', 'delete', String(agg.id)]));
    await openstack(['aggregate', 'add', 'host', String(agg.id), HOST]);
    cleanups.push(() => openstack(['aggregate', 'remove', 'host', String(agg.id), HOST]));
    const rp = await providerUuid(HOST);
    const aggUuid = agg.uuid;
    assert.match(aggUuid, /^[0-9a-f-]{36}$/);
    const mirrored = await aggregates(rp);
    assert.ok(mirrored.includes(aggUuid), `nova-api mirrored aggregate ${aggUuid} into Placement: ${mirrored.join()}`);
    // three of the agent's resource updates (every 2 s here) later, the aggregate is still there
    const from = agent!.log().length;
    await pollUntil(
      () =>
        (
          agent!
            .log()
            .slice(from)
            .match(/Final resource view/g) ?? []
        ).length >= 3
          ? true
          : undefined,
      { timeoutMs: 60_000, intervalMs: 200, what: 'three resource updates' },
    );
    assert.ok((await aggregates(rp)).includes(aggUuid), 'the agent kept the operator’s aggregate');

    const image = await uploadDockerImage(`nd-rel-${suffix}`, 'busybox:latest');
    cleanups.push(async () => {
      await openstack(['image', 'delete', image]);
      await removeGlanceCacheTags(image);
    });
    const server = await openstackJson<{ id: string }>([
      'server',
      'create',
      '--image',
      image,
      '--flavor',
      'm1.tiny',
      '--nic',
      'none',
      '--availability-zone',
      zone,
      `nd-rel-${suffix}`,
    ]);
    cleanups.push(() => openstack(['server', 'delete', '--wait', server.id], 300_000));
    const s = await waitServer(server.id, (v) => v.status === 'ACTIVE' || v.status === 'ERROR', 'ACTIVE');
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));
    assert.equal(s['OS-EXT-SRV-ATTR:host'], HOST);
    assert.ok((await hostContainers(HOST)).some((c) => c.includes(server.id) && c.endsWith('running')));
    await openstack(['server', 'delete', '--wait', server.id], 300_000);
    assert.deepEqual(await hostContainers(HOST), []);
  });
});
