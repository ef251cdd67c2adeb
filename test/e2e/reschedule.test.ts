/**
 * End to end, a broken host among healthy ones (the real Zed control
 * plane): two agents in one availability zone (an aggregate of their own),
 * one of which cannot pull from its registry (its `[docker] registry_url`
 * names a port nothing listens on) and boots an image only the registry
 * has. Servers created in the zone without naming a host: those the
 * scheduler puts on the broken host fail there, go back to the conductor
 * with retry information and alternates, and end ACTIVE on the healthy
 * host; after `[docker] build_failure_disable_threshold` (2) failures in a
 * row the broken host's service is disabled with Nova's reason, shown by
 * `openstack compute service list --long`, and the scheduler leaves it out.
 * Then the other way a host breaks: its dockerd goes away after the host
 * joined (the agent's Engine API runs through a socket this test closes):
 * its builds fail before anything is made, go back to the conductor and end
 * ACTIVE on the healthy host.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '../../src/clients/registry/index.js';
import { pollUntil } from '../../src/common/poll.js';
import { LAB_ENDPOINTS } from '../support/lab-env.js';
import {
  consumerAllocations,
  createGlanceImage,
  docker,
  e2eHost,
  hostContainers,
  openstack,
  openstackJson,
  pushToRegistry,
  useE2eLab,
  waitServer,
  type LabServer,
} from '../support/lab.js';

const RUN = randomUUID().slice(0, 6);
const OK = e2eHost(`nd-hosts-ok-${RUN}`);
const BAD = e2eHost(`nd-hosts-bad-${RUN}`);
const AZ = `nd-hosts-az-${RUN}`;
const REGISTRY = LAB_ENDPOINTS.registry;

/** Port 9 (discard): nothing listens on it here, so every pull fails at once with a refused connection. */
const BAD_CONF = `registry_url = 127.0.0.1:9
build_failure_disable_threshold = 2
`;

/**
 * A unix socket forwarding to the lab's dockerd; close() is dockerd dying under the agent that uses it:
 * the listener goes and every open connection (the event stream included) is cut.
 */
async function dockerProxy(): Promise<{ url: string; close: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'nd-dockerd-'));
  const path = join(dir, 'docker.sock');
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const engine = connect('/var/run/docker.sock');
    for (const [a, b] of [
      [client, engine],
      [engine, client],
    ] as const) {
      open.add(a);
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => {
        open.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    url: `unix://${path}`,
    close: () => {
      if (!server.listening) return;
      server.close();
      for (const c of open) c.destroy();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface ServiceRow {
  ID: string | number;
  Binary: string;
  Host: string;
  Status: string;
  State: string;
  'Disabled Reason'?: string | null;
}

async function computeService(host: string): Promise<ServiceRow> {
  const rows = await openstackJson<ServiceRow[]>([
    'compute',
    'service',
    'list',
    '--long',
    '--service',
    'nova-compute',
    '--host',
    host,
  ]);
  assert.equal(rows.length, 1, `one nova-compute service on ${host}: ${JSON.stringify(rows)}`);
  return rows[0]!;
}

describe('e2e: a broken host among healthy ones: reschedule, failed builds, auto-disable', function () {
  this.timeout(900_000);
  const lab = useE2eLab([OK, BAD]);
  const registry = new RegistryClient({ url: REGISTRY });
  const repo = `nd-hosts-${RUN}`;
  let imageId = '';

  before(async () => {
    // the broken host: its own conf, started after the lab's (useE2eLab starts both with the file's conf)
    await lab.stop(BAD);
    await lab.start(BAD, BAD_CONF);
    lab.cleanup.defer(async () => {
      await docker(['rmi', `${REGISTRY}/${repo}:v1`]).catch(() => undefined);
      const digest = await registry.manifestDigest(repo, 'v1');
      if (digest) await registry.deleteManifest(repo, digest);
    });
    await pushToRegistry('busybox:latest', repo, 'v1');
    // an ACTIVE Glance image without data: only a registry can provide it
    imageId = lab.cleanup.image(
      await createGlanceImage(`nd-hosts-${RUN}`, '/dev/null', ['--property', `docker_image_ref=${repo}:v1`]),
    );
    await pollUntil(
      async () =>
        (await openstackJson<{ status: string }>(['image', 'show', imageId])).status === 'active' ? true : undefined,
      { timeoutMs: 30_000, intervalMs: 500, what: `image ${imageId} active` },
    );
    const agg = await openstackJson<{ id: number | string }>([
      'aggregate',
      'create',
      '--zone',
      AZ,
      `nd-hosts-agg-${RUN}`,
    ]);
    lab.cleanup.defer(async () => {
      for (const h of [OK, BAD]) await openstack(['aggregate', 'remove', 'host', String(agg.id), h]).catch(() => '');
      await openstack(['aggregate', 'delete', String(agg.id)]);
    });
    for (const h of [OK, BAD]) await openstack(['aggregate', 'add', 'host', String(agg.id), h]);
    // an operator's re-enable, whatever the test left
    lab.cleanup.defer(() => openstack(['compute', 'service', 'set', '--enable', BAD, 'nova-compute']));
  });

  after(async () => {
    // after the lab's own after hook (agents stopped, servers gone): the services and their nodes go too
    for (const h of [OK, BAD]) {
      const row = await computeService(h).catch(() => undefined);
      if (row) await openstack(['compute', 'service', 'delete', String(row.ID)]).catch(() => '');
    }
  });

  /**
   * `n` servers created in the zone, one request each as users do (a multi-create spread over both hosts would
   * leave no alternate to any of them: the scheduler never offers a host it placed a sibling on); once each is
   * ACTIVE or ERROR, every one must be ACTIVE on the healthy host. Returns their ids and where they ended.
   */
  async function bootAllOnHealthyHost(name: string, n: number): Promise<{ ids: string[]; where: string }> {
    const ids: string[] = [];
    for (let i = 1; i <= n; i++) {
      const s = await openstackJson<LabServer>([
        'server',
        'create',
        '--image',
        imageId,
        '--flavor',
        'm1.tiny',
        '--nic',
        'none',
        '--availability-zone',
        AZ,
        `${name}-${i}`,
      ]);
      ids.push(lab.cleanup.server(s.id));
    }
    const done = await Promise.all(
      ids.map((id) => waitServer(id, (s) => ['ACTIVE', 'ERROR'].includes(s.status), 'ACTIVE or ERROR', 300_000)),
    );
    const where = done.map((s: LabServer) => `${s.id} ${s.status} ${String(s['OS-EXT-SRV-ATTR:host'])}`).join('\n');
    for (const s of done) {
      assert.equal(s.status, 'ACTIVE', `${JSON.stringify(s.fault)}\n${where}`);
      assert.equal(s['OS-EXT-SRV-ATTR:host'], OK, where);
    }
    return { ids, where };
  }

  it('servers created in the zone end ACTIVE on the healthy host; the broken one reschedules and disables itself', async () => {
    const t0 = Date.now();
    const { ids, where } = await bootAllOnHealthyHost(`nd-hosts-${RUN}-a`, 4);
    const seconds = (Date.now() - t0) / 1000;
    const badLog = lab.agent(BAD).log();
    const rescheduled = (badLog.match(/Build rescheduled: /g) ?? []).length;
    console.log(`    4 servers ACTIVE on ${OK} in ${seconds.toFixed(1)} s; ${rescheduled} rescheduled from ${BAD}`);
    assert.ok(rescheduled >= 2, `the scheduler put at least 2 on ${BAD} (RAM spread): ${rescheduled}\n${where}`);
    // the pull's own error: dockerd could not reach the registry this host names
    assert.match(badLog, /Build rescheduled: .*127\.0\.0\.1:9.*connection refused/);
    // every server's allocations are on the healthy host's provider only
    for (const id of ids) assert.equal((await consumerAllocations(id)).length, 1, `${id}: one provider`);
    assert.deepEqual(await hostContainers(BAD), [], `nothing left on ${BAD}`);

    const svc = await pollUntil(
      async () => {
        const row = await computeService(BAD);
        return row.Status === 'disabled' ? row : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 1000, what: `${BAD} disabled` },
    );
    assert.equal(svc['Disabled Reason'], 'Auto-disabled due to 2 build failures');
    assert.equal(svc.State, 'up', 'disabled, not down: the agent still reports');
    assert.equal((await computeService(OK)).Status, 'enabled');
  });

  it('the disabled host gets no builds; re-enabled by the operator, it is enabled again', async () => {
    const before = (
      lab
        .agent(BAD)
        .log()
        .match(/Starting instance\.\.\./g) ?? []
    ).length;
    const s = await openstackJson<LabServer>(
      [
        'server',
        'create',
        '--image',
        imageId,
        '--flavor',
        'm1.tiny',
        '--nic',
        'none',
        '--availability-zone',
        AZ,
        '--wait',
        `nd-hosts-${RUN}-b`,
      ],
      300_000,
    );
    lab.cleanup.server(s.id);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
    assert.equal(s['OS-EXT-SRV-ATTR:host'], OK);
    assert.equal(
      (
        lab
          .agent(BAD)
          .log()
          .match(/Starting instance\.\.\./g) ?? []
      ).length,
      before,
      `no build on ${BAD}`,
    );

    await openstack(['compute', 'service', 'set', '--enable', BAD, 'nova-compute']);
    const row = await computeService(BAD);
    assert.equal(row.Status, 'enabled');
    assert.ok(!row['Disabled Reason'], JSON.stringify(row));
  });

  it('a host whose dockerd dies after it joined: its builds are rescheduled and end ACTIVE on the healthy host', async () => {
    const proxy = await dockerProxy();
    lab.cleanup.defer(() => Promise.resolve(proxy.close()));
    // the broken host again, now with a working registry and its Engine API through the proxy
    await lab.stop(BAD);
    await lab.start(BAD, `host_url = ${proxy.url}\n`);
    assert.equal((await computeService(BAD)).Status, 'enabled');
    const from = lab.agent(BAD).log().length;
    proxy.close();

    const { ids, where } = await bootAllOnHealthyHost(`nd-hosts-${RUN}-c`, 3);
    const badLog = lab.agent(BAD).log().slice(from);
    const rescheduled = (badLog.match(/Build rescheduled: /g) ?? []).length;
    console.log(`    dockerd gone on ${BAD}: ${rescheduled} of 3 builds rescheduled, all ACTIVE on ${OK}`);
    // the scheduler prefers the emptier host (RAM weigher): the first build at least went there
    assert.ok(rescheduled >= 1, `a build reached ${BAD}\n${where}`);
    assert.doesNotMatch(badLog, /Could not clean up failed build/);
    for (const id of ids) assert.equal((await consumerAllocations(id)).length, 1, `${id}: one provider`);
    assert.deepEqual(await hostContainers(BAD), [], `nothing left on ${BAD}`);
  });
});
