/**
 * The compute side's network API against an in-memory Neutron (nock) and the
 * fake conductor: who creates and who binds, what a failure leaves behind,
 * the network_info model Nova stores, and deallocation.
 */
import assert from 'node:assert/strict';
import nock from 'nock';
import { NovaError } from '../../../src/common/errors.js';
import { nullLogger } from '../../../src/common/log.js';
import { NeutronClient, type NeutronKeystone } from '../../../src/clients/neutron/index.js';
import {
  NetworkAPI,
  parseRequestedNetworks,
  pythonJson,
  type NetworkRequestList,
} from '../../../src/compute/network.js';
import { NovaObject } from '../../../src/objects/base.js';
import { RELEASES, ZED, type NovaRelease } from '../../../src/objects/releases.js';
import { contextFromValues, type RequestContext } from '../../../src/rpc/context.js';
import type { VifModel } from '../../../src/virt/network-model.js';
import { FakeConductor } from '../../support/fake-conductor.js';
import { FakeNeutron, NEUTRON_URL } from '../../support/fake-neutron.js';
import { networkRequests, newInstance } from '../../support/fake-nova.js';

const EPOXY = RELEASES.find((r) => r.name === '2025.1')!;
const BIND_HOST = 'nova-docker-net';

const admin: NeutronKeystone = {
  kind: 'service',
  getToken: () => Promise.resolve('admin-token'),
  invalidate: () => true,
  endpoint: () => Promise.resolve(NEUTRON_URL),
};

function userCtx(): RequestContext {
  return contextFromValues({
    request_id: 'req-1',
    user_id: 'u1',
    project_id: 'proj-1',
    roles: ['member'],
    is_admin: false,
    auth_token: 'user-token',
  });
}

function requests(...items: Array<Partial<Record<string, string>>>): NetworkRequestList {
  const list = parseRequestedNetworks(networkRequests(...items));
  assert.ok(list);
  return list;
}

async function rejection(p: Promise<unknown>): Promise<NovaError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof NovaError, `expected a NovaError, got ${String(err)}`);
  return err;
}

describe('compute/network', () => {
  let neutron: FakeNeutron;
  let conductor: FakeConductor;
  const ctx = userCtx();

  before(() => nock.disableNetConnect());
  after(() => nock.enableNetConnect());
  beforeEach(() => {
    neutron = new FakeNeutron().start();
    conductor = new FakeConductor();
  });
  afterEach(() => neutron.stop());

  function api(release: NovaRelease = ZED): NetworkAPI {
    const client = new NeutronClient({ admin, endpointOverride: NEUTRON_URL, retryDelayMs: 1 });
    return new NetworkAPI({ neutron: client, conductor, release, logger: nullLogger(), ovsBridge: 'br-int' });
  }

  function instance(fields: Record<string, unknown> = {}): NovaObject {
    const { primitive } = newInstance(conductor, {
      project_id: 'proj-1',
      hostname: 'vm-one',
      availability_zone: 'nova',
      vm_state: 'building',
      task_state: 'networking',
      ...fields,
    });
    return NovaObject.fromPrimitive(primitive);
  }

  it('parses requested_networks: none, auto, unspecified, ports', () => {
    assert.equal(requests({ network_id: 'none' }).noAllocate, true);
    assert.equal(requests({ network_id: 'auto' }).autoAllocate, true);
    assert.equal(requests({}).isSingleUnspecified, true);
    assert.deepEqual(requests({ port_id: 'p1' }, { network_id: 'n2', address: '10.0.0.7' }).portIds, ['p1']);
    assert.equal(parseRequestedNetworks(null), null);
  });

  it('nothing requested, one network: a port created with the user token, bound with the [neutron] one, cached as Nova builds it', async () => {
    const { network, subnet } = neutron.addNetwork({ dhcpPort: true });
    const inst = instance();
    const uuid = inst.str('uuid')!;

    const nwInfo = await api().allocateForInstance(ctx, inst, null, {
      bindHostId: BIND_HOST,
      securityGroups: ['default'],
    });

    const [create] = neutron.callsOf('POST', '/v2.0/ports');
    assert.equal(create?.token, 'user-token');
    assert.deepEqual(create?.body, {
      port: { device_id: uuid, network_id: network.id, admin_state_up: true, tenant_id: 'proj-1' },
    });
    const [bind] = neutron.callsOf('PUT', '/v2.0/ports/');
    assert.equal(bind?.token, 'admin-token');
    assert.deepEqual(bind?.body, {
      port: { device_id: uuid, device_owner: 'compute:nova', 'binding:host_id': BIND_HOST, dns_name: 'vm-one' },
    });
    assert.equal(nwInfo.length, 1);
    const vif = nwInfo[0]!;
    const port = neutron.ports.get(vif.id)!;
    assert.equal(port['binding:host_id'], BIND_HOST);
    assert.equal(port.device_owner, 'compute:nova');
    assert.deepEqual(vif, {
      id: port.id,
      address: port.mac_address,
      network: {
        id: network.id,
        bridge: 'br-int',
        label: 'private',
        subnets: [
          {
            cidr: '10.0.0.0/24',
            dns: [{ address: '10.9.9.9', type: 'dns', version: 4, meta: {} }],
            gateway: { address: '10.0.0.1', type: 'gateway', version: 4, meta: {} },
            ips: [{ address: '10.0.0.10', type: 'fixed', version: 4, meta: {}, floating_ips: [] }],
            routes: [
              {
                cidr: '192.168.9.0/24',
                gateway: { address: '10.0.0.9', type: 'gateway', version: 4, meta: {} },
                interface: null,
                meta: {},
              },
            ],
            version: 4,
            meta: { dhcp_server: '10.0.0.2' },
          },
        ],
        meta: { injected: false, tenant_id: 'proj-1', mtu: 1450, physical_network: null, tunneled: true },
      },
      type: 'ovs',
      details: port['binding:vif_details'] ?? {},
      devname: `tap${port.id}`.slice(0, 14),
      ovs_interfaceid: port.id,
      qbh_params: null,
      qbg_params: null,
      active: false,
      vnic_type: 'normal',
      profile: {},
      preserve_on_delete: false,
      delegate_create: true,
      meta: {},
    } satisfies VifModel);
    assert.equal(subnet.id, port.fixed_ips[0]?.subnet_id);
    // the VirtualInterface row and the cache, as Nova writes them
    assert.deepEqual(conductor.vifs.get(port.id), {
      instance_uuid: uuid,
      tag: null,
      address: `${port.mac_address}/${port.id}`,
      uuid: port.id,
      id: 1,
    });
    const cached = conductor.infoCaches.get(uuid)!;
    assert.ok(cached.startsWith(`[{"id": "${port.id}", "address": "${port.mac_address}", "network": {"id": `), cached);
    assert.deepEqual(JSON.parse(cached), nwInfo);
  });

  it('a Neutron without the L3 API (floatingips 404) gives VIFs without floating IPs, as Nova', async () => {
    neutron.addNetwork();
    neutron.l3 = false;
    const nwInfo = await api().allocateForInstance(ctx, instance(), null, { bindHostId: BIND_HOST });
    assert.deepEqual(nwInfo[0]?.network.subnets[0]?.ips[0]?.floating_ips, []);
  });

  it('2025.1: the subnet meta says enable_dhcp, with no gateway standing in for a missing DHCP port; Zed falls back to the gateway', async () => {
    neutron.addNetwork({ dhcpPort: false });
    const epoxy = await api(EPOXY).allocateForInstance(ctx, instance(), null, { bindHostId: BIND_HOST });
    assert.deepEqual(epoxy[0]?.network.subnets[0]?.meta, { enable_dhcp: true });
    const zed = await api(ZED).allocateForInstance(ctx, instance(), null, { bindHostId: BIND_HOST });
    assert.deepEqual(zed[0]?.network.subnets[0]?.meta, { dhcp_server: '10.0.0.1' });
  });

  it('more than one network and nothing requested: NetworkAmbiguous, no port created', async () => {
    neutron.addNetwork();
    neutron.addNetwork({ name: 'public', shared: true, project: 'admin', cidr: '10.1.0.0/24' });
    const err = await rejection(api().allocateForInstance(ctx, instance(), null, { bindHostId: BIND_HOST }));
    assert.equal(err.novaClass, 'NetworkAmbiguous');
    assert.equal(neutron.callsOf('POST', '/v2.0/ports').length, 0);
  });

  it('no network at all: an empty network_info, nothing saved', async () => {
    const nwInfo = await api().allocateForInstance(ctx, instance(), null, { bindHostId: BIND_HOST });
    assert.deepEqual(nwInfo, []);
    assert.equal(conductor.infoCaches.size, 0);
  });

  it('a binding that fails is PortBindingFailed naming the port, and the port is gone', async () => {
    const { network } = neutron.addNetwork();
    neutron.failingHosts.add(BIND_HOST);
    const inst = instance();
    const err = await rejection(
      api().allocateForInstance(ctx, inst, requests({ network_id: network.id }), { bindHostId: BIND_HOST }),
    );
    assert.equal(err.novaClass, 'PortBindingFailed');
    const created = neutron.callsOf('POST', '/v2.0/ports')[0];
    assert.ok(created);
    const portId = (neutron.callsOf('PUT', '/v2.0/ports/')[0]?.path ?? '').split('/').pop()!;
    assert.match(err.message, new RegExp(`Binding failed for port ${portId}`));
    assert.equal(neutron.ports.size, 0);
    assert.equal(conductor.vifs.size, 0);
  });

  it('a create refused part-way deletes the ports already created (PortLimitExceeded on OverQuota)', async () => {
    const a = neutron.addNetwork().network;
    const b = neutron.addNetwork({ cidr: '10.1.0.0/24' }).network;
    neutron.createFailures.push(null, [409, 'OverQuota']);
    const err = await rejection(
      api().allocateForInstance(ctx, instance(), requests({ network_id: a.id }, { network_id: b.id }), {
        bindHostId: BIND_HOST,
      }),
    );
    assert.equal(err.novaClass, 'PortLimitExceeded');
    assert.equal(neutron.callsOf('DELETE', '/v2.0/ports/').length, 1);
    assert.equal([...neutron.ports.values()].filter((p) => p.device_owner !== 'network:dhcp').length, 0);
  });

  it('a fixed IP asked for goes into the create; one in use is FixedIpAlreadyInUse', async () => {
    const { network } = neutron.addNetwork();
    const nwInfo = await api().allocateForInstance(
      ctx,
      instance(),
      requests({ network_id: network.id, address: '10.0.0.77' }),
      { bindHostId: BIND_HOST },
    );
    assert.deepEqual((neutron.callsOf('POST', '/v2.0/ports')[0]?.body as { port: unknown }).port, {
      device_id: (neutron.callsOf('POST', '/v2.0/ports')[0]?.body as { port: { device_id: string } }).port.device_id,
      fixed_ips: [{ ip_address: '10.0.0.77' }],
      network_id: network.id,
      admin_state_up: true,
      tenant_id: 'proj-1',
    });
    assert.equal(nwInfo[0]?.network.subnets[0]?.ips[0]?.address, '10.0.0.77');

    neutron.createFailures.push([409, 'IpAddressAlreadyAllocated']);
    const err = await rejection(
      api().allocateForInstance(ctx, instance(), requests({ network_id: network.id, address: '10.0.0.77' }), {
        bindHostId: BIND_HOST,
      }),
    );
    assert.equal(err.novaClass, 'FixedIpAlreadyInUse');
  });

  it("the user's port: checked, bound, kept on delete (unbound) while ours are deleted", async () => {
    const { network } = neutron.addNetwork();
    const theirs = neutron.addUserPort(network.id);
    const inst = instance();
    const uuid = inst.str('uuid')!;
    const nwInfo = await api().allocateForInstance(
      ctx,
      inst,
      requests({ port_id: theirs.id }, { network_id: network.id }),
      { bindHostId: BIND_HOST },
    );
    assert.deepEqual(
      nwInfo.map((v) => [v.id === theirs.id, v.preserve_on_delete]),
      [
        [true, true],
        [false, false],
      ],
    );
    assert.equal(neutron.ports.get(theirs.id)?.device_id, uuid);
    const ours = nwInfo[1]!.id;

    await api().deallocateForInstance(ctx, inst);
    assert.equal(neutron.ports.has(ours), false);
    const kept = neutron.ports.get(theirs.id);
    assert.ok(kept);
    assert.equal(kept.device_id, '');
    assert.equal(kept.device_owner, '');
    assert.equal(kept['binding:host_id'], '');
    assert.equal(kept.dns_name, '');
    assert.equal(conductor.vifs.size, 0);
    assert.equal(conductor.infoCaches.get(uuid), '[]');
  });

  it("refuses another project's port (PortNotUsable) and a port in use (PortInUse) before creating anything", async () => {
    const { network } = neutron.addNetwork();
    const foreign = neutron.addUserPort(network.id, { tenant_id: 'proj-2' });
    const used = neutron.addUserPort(network.id, { device_id: 'someone-else' });
    const e1 = await rejection(
      api().allocateForInstance(ctx, instance(), requests({ port_id: foreign.id }), { bindHostId: BIND_HOST }),
    );
    assert.equal(e1.novaClass, 'PortNotUsable');
    const e2 = await rejection(
      api().allocateForInstance(ctx, instance(), requests({ port_id: used.id }), { bindHostId: BIND_HOST }),
    );
    assert.equal(e2.novaClass, 'PortInUse');
    assert.equal(neutron.callsOf('POST', '/v2.0/ports').length + neutron.callsOf('PUT', '/v2.0/ports').length, 0);
  });

  it('a failed bind of the second port unbinds the user port, deletes ours and destroys the VirtualInterfaces', async () => {
    const { network } = neutron.addNetwork();
    const theirs = neutron.addUserPort(network.id);
    neutron.failingHosts.add(BIND_HOST);
    // the user's port binds (it is updated first) only if the host works: make only the 2nd bind fail
    let puts = 0;
    const orig = neutron.handle.bind(neutron);
    neutron.handle = (method, uri, body, token) => {
      if (method === 'PUT') {
        puts++;
        if (puts === 1) neutron.failingHosts.delete(BIND_HOST);
        else neutron.failingHosts.add(BIND_HOST);
      }
      return orig(method, uri, body, token);
    };
    const err = await rejection(
      api().allocateForInstance(ctx, instance(), requests({ port_id: theirs.id }, { network_id: network.id }), {
        bindHostId: BIND_HOST,
      }),
    );
    assert.equal(err.novaClass, 'PortBindingFailed');
    assert.equal(neutron.ports.get(theirs.id)?.device_id, '');
    assert.deepEqual(
      [...neutron.ports.keys()].filter((id) => neutron.ports.get(id)?.device_owner !== 'network:dhcp'),
      [theirs.id],
    );
    assert.equal(conductor.vifs.size, 0);
    assert.deepEqual(
      conductor.calls.filter((c) => c.startsWith('VirtualInterface.')),
      ['VirtualInterface.create', 'VirtualInterface.destroy'],
    );
  });

  it('security groups by name become ids; an unknown one is SecurityGroupNotFound', async () => {
    const { network } = neutron.addNetwork();
    neutron.securityGroups.push({ id: 'sg-web', name: 'web', tenant_id: 'proj-1' });
    await api().allocateForInstance(ctx, instance(), requests({ network_id: network.id }), {
      bindHostId: BIND_HOST,
      securityGroups: ['web'],
    });
    assert.deepEqual(
      (neutron.callsOf('POST', '/v2.0/ports')[0]?.body as { port: Record<string, unknown> }).port.security_groups,
      ['sg-web'],
    );
    const err = await rejection(
      api().allocateForInstance(ctx, instance(), requests({ network_id: network.id }), {
        bindHostId: BIND_HOST,
        securityGroups: ['nope'],
      }),
    );
    assert.equal(err.novaClass, 'SecurityGroupNotFound');
  });

  it('network-changed of one port refreshes only that VIF (a floating IP appears); a port gone is dropped', async () => {
    const { network } = neutron.addNetwork();
    const inst = instance();
    const uuid = inst.str('uuid')!;
    const net = api();
    const [vif] = await net.allocateForInstance(ctx, inst, requests({ network_id: network.id }), {
      bindHostId: BIND_HOST,
    });
    assert.ok(vif);
    neutron.floatingIps.push({
      id: 'fip-1',
      floating_ip_address: '172.24.4.10',
      fixed_ip_address: '10.0.0.10',
      port_id: vif.id,
    });
    neutron.ports.get(vif.id)!.status = 'ACTIVE';
    const refreshed = await net.getInstanceNwInfo(ctx, inst, { refreshVifId: vif.id });
    assert.deepEqual(refreshed[0]?.network.subnets[0]?.ips[0]?.floating_ips, [
      { address: '172.24.4.10', type: 'floating', version: 4, meta: {} },
    ]);
    assert.equal(refreshed[0]?.active, true);
    assert.deepEqual(JSON.parse(conductor.infoCaches.get(uuid)!), refreshed);

    neutron.ports.delete(vif.id);
    assert.deepEqual(await net.getInstanceNwInfo(ctx, inst, { refreshVifId: vif.id }), []);
  });

  it('deallocate_port_for_instance deletes our port, destroys its VirtualInterface and saves the rest', async () => {
    const a = neutron.addNetwork().network;
    const b = neutron.addNetwork({ cidr: '10.1.0.0/24' }).network;
    const inst = instance();
    const net = api();
    const vifs = await net.allocateForInstance(ctx, inst, requests({ network_id: a.id }, { network_id: b.id }), {
      bindHostId: BIND_HOST,
    });
    const left = await net.deallocatePortForInstance(ctx, inst, vifs[0]!.id);
    assert.deepEqual(
      left.map((v) => v.id),
      [vifs[1]!.id],
    );
    assert.equal(neutron.ports.has(vifs[0]!.id), false);
    assert.deepEqual([...conductor.vifs.keys()], [vifs[1]!.id]);
  });

  it('writes the cache as Python json.dumps does', () => {
    assert.equal(
      pythonJson([{ a: 1, b: 'é', c: null, d: [true] }]),
      '[{"a": 1, "b": "\\u00e9", "c": null, "d": [true]}]',
    );
  });
});
