/**
 * End to end with Neutron (test/lab/neutron-lab.sh: neutron-server, ML2/OVS on the userspace datapath, the
 * OVS and DHCP agents on host nova-docker-net): the stock CLIs boot servers with ports through the lab's
 * real Nova, our agent plugs them, and the checks run from inside the guests (`docker exec`). Needs root
 * and the Neutron lab up; skipped otherwise. Only this file may run an agent with host nova-docker-net
 * while it runs (binding works only there). Case 2e restarts the lab's dockerd, which stops every container
 * on the machine: run the file alone on the lab.
 * With NOVA_DOCKER_LAB=2025.1|2026.1 the same against that release lab's own Neutron (release-lab.sh: agents
 * on host nova-docker-net-2025-1 / -2026-1, bridge br-int25 / br-int26; LAB_NEUTRON); release-e2e.sh runs
 * cases 1, 4 and 5 there (mocha --grep: the case numbers are part of the titles it matches).
 */
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { pollUntil } from '../../src/common/poll.js';
import { plugTiming } from '../support/agent-log.js';
import { execFileP, REPO_ROOT, SYSTEM_ENV } from '../support/broker.js';
import { dockerd } from '../support/dockerd.js';
import { LAB_NEUTRON, LAB_RELEASE, RELEASE_LAB_SCRIPT } from '../support/lab-env.js';
import {
  discoverHosts,
  docker,
  e2eHost,
  nova,
  openstack,
  openstackJson,
  providerUuid,
  setProviderTraits,
  stopFakeCompute,
  useE2eLab,
  waitServer,
  type LabServer,
} from '../support/lab.js';
import { bridgePorts, deviceLeftovers, linksWithAlias, ovsInterfacesOf } from '../support/ovs.js';

/** The lab's agent host: the only one with an OVS agent, so the only one where ports bind. */
const HOST = LAB_NEUTRON.agentHost;
/** The lab's integration bridge, where the plug puts the ports (the binding's vif_details bridge_name). */
const BR_INT = LAB_NEUTRON.integrationBridge;
/** A compute host with no Neutron agent: its ports fail to bind. */
const NONET = e2eHost('nova-docker-nonet');
const NETLAB = `${REPO_ROOT}test/lab/neutron-lab.sh`;
const RAND = randomUUID().slice(0, 6);
/**
 * Third octet of this run's subnets (10.253.R / 10.254.R / 10.250.R; the labs' own are 10.251/10.252), from a
 * range of each lab's own: every lab's netdev bridges share one userspace datapath whose conntrack zones are
 * each OVS agent's local VLAN numbers, so two labs' runs at once must not share addresses.
 */
const R = { zed: 0, '2025.1': 84, '2026.1': 168 }[LAB_RELEASE] + randomInt(0, 82);

interface Port {
  id: string;
  mac_address: string;
  status: string;
  device_id: string;
  binding_host_id?: string;
  'binding:host_id'?: string;
  fixed_ips: Array<{ ip_address: string; subnet_id: string }> | string;
}

interface Server extends LabServer {
  addresses?: Record<string, string[]> | string;
}

const timings: string[] = [];
function timing(what: string, ms: number): void {
  timings.push(`${what}: ${(ms / 1000).toFixed(2)} s`);
}

/**
 * The lab's Neutron script: `neutron-lab.sh CMD ARGS` for Zed, `release-lab.sh CMD REL ARGS` for a release
 * lab (the same `env`, `daemon NAME stop|start`; its `env` lines' `export ` dropped, as Zed prints them).
 */
async function netlab(cmd: string, ...args: string[]): Promise<string> {
  const argv = LAB_RELEASE === 'zed' ? [NETLAB, cmd, ...args] : [RELEASE_LAB_SCRIPT, cmd, LAB_RELEASE, ...args];
  const { stdout } = await execFileP('bash', argv, { env: SYSTEM_ENV, timeout: 300_000 });
  return LAB_RELEASE === 'zed' ? stdout : stdout.replace(/^export /gm, '');
}

/** Whether the lab's Neutron runs: `neutron-lab.sh status` for Zed; a release lab's four Neutron daemons. */
async function netlabUp(): Promise<boolean> {
  try {
    const out = await netlab('status');
    if (LAB_RELEASE === 'zed') return true;
    const daemons = ['neutron-api', 'neutron-rpc-server', 'neutron-openvswitch-agent', 'neutron-dhcp-agent'];
    return daemons.every((d) => new RegExp(`^${d} +running`, 'm').test(out));
  } catch {
    return false;
  }
}

/** `fixed_ips` as OSC prints it (a list, or a Python-ish string in older clients). */
function fixedIps(p: Port): string[] {
  if (typeof p.fixed_ips === 'string') return [...p.fixed_ips.matchAll(/ip_address='([^']+)'/g)].map((m) => m[1]!);
  return p.fixed_ips.map((f) => f.ip_address);
}

/** The addresses `server show` lists on network `net`. */
function addressesOn(s: Server, net: string): string[] {
  const a = s.addresses;
  if (a === undefined) return [];
  if (typeof a === 'string') {
    const m = new RegExp(`${net}=([^;]+)`).exec(a);
    return m?.[1]?.split(',').map((x) => x.trim()) ?? [];
  }
  return a[net] ?? [];
}

async function portsOf(uuid: string): Promise<Port[]> {
  const rows = await openstackJson<Array<{ ID: string }>>(['port', 'list', '--device-id', uuid]);
  return await Promise.all(rows.map((r) => openstackJson<Port>(['port', 'show', r.ID])));
}

async function onePort(uuid: string): Promise<Port> {
  const ports = await portsOf(uuid);
  assert.equal(ports.length, 1, `one port of ${uuid}: ${JSON.stringify(ports)}`);
  return ports[0]!;
}

/** Runs `cmd` inside the guest `nova-<uuid>`; never throws: ok = exit status 0. */
async function inGuest(uuid: string, cmd: string[], timeoutMs = 30_000): Promise<{ ok: boolean; out: string }> {
  try {
    const { stdout } = await execFileP('docker', ['exec', `nova-${uuid}`, ...cmd], {
      env: SYSTEM_ENV,
      timeout: timeoutMs,
    });
    return { ok: true, out: stdout };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

const ping = (from: string, ip: string) => inGuest(from, ['busybox', 'ping', '-c', '3', '-W', '2', ip]);
// busybox 1.35's `wget -T` segfaults (static build): its own `timeout` bounds a GET that gets no answer
const httpGet = (from: string, ip: string) =>
  inGuest(from, ['busybox', 'timeout', '4', 'busybox', 'wget', '-qO-', `http://${ip}:8080/`]);

async function assertReaches(from: string, ip: string, what: string): Promise<void> {
  const p = await ping(from, ip);
  assert.ok(p.ok, `${what}: ping ${ip}: ${p.out}`);
  const h = await httpGet(from, ip);
  assert.ok(h.ok, `${what}: GET http://${ip}:8080/: ${h.out}`);
  assert.match(h.out, /hello from lab\/httpd/, what);
}

/**
 * Polls until `from` gets an answer from `ip` (after a replug Neutron's OVS agent takes a moment to wire the new
 * tap), then assertReaches; returns how long the first answer took, ms.
 */
async function reachesWithin(from: string, ip: string, what: string, timeoutMs = 30_000): Promise<number> {
  const t0 = performance.now();
  await pollUntil(
    async () => ((await inGuest(from, ['busybox', 'ping', '-c', '1', '-W', '1', ip])).ok ? true : undefined),
    { timeoutMs, intervalMs: 250, what: `${what}: an answer from ${ip}` },
  );
  const waited = performance.now() - t0;
  await assertReaches(from, ip, what);
  return waited;
}

/** The guest's interface `dev`: MAC and IPv4 addresses (busybox ip). */
async function guestLink(uuid: string, dev: string): Promise<{ mac: string; ips: string[] } | undefined> {
  const r = await inGuest(uuid, ['busybox', 'ip', '-o', 'addr', 'show', 'dev', dev]);
  if (!r.ok) return undefined;
  const mac = (await inGuest(uuid, ['cat', `/sys/class/net/${dev}/address`])).out.trim();
  return { mac, ips: [...r.out.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1]!) };
}

async function hostLinks(): Promise<string> {
  const { stdout } = await execFileP('ip', ['-o', 'link'], { env: SYSTEM_ENV });
  return stdout;
}

/** Nothing of port `portId` on this host: no tap/veth, no OVS port in the integration bridge. */
async function assertNoDevice(portId: string): Promise<void> {
  const tap = `tap${portId.slice(0, 11)}`;
  assert.doesNotMatch(await hostLinks(), new RegExp(`: ${tap}[@:]`), `host link ${tap} left`);
  assert.ok(!(await bridgePorts(BR_INT)).includes(tap), `OVS port ${tap} left in ${BR_INT}`);
}

async function assertGone(uuid: string, portIds: string[]): Promise<void> {
  assert.deepEqual(await portsOf(uuid), [], `no Neutron port with device_id ${uuid}`);
  for (const p of portIds) await assertNoDevice(p);
  assert.deepEqual(await deviceLeftovers(uuid), [], 'no device marked as the instance');
  const names = await docker(['ps', '-a', '--format', '{{.Names}}']);
  assert.ok(!names.split('\n').some((n) => n.startsWith(`nova-${uuid}`)), `a container of ${uuid} left: ${names}`);
}

/** The containers of instance `uuid` (its guest, its holder), any state, sorted by name. */
async function containersOfInstance(uuid: string): Promise<string[]> {
  const names = await docker(['ps', '-a', '--format', '{{.Names}}']);
  return names
    .split('\n')
    .filter((n) => n.startsWith(`nova-${uuid}`))
    .sort();
}

/**
 * Port `port` of instance `uuid` plugged once: eth0 inside with its MAC and address; one tap on the host and in
 * br-int, and no other device or OVS interface marked as the instance's (no stale veth or OVS port); one guest
 * container and one holder.
 */
async function assertPluggedOnce(uuid: string, port: Port, what: string): Promise<void> {
  const tap = `tap${port.id.slice(0, 11)}`;
  assert.deepEqual(
    await guestLink(uuid, 'eth0'),
    { mac: port.mac_address, ips: fixedIps(port) },
    `${what}: eth0 of ${uuid}`,
  );
  assert.deepEqual(
    (await bridgePorts(BR_INT)).filter((p) => p === tap),
    [tap],
    `${what}: ${tap} in ${BR_INT}`,
  );
  assert.deepEqual(
    (await ovsInterfacesOf(uuid)).map((r) => r.name),
    [tap],
    `${what}: the OVS interfaces marked as ${uuid}`,
  );
  assert.deepEqual(linksWithAlias(`nova-docker:${uuid}`), [tap], `${what}: the host devices marked as ${uuid}`);
  assert.deepEqual(
    await containersOfInstance(uuid),
    [`nova-${uuid}`, `nova-${uuid}-net`],
    `${what}: the containers of ${uuid}`,
  );
}

/** Polls until Neutron shows port `id` ACTIVE, bound to `host` (a replug takes it DOWN for a moment). */
async function waitPortActive(id: string, host: string): Promise<Port> {
  return await pollUntil(
    async () => {
      const p = await openstackJson<Port>(['port', 'show', id]);
      return p.status === 'ACTIVE' && (p.binding_host_id ?? p['binding:host_id']) === host ? p : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 1000, what: `port ${id} ACTIVE on ${host}` },
  );
}

/** The uuids a fault message names, other than the instance's own. */
function uuidsIn(text: string, instance: string): string[] {
  return [...new Set(text.match(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g) ?? [])].filter(
    (u) => u !== instance,
  );
}

describe(`e2e: Neutron ports through the real Nova (${LAB_RELEASE} lab)`, function () {
  this.timeout(900_000);

  before(async function () {
    if (process.getuid?.() !== 0) this.skip();
    if (!(await netlabUp())) this.skip();
    await stopFakeCompute();
  });
  const lab = useE2eLab(HOST);

  const NET = `nd-e2e-net-${RAND}`;
  const NET2 = `nd-e2e-net2-${RAND}`;
  const SG = `nd-e2e-sg-${RAND}`;
  let image = '';
  let sgId = '';
  let tcpRule = '';
  let defaultSg = '';
  let a = '';
  let b = '';
  const portOf: Record<string, Port> = {};

  // The setup's steps in parallel (each a few CLI calls, ~3-5 s apiece on a loaded 2-core machine: run one
  // after the other they took a minute); its undo is one step that deletes what was made, also in parallel.
  before(async () => {
    const t0 = performance.now();
    const made: Array<() => Promise<unknown>> = [];
    lab.cleanup.defer(async () => await Promise.all(made.map(async (undo) => await undo().catch(() => undefined))));
    image = `nd-httpd-${RAND}`;
    const network = async (net: string, cidr: string) => {
      await openstack(['network', 'create', net]);
      made.push(() => openstack(['network', 'delete', net]));
      await openstack([
        'subnet',
        'create',
        '--network',
        net,
        '--subnet-range',
        `${cidr}.0/24`,
        '--allocation-pool',
        `start=${cidr}.10,end=${cidr}.99`,
        `${net}-sub`,
      ]);
      // a port's DHCP provisioning block (case 6b) needs the network on the DHCP agent
      await pollUntil(
        async () =>
          (await openstackJson<unknown[]>(['network', 'agent', 'list', '--network', net])).length > 0
            ? true
            : undefined,
        { timeoutMs: 90_000, intervalMs: 1000, what: `network ${net} hosted by the lab's DHCP agent` },
      );
    };
    const group = async () => {
      sgId = (await openstackJson<{ id: string }>(['security', 'group', 'create', SG])).id;
      made.push(() => openstack(['security', 'group', 'delete', sgId]));
      const rule = async (protocol: string) =>
        (
          await openstackJson<{ id: string }>([
            'security',
            'group',
            'rule',
            'create',
            '--ingress',
            '--protocol',
            protocol,
            '--remote-group',
            sgId,
            sgId,
          ])
        ).id;
      [, tcpRule] = await Promise.all([rule('icmp'), rule('tcp')]);
    };
    const adminDefaultGroup = async () => {
      const project = (await openstackJson<{ id: string }>(['project', 'show', 'admin'])).id;
      const groups = await openstackJson<Array<{ ID: string; Name: string }>>([
        'security',
        'group',
        'list',
        '--project',
        project,
      ]);
      defaultSg = groups.find((g) => g.Name === 'default')?.ID ?? '';
      assert.ok(defaultSg, 'the admin project has a default security group');
    };
    // allSettled: no step may still be making something once the after hook's cleanup ran
    const timed = async (what: string, step: Promise<unknown>) => {
      await step;
      timing(`  setup ${what}`, performance.now() - t0);
    };
    const results = await Promise.allSettled([
      timed('image', lab.uploadImage(image, 'lab/httpd:latest')),
      timed(NET, network(NET, `10.253.${R}`)),
      timed(NET2, network(NET2, `10.254.${R}`)),
      timed('security group', group()),
      timed('default group', adminDefaultGroup()),
    ]);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    timing('setup: image, 2 networks, security group (in parallel)', performance.now() - t0);
  });

  after(() => {
    console.log(`      network e2e timings:\n${timings.map((t) => `        ${t}`).join('\n')}`);
  });

  async function bootOn(prefix: string, networks: string[] = [NET]): Promise<Server> {
    const t0 = performance.now();
    const s = (await lab.bootActive(image, prefix, { networks, securityGroups: [SG] })) as Server;
    timing(`${prefix}: API -> ACTIVE, one port`, performance.now() - t0);
    return s;
  }

  it('1. a and b with --network --security-group: ACTIVE, addresses shown, b answers ping and HTTP from a', async () => {
    const t0 = performance.now();
    const none = await lab.bootActive(image, 'nd-net-none');
    timing('nd-net-none: API -> ACTIVE, --nic none', performance.now() - t0);
    await lab.deleteServer(none.id);

    const sa = await bootOn('nd-net-a');
    a = sa.id;
    const sb = await bootOn('nd-net-b');
    b = sb.id;
    for (const s of [sa, sb]) {
      const port = await onePort(s.id);
      portOf[s.id] = port;
      assert.equal(port.status, 'ACTIVE', JSON.stringify(port));
      assert.equal(port.binding_host_id ?? port['binding:host_id'], HOST);
      const ips = fixedIps(port);
      assert.equal(ips.length, 1);
      const shown = await openstackJson<Server>(['server', 'show', s.id]);
      assert.deepEqual(addressesOn(shown, NET), ips, `server show addresses: ${JSON.stringify(shown.addresses)}`);
      const eth0 = await guestLink(s.id, 'eth0');
      assert.deepEqual(eth0, { mac: port.mac_address, ips }, `eth0 of ${s.id}`);
      const t = plugTiming(lab.agent().log(), s.id)?.plugToEventMs;
      if (t !== undefined) timing(`${s.id.slice(0, 8)}: plug -> network-vif-plugged received`, t);
    }
    await assertReaches(a, fixedIps(portOf[b]!)[0]!, 'a -> b');
    await assertReaches(b, fixedIps(portOf[a]!)[0]!, 'b -> a');
  });

  /** b as case 1 left it: a reaches it (ping, HTTP), its one port plugged once with the same MAC and address. */
  async function assertBHolds(what: string): Promise<void> {
    timing(`${what}: a -> b answering after`, await reachesWithin(a, fixedIps(portOf[b]!)[0]!, `${what}: a -> b`));
    await assertPluggedOnce(b, portOf[b]!, what);
  }

  /** Set while case 2e has dockerd stopped: the hook starts it again when the case failed (the rest need it). */
  let dockerdDown = false;
  afterEach(async () => {
    if (!dockerdDown) return;
    await dockerd.ensureUp();
    dockerdDown = false;
  });

  /** Whether b's httpd answers a: not while b is frozen (its kernel still acks the connection, nothing replies). */
  async function bServes(): Promise<boolean> {
    return (await httpGet(a, fixedIps(portOf[b]!)[0]!)).ok;
  }

  it('2. still holds after stop/start, reboot --hard and an agent restart (one tap, one OVS port)', async () => {
    assert.ok(a && b, 'case 1 booted a and b');
    await openstack(['server', 'stop', b]);
    await waitServer(b, (s) => s.status === 'SHUTOFF', 'SHUTOFF');
    await openstack(['server', 'start', b]);
    await waitServer(b, (s) => s.status === 'ACTIVE', 'ACTIVE');
    await assertBHolds('after stop/start');

    await openstack(['server', 'reboot', '--hard', '--wait', b]);
    await waitServer(b, (s) => s.status === 'ACTIVE', 'ACTIVE');
    await assertBHolds('after reboot --hard');

    await lab.stop();
    await lab.start();
    await assertBHolds('after an agent restart');
    await assertReaches(b, fixedIps(portOf[a]!)[0]!, 'b -> a after an agent restart');
  });

  it('2b. pause/unpause and suspend/resume of b: its port stays plugged while frozen, b answers after each', async () => {
    assert.ok(a && b, 'case 1 booted a and b');
    const tapB = `tap${portOf[b]!.id.slice(0, 11)}`;
    for (const [freeze, thaw, frozen] of [
      ['pause', 'unpause', 'PAUSED'],
      ['suspend', 'resume', 'SUSPENDED'],
    ] as const) {
      const t0 = performance.now();
      await openstack(['server', freeze, b]);
      await waitServer(b, (s) => s.status === frozen && !s['OS-EXT-STS:task_state'], frozen);
      timing(`${freeze} of b -> ${frozen}`, performance.now() - t0);
      assert.equal(await bServes(), false, `${frozen}: b's httpd is frozen`);
      assert.deepEqual(linksWithAlias(`nova-docker:${b}`), [tapB], `${frozen}: b's tap stays`);
      assert.ok((await bridgePorts(BR_INT)).includes(tapB), `${frozen}: ${tapB} stays in ${BR_INT}`);
      const t1 = performance.now();
      await openstack(['server', thaw, b]);
      await waitServer(b, (s) => s.status === 'ACTIVE' && !s['OS-EXT-STS:task_state'], 'ACTIVE');
      timing(`${thaw} of b -> ACTIVE`, performance.now() - t1);
      await assertBHolds(`after ${freeze}/${thaw}`);
    }
  });

  it('2c. rebuild of b (same image): ACTIVE, a new guest on the same port, MAC and address, plugged once', async () => {
    assert.ok(a && b, 'case 1 booted a and b');
    const guestBefore = await docker(['inspect', '--format', '{{.Id}}', `nova-${b}`]);
    const t0 = performance.now();
    await openstack(['server', 'rebuild', '--image', image, '--wait', b], 300_000);
    const s = await waitServer(
      b,
      (x) => (x.status === 'ACTIVE' && !x['OS-EXT-STS:task_state']) || x.status === 'ERROR',
      'rebuilt',
    );
    timing('rebuild of b -> ACTIVE', performance.now() - t0);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));
    assert.equal(s['OS-EXT-SRV-ATTR:host'], HOST);
    assert.notEqual(await docker(['inspect', '--format', '{{.Id}}', `nova-${b}`]), guestBefore, 'a new guest');
    const port = await onePort(b);
    assert.equal(port.id, portOf[b]!.id, 'the same port');
    assert.equal(port.mac_address, portOf[b]!.mac_address);
    assert.deepEqual(fixedIps(port), fixedIps(portOf[b]!));
    await waitPortActive(port.id, HOST);
    await assertBHolds('after rebuild');
    await assertReaches(b, fixedIps(portOf[a]!)[0]!, 'b -> a after rebuild');
  });

  it('2d. resize of b on its host and confirm: VERIFY_RESIZE then ACTIVE with the new flavor, the same port, plugged once', async () => {
    assert.ok(a && b, 'case 1 booted a and b');
    // only this host has the trait the flavor requires: the scheduler cannot pick another agent of the lab
    // (Neutron binds the port on this host only), and the lab's Nova allows a resize to the same host
    const trait = `CUSTOM_ND_NET_${RAND.toUpperCase()}`;
    const flavor = `nd-net-rs-${RAND}`;
    const rp = await providerUuid(HOST);
    await openstack(['--os-placement-api-version', '1.6', 'trait', 'create', trait]);
    lab.cleanup.defer(() => openstack(['--os-placement-api-version', '1.6', 'trait', 'delete', trait]));
    await setProviderTraits(rp, (t) => [...t, trait]);
    lab.cleanup.defer(() => setProviderTraits(rp, (t) => t.filter((x) => x !== trait)));
    await openstack([
      'flavor',
      'create',
      '--ram',
      '256',
      '--vcpus',
      '2',
      '--disk',
      '1',
      '--property',
      `trait:${trait}=required`,
      flavor,
    ]);
    lab.cleanup.defer(() => openstack(['flavor', 'delete', flavor]));

    const t0 = performance.now();
    await openstack(['server', 'resize', '--flavor', flavor, b]);
    const v = await waitServer(
      b,
      (x) => ['VERIFY_RESIZE', 'ERROR', 'ACTIVE'].includes(x.status) && !x['OS-EXT-STS:task_state'],
      'VERIFY_RESIZE',
      180_000,
    );
    timing('resize of b -> VERIFY_RESIZE', performance.now() - t0);
    assert.equal(v.status, 'VERIFY_RESIZE', JSON.stringify(v.fault));
    assert.equal(v['OS-EXT-SRV-ATTR:host'], HOST);
    await assertBHolds('in VERIFY_RESIZE');
    await openstack(['server', 'resize', 'confirm', b]);
    const s = (await waitServer(
      b,
      (x) => ['ACTIVE', 'ERROR'].includes(x.status) && !x['OS-EXT-STS:task_state'],
      'ACTIVE after confirm',
    )) as Server & { flavor?: unknown };
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));
    assert.match(JSON.stringify(s.flavor), new RegExp(flavor), 'the new flavor');
    const limits = await docker(['inspect', '--format', '{{.HostConfig.Memory}}', `nova-${b}`]);
    assert.equal(Number(limits), 256 * 1024 * 1024, "the guest's memory limit is the new flavor's");
    const port = await onePort(b);
    assert.equal(port.id, portOf[b]!.id, 'the same port');
    assert.deepEqual(fixedIps(port), fixedIps(portOf[b]!));
    await waitPortActive(port.id, HOST);
    await assertBHolds('after resize confirm');
  });

  it('2e. a dockerd restart: a (running) ends SHUTOFF, b (suspended) stays SUSPENDED; start and resume plug them again', async () => {
    assert.ok(a && b, 'case 1 booted a and b');
    const ipA = fixedIps(portOf[a]!)[0]!;
    await openstack(['server', 'suspend', b]);
    await waitServer(b, (s) => s.status === 'SUSPENDED' && !s['OS-EXT-STS:task_state'], 'SUSPENDED');

    const t0 = performance.now();
    dockerdDown = true;
    await dockerd.stop();
    await dockerd.start();
    dockerdDown = false;
    timing('dockerd stop + start', performance.now() - t0);
    // without live-restore the Engine stopped every container, holders included; no restart policy brings them back
    for (const id of [a, b]) {
      for (const name of [`nova-${id}`, `nova-${id}-net`]) {
        assert.equal(await docker(['inspect', '--format', '{{.State.Running}}', name]), 'false', name);
      }
    }
    const t1 = performance.now();
    await waitServer(a, (s) => s.status === 'SHUTOFF' && !s['OS-EXT-STS:task_state'], 'SHUTOFF', 180_000);
    timing('dockerd up -> a SHUTOFF', performance.now() - t1);
    // Nova's power sync leaves a SUSPENDED instance so (its guest is gone: power state Shutdown)
    const sb = await waitServer(
      b,
      (s) => [4, 'Shutdown'].includes(s['OS-EXT-STS:power_state'] ?? ''),
      'power state Shutdown',
      180_000,
    );
    assert.equal(sb.status, 'SUSPENDED');

    const t2 = performance.now();
    await openstack(['server', 'start', a]);
    await openstack(['server', 'resume', b]);
    for (const id of [a, b]) {
      await waitServer(id, (s) => s.status === 'ACTIVE' && !s['OS-EXT-STS:task_state'], 'ACTIVE');
    }
    timing('start a + resume b -> both ACTIVE', performance.now() - t2);
    for (const id of [a, b]) await waitPortActive(portOf[id]!.id, HOST);
    await assertBHolds('after a dockerd restart');
    await assertPluggedOnce(a, portOf[a]!, 'after a dockerd restart');
    await reachesWithin(b, ipA, 'b -> a after a dockerd restart');
  });

  it('3. a security group rule change takes effect; a changed address gets no traffic (anti-spoofing)', async () => {
    assert.ok(a && b, 'case 1 booted a and b');
    const ipB = fixedIps(portOf[b]!)[0]!;
    await openstack(['security', 'group', 'rule', 'delete', tcpRule]);
    await pollUntil(async () => ((await httpGet(a, ipB)).ok ? undefined : true), {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: 'HTTP a -> b blocked once the tcp rule is gone',
    });
    assert.ok((await ping(a, ipB)).ok, 'ping still passes (icmp rule kept)');
    tcpRule = (
      await openstackJson<{ id: string }>([
        'security',
        'group',
        'rule',
        'create',
        '--ingress',
        '--protocol',
        'tcp',
        '--remote-group',
        sgId,
        sgId,
      ])
    ).id;
    await pollUntil(async () => ((await httpGet(a, ipB)).ok ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: 'HTTP a -> b passing again with the tcp rule back',
    });

    // b takes another address of the subnet (outside the allocation pool) in place of its port's
    const spoofed = ipB.replace(/\.\d+$/, '.200');
    const pid = await docker(['inspect', '--format', '{{.State.Pid}}', `nova-${b}-net`]);
    const nsIp = async (...args: string[]) =>
      await execFileP('nsenter', ['-t', pid, '-n', 'ip', ...args], { env: SYSTEM_ENV });
    // deleted first: deleting a primary address takes its secondaries with it
    await nsIp('addr', 'del', `${ipB}/24`, 'dev', 'eth0');
    await nsIp('addr', 'add', `${spoofed}/24`, 'dev', 'eth0');
    try {
      const { stdout } = await nsIp('-o', '-4', 'addr', 'show', 'dev', 'eth0');
      assert.match(stdout, new RegExp(`inet ${spoofed.replace(/\./g, '\\.')}/24`), stdout);
      const p = await ping(a, spoofed);
      assert.ok(!p.ok, `b's spoofed address ${spoofed} must not answer: ${p.out}`);
      assert.ok(!(await httpGet(a, spoofed)).ok, `no HTTP from the spoofed address ${spoofed}`);
      // the control: with port security off on b's port the same address answers, so the block was it
      const portB = portOf[b]!.id;
      await openstack(['port', 'set', '--no-security-group', '--disable-port-security', portB]);
      try {
        await pollUntil(async () => ((await ping(a, spoofed)).ok ? true : undefined), {
          timeoutMs: 60_000,
          intervalMs: 500,
          what: `the spoofed address ${spoofed} answering with port security off`,
        });
      } finally {
        await openstack(['port', 'set', '--enable-port-security', '--security-group', sgId, portB]);
      }
    } finally {
      await nsIp('addr', 'del', `${spoofed}/24`, 'dev', 'eth0');
      await nsIp('addr', 'add', `${ipB}/24`, 'dev', 'eth0');
    }
    // the port's own address answers again: the block above was the spoofing, not a broken b
    await pollUntil(async () => ((await ping(a, ipB)).ok ? true : undefined), {
      timeoutMs: 30_000,
      intervalMs: 500,
      what: "b's own address answering again",
    });
  });

  it('7. server add/remove port and network: eth1 appears with its address and answers; removed, it is gone', async () => {
    assert.ok(a && b, 'case 1 booted a and b');
    const userPort = await openstackJson<Port>([
      'port',
      'create',
      '--network',
      NET2,
      '--security-group',
      sgId,
      '--security-group',
      defaultSg,
      `nd-e2e-userport-${RAND}`,
    ]);
    lab.cleanup.defer(() => openstack(['port', 'delete', userPort.id]));
    await openstack(['server', 'add', 'port', a, userPort.id]);
    // b's port on NET2 is Nova's (the project's default group)
    await openstack(['server', 'add', 'network', b, NET2]);

    const bNet2 = (await portsOf(b)).find((p) => p.id !== portOf[b]!.id);
    assert.ok(bNet2, `b has a second port: ${JSON.stringify(await portsOf(b))}`);
    const ipA2 = fixedIps(userPort)[0]!;
    const ipB2 = fixedIps(bNet2)[0]!;
    assert.deepEqual(await guestLink(a, 'eth1'), { mac: userPort.mac_address, ips: [ipA2] }, 'eth1 of a');
    assert.deepEqual(await guestLink(b, 'eth1'), { mac: bNet2.mac_address, ips: [ipB2] }, 'eth1 of b');
    const shown = await openstackJson<Server>(['server', 'show', a]);
    assert.deepEqual(addressesOn(shown, NET2), [ipA2], `server show: ${JSON.stringify(shown.addresses)}`);
    await assertReaches(b, ipA2, 'b -> a over the attached interfaces');

    await openstack(['server', 'remove', 'port', a, userPort.id]);
    await openstack(['server', 'remove', 'network', b, NET2]);
    await pollUntil(async () => ((await guestLink(a, 'eth1')) === undefined ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: 'eth1 gone from a',
    });
    await pollUntil(async () => ((await guestLink(b, 'eth1')) === undefined ? true : undefined), {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: 'eth1 gone from b',
    });
    // the user's port stays, unbound; Nova's is deleted
    const kept = await openstackJson<Port>(['port', 'show', userPort.id]);
    assert.equal(kept.device_id, '', JSON.stringify(kept));
    assert.ok(!(kept.binding_host_id ?? kept['binding:host_id']), JSON.stringify(kept));
    await assert.rejects(openstack(['port', 'show', bNet2.id]), `b's NET2 port ${bNet2.id} deleted`);
    await assertNoDevice(userPort.id);
    await assertNoDevice(bNet2.id);
    await assertReaches(a, fixedIps(portOf[b]!)[0]!, 'a -> b on eth0 still');
  });

  it('4. delete leaves no port, tap, veth, OVS port or container', async () => {
    assert.ok(a && b, 'case 1 booted a and b');
    for (const id of [a, b]) {
      const port = portOf[id]!.id;
      await lab.deleteServer(id);
      await assertGone(id, [port]);
    }
  });

  it('5. nova boot with no --nic in a project with one network: ACTIVE with an address there', async () => {
    const pname = `nd-e2e-net-${RAND}`;
    const project = (await openstackJson<{ id: string }>(['project', 'create', pname])).id;
    lab.cleanup.defer(() => openstack(['project', 'delete', project]));
    for (const role of ['member', 'admin']) {
      await openstack(['role', 'add', '--project', project, '--user', 'admin', role]);
    }
    const pnet = `nd-e2e-pnet-${RAND}`;
    await openstack(['network', 'create', '--project', project, pnet]);
    lab.cleanup.defer(async () => {
      await openstack(['network', 'delete', pnet]);
      // Neutron made the project's default group on its first port
      const groups = await openstackJson<Array<{ ID: string }>>(['security', 'group', 'list', '--project', project]);
      for (const g of groups) await openstack(['security', 'group', 'delete', g.ID]).catch(() => undefined);
    });
    await openstack([
      'subnet',
      'create',
      '--project',
      project,
      '--network',
      pnet,
      '--subnet-range',
      `10.250.${R}.0/24`,
      `${pnet}-sub`,
    ]);
    // the lab's shared network is every project's too: unshared while this boots, or there are two
    const labNet = (await netlab('env')).match(/^NETLAB_NETWORK=(.*)$/m)?.[1] ?? 'nova-docker-lab-net';
    await openstack(['network', 'set', '--no-share', labNet]);
    let id: string;
    try {
      const out = await nova([
        '--os-project-name',
        pname,
        '--os-project-id',
        project,
        'boot',
        '--image',
        image,
        '--flavor',
        'm1.tiny',
        '--availability-zone',
        `nova:${HOST}`,
        `test-${RAND}`,
      ]);
      id = /^\|\s*id\s*\|\s*([0-9a-f-]{36})\s*\|/m.exec(out)?.[1] ?? '';
      assert.ok(id, `nova boot printed an id:\n${out}`);
      lab.cleanup.server(id);
    } finally {
      await openstack(['network', 'set', '--share', labNet]);
    }
    const s = (await waitServer(id, (x) => ['ACTIVE', 'ERROR'].includes(x.status), 'ACTIVE or ERROR')) as Server;
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));
    const port = await onePort(id);
    assert.deepEqual(addressesOn(s, pnet), fixedIps(port), JSON.stringify(s.addresses));
    assert.match(fixedIps(port)[0]!, new RegExp(`^10\\.250\\.${R}\\.`));
    await lab.deleteServer(id);
    await assertGone(id, [port.id]);
  });

  it('6a. a port whose binding fails: ERROR, a fault naming the port, no port left', async () => {
    await lab.start(NONET);
    await discoverHosts();
    const s0 = await lab.boot(image, 'nd-net-nobind', { host: NONET, networks: [NET], wait: false });
    const s = await waitServer(s0.id, (x) => ['ACTIVE', 'ERROR'].includes(x.status), 'ERROR');
    assert.equal(s.status, 'ERROR');
    const fault = `${s.fault?.message ?? ''} ${JSON.stringify(s.fault)}`;
    const named = uuidsIn(fault, s.id);
    assert.ok(named.length > 0, `the fault names the port: ${fault}`);
    assert.match(fault, /bind/i, fault);
    for (const p of named) await assert.rejects(openstack(['port', 'show', p]), `port ${p} deleted`);
    assert.deepEqual(await portsOf(s.id), []);
    await lab.deleteServer(s.id);
    await assertGone(s.id, named);
  });

  it('6b. network-vif-plugged never comes (vif_plugging_timeout = 5): ERROR naming the port, nothing left', async () => {
    await lab.stop();
    await lab.start(HOST, '\n[DEFAULT]\nvif_plugging_timeout = 5\n');
    // With no DHCP agent the port's DHCP provisioning block is never cleared, so it never goes ACTIVE. Neutron
    // (Zed) adds that block only to a port created with a device_owner: the ports Nova creates have none at
    // create time (its update sets it), so this case brings its own port, made as a compute port.
    await netlab('daemon', 'neutron-dhcp-agent', 'stop');
    try {
      const port = await openstackJson<Port>([
        'port',
        'create',
        '--network',
        NET,
        '--security-group',
        sgId,
        '--device-owner',
        'compute:nova',
        `nd-e2e-noevent-${RAND}`,
      ]);
      lab.cleanup.defer(() => openstack(['port', 'delete', port.id]));
      const s0 = await lab.boot(image, 'nd-net-noevent', { ports: [port.id], wait: false });
      const s = await waitServer(s0.id, (x) => ['ACTIVE', 'ERROR'].includes(x.status), 'ERROR', 180_000);
      assert.equal(s.status, 'ERROR');
      const fault = `${s.fault?.message ?? ''} ${JSON.stringify(s.fault)}`;
      assert.ok(fault.includes(port.id), `the fault names port ${port.id}: ${fault}`);
      // the user's port stays, unbound from the instance; nothing plugged is left
      const kept = await openstackJson<Port>(['port', 'show', port.id]);
      assert.equal(kept.device_id, '', JSON.stringify(kept));
      assert.ok(!(kept.binding_host_id ?? kept['binding:host_id']), JSON.stringify(kept));
      await assertNoDevice(port.id);
      await lab.deleteServer(s.id);
      await assertGone(s.id, [port.id]);
    } finally {
      await netlab('daemon', 'neutron-dhcp-agent', 'start');
      await lab.stop();
      await lab.start(HOST, '');
    }
  });
});
