/**
 * The driver's lifecycle feed against the real dockerd: container events of
 * this host arrive as Nova lifecycle transitions within moments, another
 * host's do not, and a broken connection (a unix-socket proxy in front of
 * dockerd, cut by the test) is followed by a reconnect and EventsMissed.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerClient } from '../../../src/clients/docker/client.js';
import { pollUntil } from '../../../src/common/poll.js';
import { DockerDriver } from '../../../src/virt/docker/driver.js';
import { LocalImageResolver } from '../../../src/virt/docker/image-resolver.js';
import { containerName } from '../../../src/virt/docker/labels.js';
import { type DriverEvent, LifecycleTransition } from '../../../src/virt/event.js';
import { PowerState } from '../../../src/virt/power-state.js';
import type { ImageMeta } from '../../../src/virt/types.js';
import { ctx, makeInstance } from '../../contract/driver.contract.js';

const SOCKET = '/var/run/docker.sock';
const TEST_LABEL = 'org.openstack.nova.test-run';
const RUN = randomUUID().slice(0, 8);
const HOST = `nd-lifecycle-ev-${RUN}`;
const busybox: ImageMeta = { id: randomUUID(), name: 'busybox:latest', properties: {} };
const docker = new DockerClient({ socketPath: SOCKET });

/** A unix-socket proxy to dockerd whose connections the test can cut. */
function socketProxy(path: string) {
  const conns = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const up = net.connect(SOCKET);
    conns.add(client).add(up);
    client.pipe(up).pipe(client);
    const drop = () => {
      client.destroy();
      up.destroy();
      conns.delete(client);
      conns.delete(up);
    };
    client.on('error', drop).on('close', drop);
    up.on('error', drop).on('close', drop);
  });
  return {
    listen: () => new Promise<void>((r) => server.listen(path, r)),
    cut: () => {
      for (const c of conns) c.destroy();
    },
    close: () =>
      new Promise<void>((r) => {
        for (const c of conns) c.destroy();
        server.close(() => r());
      }),
  };
}

describe('DockerDriver lifecycle events (real dockerd)', function () {
  this.timeout(60_000);
  const sockPath = join(tmpdir(), `nd-events-${RUN}.sock`);
  const proxy = socketProxy(sockPath);
  const proxied = new DockerClient({ socketPath: sockPath });
  const resolver = new LocalImageResolver(docker);
  const driver = new DockerDriver(proxied, resolver, {
    host: HOST,
    stopTimeoutS: 1,
    eventsBackoffMs: 50,
    extraLabels: { [TEST_LABEL]: RUN },
  });
  const other = new DockerDriver(docker, resolver, {
    host: `${HOST}-other`,
    stopTimeoutS: 1,
    extraLabels: { [TEST_LABEL]: RUN },
  });
  const seen: Array<DriverEvent & { at: number }> = [];

  const lifecycle = (uuid: string) =>
    seen.flatMap((e) => (e.kind === 'lifecycle' && e.uuid === uuid ? [LifecycleTransition[e.transition]] : []));
  const missed = () => seen.filter((e) => e.kind === 'missed').length;
  const waitFor = (uuid: string, names: string[], what: string) =>
    pollUntil(() => (lifecycle(uuid).join() === names.join() ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: `${what}; seen ${lifecycle(uuid).join()}`,
    });

  before(async () => {
    await proxy.listen();
    driver.registerEventListener((e) => seen.push({ ...e, at: Date.now() }));
    await pollUntil(() => (missed() === 1 ? true : undefined), { timeoutMs: 10_000, what: 'the subscription' });
  });
  after(async () => {
    driver.registerEventListener(undefined);
    const list = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${RUN}`] } });
    await Promise.all(list.map((c) => docker.removeContainer(c.Id, { force: true, v: true })));
    await proxy.close();
    rmSync(sockPath, { force: true });
  });

  it('start, pause, unpause, kill (die 137), destroy of our containers arrive in order, within moments', async () => {
    const inst = makeInstance(HOST);
    const name = containerName(inst.uuid);
    await driver.spawn(ctx, inst, busybox, [], undefined, undefined, []);
    await waitFor(inst.uuid, ['STARTED'], 'start');
    await docker.pauseContainer(name);
    await waitFor(inst.uuid, ['STARTED', 'PAUSED'], 'pause');
    await docker.unpauseContainer(name);
    await waitFor(inst.uuid, ['STARTED', 'PAUSED', 'RESUMED'], 'unpause');
    const t0 = Date.now();
    await docker.killContainer(name, 'SIGKILL');
    await waitFor(inst.uuid, ['STARTED', 'PAUSED', 'RESUMED', 'STOPPED'], 'die');
    const die = seen.findLast((e) => e.kind === 'lifecycle' && e.uuid === inst.uuid);
    assert.ok(die?.kind === 'lifecycle');
    assert.equal(die.detail, 'die exitCode=137');
    const latency = die.at - t0;
    console.log(`      kill → STOPPED event: ${latency} ms`);
    assert.ok(latency < 2000, `${latency} ms`);
    assert.equal((await driver.getInfo(inst)).power_state, PowerState.SHUTDOWN);
    await driver.destroy(ctx, inst, []);
    await waitFor(inst.uuid, ['STARTED', 'PAUSED', 'RESUMED', 'STOPPED', 'STOPPED'], 'destroy');
  });

  it('containers of another host are not reported', async () => {
    const mine = makeInstance(HOST);
    const theirs = makeInstance(`${HOST}-other`);
    await other.spawn(ctx, theirs, busybox, [], undefined, undefined, []);
    await driver.spawn(ctx, mine, busybox, [], undefined, undefined, []);
    await waitFor(mine.uuid, ['STARTED'], 'our start');
    assert.deepEqual(lifecycle(theirs.uuid), []);
    await other.destroy(ctx, theirs, []);
    await driver.destroy(ctx, mine, []);
  });

  it('a broken stream reconnects and reports the gap (EventsMissed); events flow again', async () => {
    const before = missed();
    proxy.cut();
    await pollUntil(() => (missed() === before + 1 ? true : undefined), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: 'a reconnect',
    });
    const inst = makeInstance(HOST);
    await driver.spawn(ctx, inst, busybox, [], undefined, undefined, []);
    await waitFor(inst.uuid, ['STARTED'], 'start after the reconnect');
    await driver.destroy(ctx, inst, []);
  });
});
