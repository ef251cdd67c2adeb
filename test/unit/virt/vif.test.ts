import assert from 'node:assert/strict';
import { NovaError } from '../../../src/common/errors.js';
import {
  type HostNet,
  HostCommandError,
  VifPlugger,
  bridgeOf,
  hostLinkBatch,
  hostsFile,
  inNetns,
  nameserversOf,
  netnsBatch,
  ovsAddPortArgs,
  resolvConf,
  tapAlias,
  tapName,
  unpluggableReason,
} from '../../../src/virt/docker/vif.js';
import type { VifModel } from '../../../src/virt/network-model.js';

const UUID = '6f1d0a3e-0000-4000-8000-000000000001';

export function makeVif(over: Partial<VifModel> = {}, n = 1): VifModel {
  const id = `3f1c0b2a-9d00-4000-8000-00000000000${n}`;
  return {
    id,
    address: `FA:16:3E:00:00:0${n}`,
    type: 'ovs',
    details: { port_filter: true, connectivity: 'l2' },
    devname: `tap${id}`.slice(0, 14),
    ovs_interfaceid: id,
    qbh_params: null,
    qbg_params: null,
    active: false,
    vnic_type: 'normal',
    profile: {},
    preserve_on_delete: false,
    meta: {},
    network: {
      id: 'net-1',
      bridge: 'br-int',
      label: 'private',
      meta: { mtu: 1450, tenant_id: 'p' },
      subnets: [
        {
          cidr: '10.0.0.0/26',
          version: 4,
          gateway: { address: '10.0.0.1', type: 'gateway', version: 4, meta: {} },
          dns: [{ address: '10.0.0.2', type: 'dns', version: 4, meta: {} }],
          routes: [
            {
              cidr: '192.168.9.0/24',
              gateway: { address: '10.0.0.9', type: 'gateway', version: 4, meta: {} },
              interface: null,
              meta: {},
            },
          ],
          ips: [{ address: `10.0.0.${4 + n}`, type: 'fixed', version: 4, meta: {} }],
          meta: { dhcp_server: '10.0.0.3' },
        },
        {
          cidr: 'fd00:1::/64',
          version: 6,
          gateway: { address: 'fd00:1::1', type: 'gateway', version: 6, meta: {} },
          dns: [],
          routes: [],
          ips: [{ address: `fd00:1::${4 + n}`, type: 'fixed', version: 6, meta: {} }],
          meta: {},
        },
      ],
    },
    ...over,
  };
}

/** Records every command; `fail` makes a command whose argv contains that string fail. */
class RecordingNet implements HostNet {
  calls: Array<{ argv: string[]; input?: string }> = [];
  links = new Map<string, string>();
  /** OVS ports → their external_ids:vm-uuid */
  ovs = new Map<string, string>();
  sysctls: Array<[string, string]> = [];
  fail: string | undefined;

  run(argv: readonly string[], input?: string): Promise<string> {
    this.calls.push({ argv: [...argv], ...(input !== undefined ? { input } : {}) });
    const line = `${argv.join(' ')}\n${input ?? ''}`;
    if (this.fail && line.includes(this.fail)) return Promise.reject(new HostCommandError(argv, 2, 'RTNETLINK: boom'));
    if (argv[0] === 'ip' && argv[1] === '-batch') {
      for (const m of (input ?? '').matchAll(/^link add (\S+)/gm)) this.links.set(m[1]!, '');
      for (const m of (input ?? '').matchAll(/^link set (\S+) alias (\S+)/gm)) this.links.set(m[1]!, m[2]!);
      for (const m of (input ?? '').matchAll(/^link del (\S+)/gm)) this.links.delete(m[1]!);
    }
    if (argv[0] === 'ip' && argv[1] === 'link' && argv[2] === 'del') this.links.delete(argv[3]!);
    if (argv[0] === 'ovs-vsctl') {
      if (argv.includes('find')) {
        const want = argv.at(-1)!.replace('external_ids:vm-uuid=', '');
        return Promise.resolve(
          [...this.ovs]
            .filter(([, u]) => u === want)
            .map(([p]) => `${p}\n`)
            .join(''),
        );
      }
      for (let i = 0; i < argv.length; i++) {
        if (argv[i] === 'add-port') this.ovs.set(argv[i + 2]!, '');
        if (argv[i] === 'set' && argv[i + 1] === 'Interface') {
          const vm = argv.slice(i).find((a) => a.startsWith('external_ids:vm-uuid='));
          if (vm) this.ovs.set(argv[i + 2]!, vm.split('=')[1]!);
        }
        if (argv[i] === 'del-port') this.ovs.delete(argv[i + 1]!);
      }
    }
    return Promise.resolve('');
  }

  linkAlias(name: string): Promise<string | undefined> {
    return Promise.resolve(this.links.get(name));
  }

  setSysctl(key: string, value: string): Promise<void> {
    this.sysctls.push([key, value]);
    return Promise.resolve();
  }
}

describe('virt/docker/vif: naming and commands', () => {
  it('names: tap<port[:11]>, the alias, the bridge from the binding or br-int', () => {
    const vif = makeVif();
    assert.equal(tapName(vif), 'tap3f1c0b2a-9d');
    assert.equal(tapName({ ...vif, devname: '' }), 'tap3f1c0b2a-9d');
    assert.equal(tapAlias(UUID), `nova-docker:${UUID}`);
    assert.equal(bridgeOf(vif), 'br-int');
    assert.equal(bridgeOf(makeVif({ details: { bridge_name: 'br-vif-it' } })), 'br-vif-it');
    assert.equal(bridgeOf(vif, 'br-x'), 'br-x');
  });

  it('refuses what it cannot plug, saying why', () => {
    assert.equal(unpluggableReason(makeVif()), undefined);
    assert.match(unpluggableReason(makeVif({ type: 'bridge' }))!, /vif type 'bridge' is not supported/);
    assert.match(unpluggableReason(makeVif({ type: 'binding_failed' }))!, /binding failed/);
    assert.match(unpluggableReason(makeVif({ vnic_type: 'direct' }))!, /vnic_type 'direct'/);
    assert.match(unpluggableReason(makeVif({ address: 'nope' }))!, /invalid MAC/);
  });

  it('host batch: veth with the peer made in the namespace as eth<i>, MAC and MTU, alias, up', () => {
    assert.equal(
      hostLinkBatch(UUID, 4242, [{ vif: makeVif(), index: 0 }], ['tapold']),
      'link del tapold\n' +
        'link add tap3f1c0b2a-9d mtu 1450 type veth peer name eth0 netns 4242 address fa:16:3e:00:00:01 mtu 1450\n' +
        `link set tap3f1c0b2a-9d alias nova-docker:${UUID}\n` +
        'link set tap3f1c0b2a-9d up\n',
    );
    const noMtu = makeVif();
    noMtu.network.meta = {};
    assert.match(
      hostLinkBatch(UUID, 1, [{ vif: noMtu, index: 2 }]),
      /^link add tap3f1c0b2a-9d type veth peer name eth2 netns 1 address fa:16:3e:00:00:01\n/,
    );
  });

  it('ovs-vsctl: --may-exist add-port with Nova’s external ids, one transaction for all', () => {
    assert.deepEqual(ovsAddPortArgs(UUID, [makeVif({ details: { bridge_name: 'br-vif-it' } })], 'br-int'), [
      'ovs-vsctl',
      '--timeout=30',
      '--',
      '--may-exist',
      'add-port',
      'br-vif-it',
      'tap3f1c0b2a-9d',
      '--',
      'set',
      'Interface',
      'tap3f1c0b2a-9d',
      'external_ids:iface-id=3f1c0b2a-9d00-4000-8000-000000000001',
      'external_ids:iface-status=active',
      'external_ids:attached-mac=fa:16:3e:00:00:01',
      `external_ids:vm-uuid=${UUID}`,
    ]);
    assert.equal(ovsAddPortArgs(UUID, [makeVif(), makeVif({}, 2)], 'br-int').filter((a) => a === 'add-port').length, 2);
  });

  it('inside: lo up, every fixed IP (v6 nodad), default routes from the first VIF only, host routes', () => {
    const batch = netnsBatch(
      [
        { vif: makeVif(), index: 0 },
        { vif: makeVif({}, 2), index: 1 },
      ],
      true,
    );
    assert.equal(
      batch,
      [
        'link set lo up',
        'link set eth0 up',
        'addr add 10.0.0.5/26 dev eth0',
        'addr add fd00:1::5/64 dev eth0 nodad',
        'link set eth1 up',
        'addr add 10.0.0.6/26 dev eth1',
        'addr add fd00:1::6/64 dev eth1 nodad',
        'route replace default via 10.0.0.1 dev eth0',
        'route replace ::/0 via fd00:1::1 dev eth0',
        'route replace 192.168.9.0/24 via 10.0.0.9 dev eth0',
        'route replace 192.168.9.0/24 via 10.0.0.9 dev eth1',
        '',
      ].join('\n'),
    );
    assert.doesNotMatch(netnsBatch([{ vif: makeVif(), index: 0 }], false), /default/);
    const noGw = makeVif();
    noGw.network.subnets = noGw.network.subnets.map((s) => ({ ...s, gateway: null }));
    assert.doesNotMatch(netnsBatch([{ vif: noGw, index: 0 }], true), /default|::\/0/);
  });

  it('DNS: the subnets’ servers, else the DHCP server; hosts: the hostname on the first fixed IP', () => {
    assert.deepEqual(nameserversOf([makeVif()]), ['10.0.0.2']);
    const noDns = makeVif();
    noDns.network.subnets = noDns.network.subnets.map((s) => ({ ...s, dns: [] }));
    assert.deepEqual(nameserversOf([noDns]), ['10.0.0.3']);
    assert.match(resolvConf([makeVif()]), /^nameserver 10\.0\.0\.2$/m);
    assert.match(resolvConf([]), /no DNS server/);
    assert.match(hostsFile('vm-a', [makeVif()]), /^10\.0\.0\.5\tvm-a$/m);
  });
});

describe('virt/docker/vif: VifPlugger', () => {
  it('plug: few spawns, host batch and the OVS stale-port delete, offloads on both ends, OVS add, the inside batch', async () => {
    const net = new RecordingNet();
    const p = new VifPlugger(net, { defaultBridge: 'br-int' });
    await p.plug(UUID, 4242, [{ vif: makeVif(), index: 0 }]);
    const argvs = net.calls.map((c) => c.argv.join(' '));
    assert.deepEqual(argvs, [
      'ip -batch -',
      'ovs-vsctl --timeout=30 -- --if-exists del-port tap3f1c0b2a-9d',
      'ethtool -K tap3f1c0b2a-9d tx off tso off gso off',
      `nsenter --net --target=4242 -- ethtool -K eth0 tx off tso off gso off`,
      ovsAddPortArgs(UUID, [makeVif()], 'br-int').join(' '),
      'nsenter --net --target=4242 -- ip -batch -',
    ]);
    assert.deepEqual(inNetns(1, ['x']), ['nsenter', '--net', '--target=1', '--', 'x']);
    assert.deepEqual(net.sysctls, [['net.ipv6.conf.tap3f1c0b2a-9d.disable_ipv6', '1']]);
    assert.deepEqual([...net.ovs], [['tap3f1c0b2a-9d', UUID]]);
  });

  it('a plug that fails inside removes the veth and the OVS port and names the port', async () => {
    const net = new RecordingNet();
    net.fail = 'addr add';
    const p = new VifPlugger(net);
    await assert.rejects(p.plug(UUID, 4242, [{ vif: makeVif(), index: 0 }]), (err: unknown) => {
      assert.ok(err instanceof NovaError);
      assert.equal(err.novaClass, 'VirtualInterfacePlugException');
      assert.match(err.message, /port 3f1c0b2a-9d00-4000-8000-000000000001: configuring addresses/);
      return true;
    });
    assert.equal(net.links.size, 0, 'the veth is gone');
    assert.equal(net.ovs.size, 0, 'the OVS port is gone');
  });

  it('a tap of somebody else under the name: refused, left alone', async () => {
    const net = new RecordingNet();
    net.links.set('tap3f1c0b2a-9d', 'something-else');
    await assert.rejects(new VifPlugger(net).plug(UUID, 1, [{ vif: makeVif(), index: 0 }]), /not this instance's/);
    assert.equal(net.links.get('tap3f1c0b2a-9d'), 'something-else');
    assert.equal(net.calls.length, 0);
  });

  it('a stale tap of ours is replaced in the same batch', async () => {
    const net = new RecordingNet();
    net.links.set('tap3f1c0b2a-9d', tapAlias(UUID));
    await new VifPlugger(net).plug(UUID, 1, [{ vif: makeVif(), index: 0 }]);
    assert.match(net.calls[0]!.input!, /^link del tap3f1c0b2a-9d\nlink add tap3f1c0b2a-9d/);
  });

  it('unplugAll: only devices marked as the instance’s; idempotent', async () => {
    const net = new RecordingNet();
    const p = new VifPlugger(net);
    await p.plug(UUID, 1, [{ vif: makeVif(), index: 0 }]);
    net.links.set('tapdhcp000000', ''); // a DHCP agent's tap
    net.ovs.set('tapdhcp000000', '');
    net.calls = [];
    await p.unplugAll(UUID, [makeVif()]);
    assert.deepEqual([...net.links.keys()], ['tapdhcp000000']);
    await p.unplugAll(UUID, [makeVif()]);
    assert.ok(net.calls.some((c) => c.argv.includes('del-port') && c.argv.includes('tap3f1c0b2a-9d')));
    assert.ok(!net.calls.some((c) => c.argv.includes('tapdhcp000000')));
  });
});
