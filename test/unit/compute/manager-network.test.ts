/**
 * The manager's build and terminate with Neutron networking: ports allocated
 * and bound to this host while the image is fetched, the network-vif-plugged
 * wait around the plug, a binding failure or a plug event that never comes
 * ending the build in ERROR with a fault naming the port and no port left,
 * and terminate giving the ports back after the guest is gone.
 */
import assert from 'node:assert/strict';
import nock from 'nock';
import { NovaError } from '../../../src/common/errors.js';
import { nullLogger } from '../../../src/common/log.js';
import { NeutronClient, type NeutronKeystone } from '../../../src/clients/neutron/index.js';
import { ComputeManager } from '../../../src/compute/manager.js';
import { NetworkAPI } from '../../../src/compute/network.js';
import { FakeDriver } from '../../../src/virt/fake/driver.js';
import { ZED } from '../../../src/objects/releases.js';
import { contextFromValues, type RequestContext } from '../../../src/rpc/context.js';
import { expectedPlugEvents, type VifModel } from '../../../src/virt/network-model.js';
import type { DriverContext, NetworkInfo } from '../../../src/virt/types.js';
import { FakeNeutron, NEUTRON_URL } from '../../support/fake-neutron.js';
import { FakeConductor } from '../../support/fake-conductor.js';
import { FakePlacement, FakeScheduler, HOST, newInstance } from '../../support/fake-nova.js';

const BUILDING = {
  vm_state: 'building',
  task_state: 'scheduling',
  power_state: 0,
  host: null,
  node: null,
  project_id: 'proj-1',
  hostname: 'web-1',
  availability_zone: 'nova',
};
const image = { id: 'img-1', name: 'busybox', container_format: 'docker', disk_format: 'raw', properties: {} };
const ctx: RequestContext = contextFromValues({
  request_id: 'req-net',
  roles: ['member'],
  project_id: 'proj-1',
  user_id: 'u1',
  auth_token: 'user-token',
});
const admin: NeutronKeystone = {
  kind: 'service',
  getToken: () => Promise.resolve('admin-token'),
  invalidate: () => true,
  endpoint: () => Promise.resolve(NEUTRON_URL),
};

function nics(...items: Array<Record<string, string>>) {
  return {
    'nova_object.name': 'NetworkRequestList',
    'nova_object.namespace': 'nova',
    'nova_object.version': '1.1',
    'nova_object.data': {
      objects: items.map((d) => ({
        'nova_object.name': 'NetworkRequest',
        'nova_object.namespace': 'nova',
        'nova_object.version': '1.3',
        'nova_object.data': d,
      })),
    },
  };
}

describe('compute/manager with Neutron', () => {
  let neutron: FakeNeutron;
  before(() => nock.disableNetConnect());
  after(() => nock.enableNetConnect());
  beforeEach(() => {
    neutron = new FakeNeutron().start();
  });
  afterEach(() => neutron.stop());

  /**
   * A manager whose driver plugs as the docker driver does: the VIFs of
   * network_info inside ctx.waitForInstanceEvents, Neutron's plugged event
   * sent (or not) while it plugs.
   */
  function env(o: { sendPlugged?: 'completed' | 'failed' | 'never'; timeoutS?: number } = {}) {
    const logger = nullLogger();
    const conductor = new FakeConductor();
    const driver = new FakeDriver({ host: HOST });
    const network = new NetworkAPI({
      neutron: new NeutronClient({ admin, endpointOverride: NEUTRON_URL, retryDelayMs: 1 }),
      conductor,
      release: ZED,
      logger,
    });
    const manager = new ComputeManager(
      conductor,
      driver,
      new FakePlacement(),
      new FakeScheduler(),
      {
        host: HOST,
        release: ZED,
        reportIntervalS: 3600,
        resourceIntervalS: 0,
        syncPowerStateIntervalS: 3600,
        schedulerSyncIntervalS: 0,
        myIp: '127.0.0.1',
        allocationRatios: { cpu: 16, ram: 1.5, disk: 1 },
        reservedHostMemoryMb: 0,
        reservedHostDiskMb: 0,
        vifPlugging: { timeoutS: o.timeoutS ?? 5, fatal: true },
      },
      logger,
      { network },
    );
    const e = { conductor, driver };
    const plugged: NetworkInfo[] = [];
    const destroyedWith: NetworkInfo[] = [];
    const spawn = e.driver.spawn.bind(e.driver);
    const destroy = e.driver.destroy.bind(e.driver);
    e.driver.spawn = async (dctx: DriverContext, spec, img, inj, pw, alloc, nwArg) => {
      const nw = await nwArg;
      await dctx.waitForInstanceEvents?.(expectedPlugEvents(nw), async () => {
        plugged.push(nw);
        if (o.sendPlugged === 'never') return;
        const row = e.conductor.row(spec.uuid);
        await manager.endpoint().methods.external_instance_event!(ctx, {
          instances: [{ ...newPrimitive(row) }],
          events: nw.map((v) => ({
            'nova_object.name': 'InstanceExternalEvent',
            'nova_object.namespace': 'nova',
            'nova_object.version': '1.5',
            'nova_object.data': {
              instance_uuid: spec.uuid,
              name: 'network-vif-plugged',
              status: o.sendPlugged ?? 'completed',
              tag: v.id,
              data: {},
            },
          })),
        });
      });
      return spawn(dctx, spec, img, inj, pw, alloc, nw);
    };
    e.driver.destroy = (dctx, spec, nw, bdi) => {
      destroyedWith.push(nw);
      return destroy(dctx, spec, nw, bdi);
    };
    return { conductor, driver, manager, plugged, destroyedWith };
  }

  function newPrimitive(row: Record<string, unknown>) {
    return {
      'nova_object.name': 'Instance',
      'nova_object.namespace': 'nova',
      'nova_object.version': '2.7',
      'nova_object.data': row,
    };
  }

  function instancePorts(uuid: string) {
    return [...neutron.ports.values()].filter((p) => p.device_id === uuid);
  }

  it('boots with a port on the requested network, bound to this host, the driver plugging it before the start', async () => {
    const { network: net } = neutron.addNetwork({ dhcpPort: true });
    const { conductor, manager, plugged } = env();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    await manager.buildAndRunInstance(ctx, {
      instance: primitive,
      image,
      node: HOST,
      requested_networks: nics({ network_id: net.id }),
      security_groups: ['default'],
    });
    const row = conductor.row(uuid);
    assert.equal(row.vm_state, 'active', JSON.stringify(conductor.faults));
    const [port] = instancePorts(uuid);
    assert.ok(port);
    assert.equal(port['binding:host_id'], HOST);
    assert.equal(port.device_owner, 'compute:nova');
    assert.equal(port['binding:vif_type'], 'ovs');
    assert.deepEqual(
      plugged.map((nw) => nw.map((v) => v.id)),
      [[port.id]],
    );
    assert.deepEqual(
      (JSON.parse(conductor.infoCaches.get(uuid)!) as Array<{ id: string }>).map((v) => v.id),
      [port.id],
    );
    // network_allocated rode on the spawning save and is gone again at ACTIVE, as in Nova
    const spawning = conductor.saves.find((s) => s.fields.task_state === 'spawning');
    assert.equal((spawning?.fields.system_metadata as Record<string, unknown>).network_allocated, 'True');
    assert.deepEqual(row.system_metadata, { boot_roles: 'member' });
    assert.deepEqual(manager.instanceEvents.pending(uuid), []);
  });

  it('terminate destroys the guest with its VIFs, then deletes the port, before the row is deleted', async () => {
    const { network: net } = neutron.addNetwork();
    const { conductor, manager, destroyedWith } = env();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    await manager.buildAndRunInstance(ctx, {
      instance: primitive,
      image,
      node: HOST,
      requested_networks: nics({ network_id: net.id }),
    });
    const portId = instancePorts(uuid)[0]!.id;
    const row = conductor.row(uuid);
    const savesBefore = conductor.saves.length;
    let savesAtDelete = -1;
    const handle = neutron.handle.bind(neutron);
    neutron.handle = (method, uri, body, token) => {
      if (method === 'DELETE') savesAtDelete = conductor.saves.length;
      return handle(method, uri, body, token);
    };
    await manager.terminateInstance(ctx, { instance: newPrimitive({ ...row, task_state: 'deleting' }) });
    assert.equal(neutron.ports.has(portId), false);
    assert.deepEqual(
      destroyedWith.at(-1)?.map((v) => v.id),
      [portId],
    );
    assert.equal(savesAtDelete, savesBefore, 'ports deleted before the DELETED save');
    assert.ok(conductor.destroyed.includes(uuid));
    assert.equal(conductor.vifs.size, 0);
  });

  it('a plug event that never comes: ERROR, a fault naming the port, no port left', async () => {
    const { network: net } = neutron.addNetwork();
    const { conductor, manager } = env({ sendPlugged: 'never', timeoutS: 0.1 });
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    await manager.buildAndRunInstance(ctx, {
      instance: primitive,
      image,
      node: HOST,
      requested_networks: nics({ network_id: net.id }),
    });
    assert.equal(conductor.row(uuid).vm_state, 'error');
    const portId =
      neutron.callsOf('POST', '/v2.0/ports').length === 1
        ? neutron.callsOf('PUT', '/v2.0/ports/')[0]!.path.split('/').pop()!
        : '';
    const fault = conductor.faults.at(-1)!;
    assert.match(
      String(fault.message),
      new RegExp(
        `^Build of instance ${uuid} aborted: Failed to allocate the network\\(s\\), not rescheduling\\. Virtual Interface creation failed: network-vif-plugged-${portId}`,
      ),
    );
    assert.deepEqual(instancePorts(uuid), []);
    assert.equal(neutron.ports.has(portId), false);
    assert.equal(conductor.vifs.size, 0);
    assert.equal(conductor.row(uuid).host, null);
  });

  it('a port whose binding fails: ERROR with PortBindingFailed naming it, nothing left, the driver never plugged', async () => {
    const { network: net } = neutron.addNetwork();
    neutron.failingHosts.add(HOST);
    const { conductor, manager, plugged } = env();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    await manager.buildAndRunInstance(ctx, {
      instance: primitive,
      image,
      node: HOST,
      requested_networks: nics({ network_id: net.id }),
    });
    assert.equal(conductor.row(uuid).vm_state, 'error');
    assert.match(
      String(conductor.faults.at(-1)?.message),
      /^Binding failed for port [0-9a-f-]{36}, please check neutron logs/,
    );
    assert.deepEqual(plugged, []);
    assert.equal([...neutron.ports.values()].filter((p) => p.device_owner.startsWith('compute:')).length, 0);
  });

  it("a user's port survives a failed build, unbound", async () => {
    const { network: net } = neutron.addNetwork();
    const theirs = neutron.addUserPort(net.id);
    const { conductor, manager } = env({ sendPlugged: 'failed' });
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    await manager.buildAndRunInstance(ctx, {
      instance: primitive,
      image,
      node: HOST,
      requested_networks: nics({ port_id: theirs.id }),
    });
    assert.equal(conductor.row(uuid).vm_state, 'error');
    assert.match(
      String(conductor.faults.at(-1)?.message),
      new RegExp(`network-vif-plugged-${theirs.id} with status failed`),
    );
    const kept = neutron.ports.get(theirs.id);
    assert.equal(kept?.device_id, '');
    assert.equal(kept?.['binding:host_id'], '');
  });

  it('attach_interface binds a new port and plugs it; detach_interface unplugs it and deletes the port', async () => {
    const { network: net } = neutron.addNetwork();
    const { conductor, driver, manager } = env();
    const { uuid, primitive } = newInstance(conductor, {
      ...BUILDING,
      vm_state: 'active',
      task_state: null,
      host: HOST,
    });
    const methods = manager.endpoint().methods;
    // a driver without interface hotplug refuses, as Nova's AttachInterfaceNotSupported
    await assert.rejects(
      Promise.resolve(methods.attach_interface!(ctx, { instance: primitive, network_id: net.id, port_id: null })),
      (e: unknown) => e instanceof NovaError && e.novaClass === 'AttachInterfaceNotSupported',
    );
    const attached: string[] = [];
    const detached: string[] = [];
    Object.defineProperty(driver, 'capabilities', {
      value: { ...driver.capabilities, supports_attach_interface: true },
    });
    Object.assign(driver, {
      attachInterface: (_c: unknown, _i: unknown, _m: unknown, v: VifModel) => {
        attached.push(v.id);
        return Promise.resolve();
      },
      detachInterface: (_c: unknown, _i: unknown, v: VifModel) => {
        detached.push(v.id);
        return Promise.resolve();
      },
    });
    const vif = (await methods.attach_interface!(ctx, {
      instance: primitive,
      network_id: net.id,
      port_id: null,
      requested_ip: null,
      tag: null,
    })) as VifModel;
    assert.deepEqual(attached, [vif.id]);
    assert.equal(neutron.ports.get(vif.id)?.['binding:host_id'], HOST);
    const cache = () => (JSON.parse(conductor.infoCaches.get(uuid) ?? '[]') as VifModel[]).map((v) => v.id);
    assert.deepEqual(cache(), [vif.id]);

    await methods.detach_interface!(ctx, { instance: primitive, port_id: vif.id });
    assert.deepEqual(detached, [vif.id]);
    assert.equal(neutron.ports.has(vif.id), false);
    assert.deepEqual(cache(), []);
    assert.equal(conductor.vifs.size, 0);
  });

  it('--nic none: no Neutron call at all', async () => {
    const { conductor, manager } = env();
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    await manager.buildAndRunInstance(ctx, {
      instance: primitive,
      image,
      node: HOST,
      requested_networks: nics({ network_id: 'none' }),
    });
    assert.equal(conductor.row(uuid).vm_state, 'active');
    assert.deepEqual(neutron.calls, []);
  });
});
