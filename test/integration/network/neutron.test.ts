/**
 * The network API against the real Neutron of the lab (test/lab/neutron-lab.sh:
 * neutron-server Zed with ML2/OVS, its OVS agent on host nova-docker-net): a
 * port created with a user's token and bound with the nova service user to
 * nova-docker-net comes back bound by the OVS mechanism driver, and the
 * network_info model is Nova's for it; a host without an agent fails the
 * binding and leaves no port. Works on the lab's shared network and removes
 * every port it made. Skipped when the Neutron lab is not up.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { nullLogger } from '../../../src/common/log.js';
import { NovaError } from '../../../src/common/errors.js';
import { HttpClient } from '../../../src/clients/http.js';
import { labServiceKeystone } from '../../support/lab-env.js';
import { NeutronClient, type NeutronNetwork } from '../../../src/clients/neutron/index.js';
import { NetworkAPI, NetworkRequestList } from '../../../src/compute/network.js';
import { NovaObject } from '../../../src/objects/base.js';
import { ZED } from '../../../src/objects/releases.js';
import { contextFromValues, type RequestContext } from '../../../src/rpc/context.js';
import { FakeConductor } from '../../support/fake-conductor.js';

const KEYSTONE = 'http://127.0.0.1:5000/v3';
const AGENT_HOST = 'nova-docker-net';
const LAB_NETWORK = 'nova-docker-lab-net';

/** A user's token (admin in project admin), as a server create would carry it, and its project. */
async function userToken(): Promise<{ token: string; projectId: string }> {
  const res = await new HttpClient({}).post<{ token: { project: { id: string } } }>(`${KEYSTONE}/auth/tokens`, {
    auth: {
      identity: {
        methods: ['password'],
        password: { user: { name: 'admin', domain: { name: 'Default' }, password: 'labadmin' } },
      },
      scope: { project: { name: 'admin', domain: { name: 'Default' } } },
    },
  });
  return { token: String(res.headers['x-subject-token']), projectId: res.data.token.project.id };
}

describe('integration: network API on the lab Neutron (ML2/OVS)', function () {
  this.timeout(120_000);
  const conductor = new FakeConductor();
  const neutronClient = new NeutronClient({
    admin: labServiceKeystone(KEYSTONE),
    region: 'RegionOne',
  });
  const api = new NetworkAPI({ neutron: neutronClient, conductor, release: ZED, logger: nullLogger() });
  let ctx: RequestContext;
  let projectId: string;
  let network: NeutronNetwork;
  const made: string[] = [];

  before(async function () {
    const u = await userToken();
    projectId = u.projectId;
    ctx = contextFromValues({
      request_id: `req-${randomUUID()}`,
      user_id: 'admin',
      project_id: projectId,
      roles: ['admin', 'member', 'reader'],
      is_admin: true,
      auth_token: u.token,
    });
    let nets: NeutronNetwork[];
    try {
      nets = await neutronClient.forContext({ authToken: u.token }).listNetworks({ name: LAB_NETWORK });
    } catch {
      nets = [];
    }
    if (nets.length !== 1) {
      // the stand-in neutron (no networks) or none at all: this needs test/lab/neutron-lab.sh up
      this.skip();
    }
    network = nets[0]!;
  });

  after(async () => {
    if (!ctx) return;
    const admin = neutronClient.forContext({ authToken: ctx.auth_token ?? undefined }, { admin: true });
    for (const uuid of made) {
      for (const p of await admin.listPorts({ device_id: uuid })) await admin.deletePort(p.id).catch(() => undefined);
    }
  });

  function instance(): NovaObject {
    const uuid = randomUUID();
    made.push(uuid);
    conductor.rows.set(uuid, { uuid });
    return NovaObject.create('Instance', '2.7', {
      uuid,
      project_id: projectId,
      hostname: `netapi-${uuid.slice(0, 8)}`,
      availability_zone: 'nova',
      host: AGENT_HOST,
    });
  }

  const onLabNet = () =>
    new NetworkRequestList([
      {
        network_id: network.id,
        address: null,
        port_id: null,
        pci_request_id: null,
        tag: null,
        arq_uuid: null,
        device_profile: null,
      },
    ]);

  it('allocates a port bound by ML2/OVS to nova-docker-net and builds Nova’s model; deallocate removes it', async () => {
    const inst = instance();
    const uuid = inst.str('uuid')!;
    const t0 = performance.now();
    const nwInfo = await api.allocateForInstance(ctx, inst, onLabNet(), { bindHostId: AGENT_HOST });
    const allocateMs = performance.now() - t0;
    assert.equal(nwInfo.length, 1);
    const vif = nwInfo[0]!;
    const port = await neutronClient
      .forContext({ authToken: ctx.auth_token ?? undefined }, { admin: true })
      .showPort(vif.id);
    assert.equal(port['binding:host_id'], AGENT_HOST);
    assert.equal(port.device_owner, 'compute:nova');
    assert.equal(port.device_id, uuid);
    assert.equal(port['binding:vif_type'], 'ovs');
    assert.equal(vif.type, 'ovs');
    assert.equal(vif.network.bridge, 'br-int');
    assert.equal(vif.ovs_interfaceid, port.id);
    assert.equal(vif.devname, `tap${port.id}`.slice(0, 14));
    assert.equal(vif.address, port.mac_address);
    assert.equal(vif.active, false);
    assert.equal(vif.details.datapath_type, 'netdev');
    assert.equal(vif.network.label, LAB_NETWORK);
    assert.deepEqual(vif.network.meta, {
      injected: false,
      tenant_id: network.tenant_id,
      mtu: network.mtu,
      physical_network: network['provider:physical_network'] ?? null,
      tunneled: ['vxlan', 'gre', 'geneve'].includes(network['provider:network_type'] ?? ''),
    });
    const subnet = vif.network.subnets[0]!;
    assert.equal(vif.network.subnets.length, 1);
    assert.equal(subnet.ips[0]?.address, port.fixed_ips[0]?.ip_address);
    assert.equal(typeof subnet.meta.dhcp_server, 'string', JSON.stringify(subnet.meta));
    assert.deepEqual(JSON.parse(conductor.infoCaches.get(uuid)!), nwInfo);
    assert.equal(conductor.vifs.get(port.id)?.address, `${port.mac_address}/${port.id}`);
    console.log(`      allocate_for_instance (1 port, lab Neutron): ${allocateMs.toFixed(0)} ms`);

    const t1 = performance.now();
    await api.deallocateForInstance(ctx, inst);
    console.log(`      deallocate_for_instance: ${(performance.now() - t1).toFixed(0)} ms`);
    const left = await neutronClient
      .forContext({ authToken: ctx.auth_token ?? undefined }, { admin: true })
      .listPorts({ device_id: uuid });
    assert.deepEqual(left, []);
    assert.equal(conductor.infoCaches.get(uuid), '[]');
  });

  it('a host without an OVS agent: PortBindingFailed naming the port, no port left', async () => {
    const inst = instance();
    const uuid = inst.str('uuid')!;
    const err = await api
      .allocateForInstance(ctx, inst, onLabNet(), { bindHostId: `netapi-no-agent-${uuid.slice(0, 8)}` })
      .catch((e: unknown) => e);
    assert.ok(err instanceof NovaError, String(err));
    assert.equal(err.novaClass, 'PortBindingFailed');
    assert.match(err.message, /^Binding failed for port [0-9a-f-]{36}/);
    const left = await neutronClient
      .forContext({ authToken: ctx.auth_token ?? undefined }, { admin: true })
      .listPorts({ device_id: uuid });
    assert.deepEqual(left, []);
  });
});
