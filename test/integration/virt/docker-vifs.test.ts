/**
 * DockerDriver networking against the real dockerd and Open vSwitch
 * (userspace datapath): two instances with hand-made network_info (no
 * Neutron), plugged into a bridge of this test's own, `br-vif-it`, standing
 * in for br-int. Checks traffic between them (ping, HTTP with a payload
 * bigger than the MTU, which stalls when offloads stay on), what the
 * instance sees inside, the lifecycle (stop/start, reboot, a tap lost behind
 * our back), and that nothing is left: no tap, veth, OVS port or holder.
 * Needs root and ovs-vsctl; skipped otherwise.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerClient } from '../../../src/clients/docker/client.js';
import { DockerDriver } from '../../../src/virt/docker/driver.js';
import { LocalImageResolver } from '../../../src/virt/docker/image-resolver.js';
import { LABELS, containerName, holderName } from '../../../src/virt/docker/labels.js';
import { PowerState } from '../../../src/virt/power-state.js';
import type { DriverContext, ImageMeta, InstanceSpec, NetworkInfo } from '../../../src/virt/types.js';
import { pollUntil } from '../../../src/common/poll.js';
import { docker as dockerCli } from '../../support/lab.js';
import {
  addBridge,
  bridgePorts,
  delBridge,
  deviceLeftovers,
  hostRun,
  linkExists,
  ovsUsable,
  pluggedPorts,
} from '../../support/ovs.js';
import { makeVif } from '../../support/vifs.js';
import { isNova, makeInstance } from '../../contract/driver.contract.js';

const BRIDGE = 'br-vif-it';
const TEST_LABEL = 'org.openstack.nova.test-run';
const RUN = randomUUID().slice(0, 8);
const HOST = `vif-it-${RUN}`;
const docker = new DockerClient({ socketPath: '/var/run/docker.sock' });
const busybox: ImageMeta = { id: randomUUID(), name: 'busybox:latest', properties: {} };
const httpd: ImageMeta = { id: randomUUID(), name: 'lab/httpd:latest', properties: {} };

function vifFor(n: number, extra: Parameters<typeof makeVif>[0] extends infer S ? Partial<S> : never = {}) {
  return makeVif({
    id: randomUUID(),
    mac: `fa:16:3e:88:00:${n.toString(16).padStart(2, '0')}`,
    ip4: `10.88.0.${n}`,
    cidr4: '10.88.0.0/24',
    gateway4: '10.88.0.1',
    ip6: `fd00:88::${n}`,
    cidr6: 'fd00:88::/64',
    gateway6: 'fd00:88::1',
    dns: ['10.88.0.2'],
    routes: [{ cidr: '192.168.88.0/24', gateway: '10.88.0.9' }],
    mtu: 1400,
    bridge: BRIDGE,
    ...extra,
  });
}

/** Runs a busybox applet inside the instance's container. */
async function inside(inst: InstanceSpec, ...args: string[]): Promise<string> {
  return dockerCli(['exec', containerName(inst.uuid), '/bin/busybox', ...args], 60_000);
}

async function pingOk(from: InstanceSpec, to: string): Promise<boolean> {
  try {
    await inside(from, 'ping', '-c', '2', '-W', '2', to);
    return true;
  } catch {
    return false;
  }
}

async function removeTestContainers(): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${RUN}`] } });
  await Promise.all(list.map((c) => docker.removeContainer(c.Id, { force: true, v: true })));
}

describe('DockerDriver networking (OVS userspace datapath, veth into a netns holder)', function () {
  this.timeout(120_000);
  let stateDir: string;
  let driver: DockerDriver;
  const plugTimes: number[] = [];

  before(async function () {
    if (!(await ovsUsable())) this.skip();
    await addBridge(BRIDGE);
    stateDir = mkdtempSync(join(tmpdir(), 'nd-vif-it-'));
    driver = new DockerDriver(
      docker,
      new LocalImageResolver(docker),
      {
        host: HOST,
        stopTimeoutS: 1,
        extraLabels: { [TEST_LABEL]: RUN },
        networkStateDir: stateDir,
        vifObserver: { plugged: (s, _n, ok) => void (ok && plugTimes.push(s * 1000)) },
      },
      undefined,
    );
    await driver.initHost(HOST);
  });
  after(async () => {
    if (!driver) return;
    await removeTestContainers();
    await delBridge(BRIDGE);
    rmSync(stateDir, { recursive: true, force: true });
  });

  const ctx: DriverContext = { requestId: 'req-vif-it' };
  const spawn = (inst: InstanceSpec, image: ImageMeta, vifs: NetworkInfo, c: DriverContext = ctx) =>
    driver.spawn(c, inst, image, [], undefined, undefined, vifs);

  it('two instances: addresses, MAC, MTU, routes, DNS and hostname inside; ping and HTTP from A to B; stop/start, reboot, a lost tap; destroy leaves nothing', async () => {
    const a = makeInstance(HOST, { hostname: `vif-a-${RUN}` });
    const b = makeInstance(HOST, { hostname: `vif-b-${RUN}` });
    const va = [vifFor(10)];
    const vb = [vifFor(11)];
    const waited: string[] = [];
    const wctx: DriverContext = {
      ...ctx,
      waitForInstanceEvents: async (events, body) => {
        await body();
        waited.push(...events.map(([name, tag]) => `${name}:${tag}`));
      },
    };
    const t0 = performance.now();
    await spawn(a, busybox, va, wctx);
    const withNet = performance.now() - t0;
    await spawn(b, httpd, vb, wctx);
    assert.deepEqual(waited, [`network-vif-plugged:${va[0]!.id}`, `network-vif-plugged:${vb[0]!.id}`]);

    // a boot without network next to it, for the numbers
    const bare = makeInstance(HOST);
    const t1 = performance.now();
    await spawn(bare, busybox, []);
    const without = performance.now() - t1;
    assert.equal((await docker.inspectContainer(containerName(bare.uuid))).HostConfig.NetworkMode, 'none');
    await assert.rejects(docker.inspectContainer(holderName(bare.uuid)), /no such container/i);
    console.log(
      `      spawn with 1 port ${withNet.toFixed(0)} ms, without ${without.toFixed(0)} ms; ` +
        `plug ${plugTimes.map((t) => t.toFixed(0)).join(', ')} ms`,
    );

    // what A sees inside
    const link = await inside(a, 'ip', 'link', 'show', 'eth0');
    assert.match(link, /mtu 1400/);
    assert.match(link, /link\/ether fa:16:3e:88:00:0a/);
    const addrs = await inside(a, 'ip', 'addr', 'show', 'eth0');
    assert.match(addrs, /inet 10\.88\.0\.10\/24/);
    assert.match(addrs, /inet6 fd00:88::10\/64/);
    const routes = await inside(a, 'ip', 'route');
    assert.match(routes, /default via 10\.88\.0\.1 dev eth0/);
    assert.match(routes, /192\.168\.88\.0\/24 via 10\.88\.0\.9 dev eth0/);
    assert.match(await inside(a, 'ip', '-6', 'route'), /default via fd00:88::1 dev eth0/);
    assert.match(await inside(a, 'cat', '/etc/resolv.conf'), /^nameserver 10\.88\.0\.2$/m);
    assert.match(await inside(a, 'cat', '/etc/hosts'), new RegExp(`^10\\.88\\.0\\.10\\tvif-a-${RUN}$`, 'm'));
    assert.equal(await inside(a, 'hostname'), `vif-a-${RUN}`);

    // host side: the tap in the bridge with Nova's external ids, offloads off
    const tapA = va[0]!.devname;
    assert.ok((await bridgePorts(BRIDGE)).includes(tapA));
    const ids = await hostRun(['ovs-vsctl', 'get', 'Interface', tapA, 'external_ids']);
    assert.match(ids, new RegExp(`iface-id="?${va[0]!.id}`));
    assert.match(ids, new RegExp(`vm-uuid="?${a.uuid}`));
    assert.match(ids, /attached-mac="?fa:16:3e:88:00:0a/);
    assert.match(await hostRun(['ethtool', '-k', tapA]), /tcp-segmentation-offload: off/);

    // traffic: ping (v4, v6), HTTP with a payload well over the MTU
    assert.ok(await pingOk(a, '10.88.0.11'), 'A pings B');
    assert.ok(await pingOk(a, 'fd00:88::11'), 'A pings B over IPv6');
    assert.match(await inside(a, 'wget', '-q', '-O', '-', 'http://10.88.0.11:8080/'), /hello from lab\/httpd/);
    await dockerCli([
      'exec',
      containerName(b.uuid),
      '/bin/busybox',
      'dd',
      'if=/dev/zero',
      'of=/www/big',
      'bs=1024',
      'count=2048',
    ]);
    const size = await inside(a, 'sh', '-c', 'busybox wget -q -O - http://10.88.0.11:8080/big | busybox wc -c');
    assert.equal(size.trim(), String(2048 * 1024));

    // stop: no network while SHUTOFF; start: back, one tap
    await driver.powerOff(b, 0);
    assert.equal((await driver.getInfo(b)).power_state, PowerState.SHUTDOWN);
    assert.equal(linkExists(vb[0]!.devname), false);
    assert.ok(!(await bridgePorts(BRIDGE)).includes(vb[0]!.devname), 'no stale OVS port');
    assert.equal(await pingOk(a, '10.88.0.11'), false, 'a stopped instance does not answer');
    await driver.powerOn(ctx, b, vb);
    assert.ok(await pingOk(a, '10.88.0.11'), 'B answers again after start');
    assert.equal((await bridgePorts(BRIDGE)).filter((p) => p === vb[0]!.devname).length, 1);

    // reboot: HARD of B (the namespace stays), SOFT of A
    await driver.reboot(ctx, b, vb, 'HARD');
    await driver.reboot(ctx, a, va, 'SOFT');
    assert.ok(await pingOk(a, '10.88.0.11'), 'after the reboots');
    assert.match(await inside(a, 'wget', '-q', '-O', '-', 'http://10.88.0.11:8080/'), /hello from lab\/httpd/);

    // a tap lost behind our back (agent or dockerd trouble): plug_vifs puts it back, never twice
    await hostRun(['ip', 'link', 'del', tapA]);
    assert.equal(await pingOk(a, '10.88.0.11'), false);
    await driver.plugVifs(a, va);
    await driver.plugVifs(a, va);
    assert.deepEqual(await pluggedPorts(a.uuid), [va[0]!.id]);
    assert.ok(await pingOk(a, '10.88.0.11'), 'replugged');

    // a hot-plugged second port on A: eth1, its address; detached again
    const extra = vifFor(20);
    await driver.attachInterface(ctx, a, busybox, extra);
    assert.match(await inside(a, 'ip', 'addr', 'show', 'eth1'), /inet 10\.88\.0\.20\/24/);
    await driver.detachInterface(ctx, a, extra);
    assert.equal(linkExists(extra.devname), false);

    // destroy: nothing of either is left; other taps of the bridge are untouched
    await hostRun(['ip', 'link', 'add', 'tapvifitother', 'type', 'veth', 'peer', 'name', 'tapvifitpeer']);
    try {
      for (const [inst, vifs] of [
        [a, va],
        [b, vb],
      ] as const) {
        await driver.destroy(ctx, inst, vifs);
        assert.deepEqual(await deviceLeftovers(inst.uuid), []);
        const left = await docker.listContainers({
          all: true,
          filters: { label: [`${LABELS.instanceUuid}=${inst.uuid}`] },
        });
        assert.deepEqual(left, [], 'no instance container, no holder');
        assert.equal(linkExists(vifs[0]!.devname), false);
      }
      assert.ok(linkExists('tapvifitother'), 'a tap that is not ours stays');
      assert.deepEqual(
        (await bridgePorts(BRIDGE)).filter((p) => p.startsWith('tap')),
        [],
        'no OVS port left in the bridge',
      );
    } finally {
      await hostRun(['ip', 'link', 'del', 'tapvifitother']).catch(() => undefined);
    }
    await driver.destroy(ctx, bare, []);
  });

  it('a holder started behind the driver’s back (after a dockerd restart killed it): its VIFs are plugged again', async () => {
    driver.registerEventListener(() => undefined);
    try {
      const a = makeInstance(HOST);
      const b = makeInstance(HOST);
      const va = [vifFor(40)];
      const vb = [vifFor(41)];
      await spawn(a, busybox, va);
      await spawn(b, busybox, vb);
      assert.ok(await pingOk(a, '10.88.0.41'));
      // what an Engine restart without live-restore does: every container killed
      await dockerCli(['kill', containerName(b.uuid), holderName(b.uuid)]);
      // the kernel removes a dead namespace's veths asynchronously
      await pollUntil(async () => ((await Promise.resolve(linkExists(vb[0]!.devname))) ? undefined : true), {
        timeoutMs: 20_000,
        intervalMs: 100,
        what: 'the tap to go with the namespace',
      });
      // someone starts them again outside Nova
      await dockerCli(['start', holderName(b.uuid)]);
      await pollUntil(async () => ((await pluggedPorts(b.uuid)).length === 1 ? true : undefined), {
        timeoutMs: 20_000,
        intervalMs: 100,
        what: 'the replug after the holder start',
      });
      await dockerCli(['start', containerName(b.uuid)]);
      assert.ok(await pingOk(a, '10.88.0.41'), 'B answers in its new namespace');
      assert.equal((await bridgePorts(BRIDGE)).filter((p) => p === vb[0]!.devname).length, 1, 'one port, no duplicate');
      await driver.destroy(ctx, a, va);
      await driver.destroy(ctx, b, vb);
      assert.deepEqual([...(await deviceLeftovers(a.uuid)), ...(await deviceLeftovers(b.uuid))], []);
    } finally {
      driver.registerEventListener(undefined);
    }
  });

  it('resume brings the network up: a tap lost while suspended, and a guest and holder that died while suspended (dockerd restart)', async () => {
    const a = makeInstance(HOST);
    const b = makeInstance(HOST);
    const va = [vifFor(50)];
    const vb = [vifFor(51)];
    const tapB = vb[0]!.devname;
    await spawn(a, busybox, va);
    await spawn(b, busybox, vb);
    assert.ok(await pingOk(a, '10.88.0.51'));

    // suspended, its tap lost: the guest keeps its namespace, resume plugs the tap back into it
    await driver.suspend(ctx, b);
    await hostRun(['ip', 'link', 'del', tapB]);
    await driver.resume(ctx, b, vb);
    assert.equal((await driver.getInfo(b)).power_state, PowerState.RUNNING);
    assert.deepEqual(await pluggedPorts(b.uuid), [vb[0]!.id]);
    assert.ok(await pingOk(a, '10.88.0.51'), 'B answers after the resume replugged its tap');

    // suspended, then the Engine stopped guest and holder (what a dockerd restart without live-restore does)
    await driver.suspend(ctx, b);
    assert.equal((await driver.getInfo(b)).power_state, PowerState.SUSPENDED);
    await dockerCli(['stop', '-t', '0', containerName(b.uuid), holderName(b.uuid)]);
    await pollUntil(async () => ((await Promise.resolve(linkExists(tapB))) ? undefined : true), {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: 'the tap to go with the namespace',
    });
    assert.ok((await bridgePorts(BRIDGE)).includes(tapB), 'the OVS port of the dead tap is stale now');
    await driver.resume(ctx, b, vb);
    assert.equal((await driver.getInfo(b)).power_state, PowerState.RUNNING);
    assert.ok(await pingOk(a, '10.88.0.51'), 'B answers in its new namespace');
    assert.deepEqual(await pluggedPorts(b.uuid), [vb[0]!.id]);
    assert.equal((await bridgePorts(BRIDGE)).filter((p) => p === tapB).length, 1, 'one port, no duplicate');
    assert.match(await inside(b, 'ip', 'addr', 'show', 'eth0'), /inet 10\.88\.0\.51\/24/);

    await driver.destroy(ctx, a, va);
    await driver.destroy(ctx, b, vb);
    assert.deepEqual([...(await deviceLeftovers(a.uuid)), ...(await deviceLeftovers(b.uuid))], []);
  });

  it('a plug that fails inside the namespace leaves no holder, tap, veth or OVS port', async () => {
    const inst = makeInstance(HOST);
    // a gateway outside the subnet: the kernel refuses the default route, after the veth and OVS port exist
    const vifs = [vifFor(30, { gateway4: '10.99.0.1' })];
    await assert.rejects(spawn(inst, busybox, vifs), (err: unknown) => {
      isNova('VirtualInterfacePlugException')(err);
      assert.match((err as Error).message, new RegExp(vifs[0]!.id));
      return true;
    });
    assert.deepEqual(await deviceLeftovers(inst.uuid), []);
    assert.equal(linkExists(vifs[0]!.devname), false);
    const left = await docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.instanceUuid}=${inst.uuid}`] },
    });
    assert.deepEqual(left, []);
  });

  it('a failed network-vif-plugged wait removes the instance network, and so does a dead guest', async () => {
    const inst = makeInstance(HOST);
    const vifs = [vifFor(31)];
    const failing: DriverContext = {
      ...ctx,
      waitForInstanceEvents: async (_e, body) => {
        await body();
        throw new Error('network-vif-plugged timed out');
      },
    };
    await assert.rejects(spawn(inst, busybox, vifs, failing), /timed out/);
    assert.deepEqual(await deviceLeftovers(inst.uuid), []);
    const exit1 = makeInstance(HOST);
    await assert.rejects(
      spawn(exit1, { id: randomUUID(), name: 'lab/exit1:latest', properties: {} }, [vifFor(32)]),
      isNova('InstanceDeployFailure'),
    );
    assert.deepEqual(await deviceLeftovers(exit1.uuid), []);
    const left = await docker.listContainers({
      all: true,
      filters: { label: [`${LABELS.instanceUuid}=${exit1.uuid}`] },
    });
    assert.deepEqual(left, []);
  });
});
