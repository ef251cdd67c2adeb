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
import type { ObjectPrimitive } from '../../../src/objects/base.js';
import { ZED } from '../../../src/objects/releases.js';
import { contextFromValues, type RequestContext } from '../../../src/rpc/context.js';
import type { VifModel } from '../../../src/virt/network-model.js';
import type { DriverContext, NetworkInfo } from '../../../src/virt/types.js';
import { FakeNeutron, NEUTRON_URL } from '../../support/fake-neutron.js';
import { FakeConductor } from '../../support/fake-conductor.js';
import {
  bootImage,
  FakePlacement,
  FakeScheduler,
  HOST,
  networkRequests,
  newInstance,
} from '../../support/fake-nova.js';

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
const image = bootImage();
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
    const plugged: string[][] = [];
    const destroyedWith: NetworkInfo[] = [];
    const spawn = e.driver.spawn.bind(e.driver);
    const destroy = e.driver.destroy.bind(e.driver);
    // the fake driver plugs inside ctx.waitForInstanceEvents; Neutron's answer is sent as the plug ends
    e.driver.spawn = (dctx: DriverContext, spec, img, inj, pw, alloc, nwArg) => {
      const wait = dctx.waitForInstanceEvents;
      const waitAndAnswer: DriverContext['waitForInstanceEvents'] = wait
        ? (events, body) =>
            wait(events, async () => {
              await body();
              plugged.push(events.map(([, tag]) => tag));
              if (o.sendPlugged === 'never') return;
              await manager.endpoint().methods.external_instance_event!(ctx, {
                instances: [newPrimitive(e.conductor.row(spec.uuid))],
                events: events.map(([name, tag]) => ({
                  'nova_object.name': 'InstanceExternalEvent',
                  'nova_object.namespace': 'nova',
                  'nova_object.version': '1.5',
                  'nova_object.data': {
                    instance_uuid: spec.uuid,
                    name,
                    status: o.sendPlugged ?? 'completed',
                    tag,
                    data: {},
                  },
                })),
              });
            })
        : undefined;
      return spawn({ ...dctx, waitForInstanceEvents: waitAndAnswer }, spec, img, inj, pw, alloc, nwArg);
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

  /** build_and_run_instance of a new BUILDING instance with `requested_networks` (and `extra` args); its uuid. */
  async function boot(
    conductor: FakeConductor,
    manager: ComputeManager,
    requestedNetworks: ObjectPrimitive,
    extra: Record<string, unknown> = {},
  ): Promise<string> {
    const { uuid, primitive } = newInstance(conductor, BUILDING);
    await manager.buildAndRunInstance(ctx, {
      instance: primitive,
      image,
      node: HOST,
      requested_networks: requestedNetworks,
      ...extra,
    });
    return uuid;
  }

  it('boots with a port on the requested network, bound to this host, the driver plugging it before the start', async () => {
    const { network: net } = neutron.addNetwork({ dhcpPort: true });
    const { conductor, manager, plugged } = env();
    const uuid = await boot(conductor, manager, networkRequests({ network_id: net.id }), {
      security_groups: ['default'],
    });
    const row = conductor.row(uuid);
    assert.equal(row.vm_state, 'active', JSON.stringify(conductor.faults));
    const [port] = instancePorts(uuid);
    assert.ok(port);
    assert.equal(port['binding:host_id'], HOST);
    assert.equal(port.device_owner, 'compute:nova');
    assert.equal(port['binding:vif_type'], 'ovs');
    assert.deepEqual(plugged, [[port.id]]);
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
    const uuid = await boot(conductor, manager, networkRequests({ network_id: net.id }));
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
    const uuid = await boot(conductor, manager, networkRequests({ network_id: net.id }));
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
    const uuid = await boot(conductor, manager, networkRequests({ network_id: net.id }));
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
    const uuid = await boot(conductor, manager, networkRequests({ port_id: theirs.id }));
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
    const first = neutron.addNetwork().network;
    const net = neutron.addNetwork({ cidr: '10.1.0.0/24', name: 'second' }).network;
    const { conductor, driver, manager } = env();
    const uuid = await boot(conductor, manager, networkRequests({ network_id: first.id }));
    const bootPort = instancePorts(uuid)[0]!.id;
    const primitive = newPrimitive(conductor.row(uuid));
    const methods = manager.endpoint().methods;
    // a driver without interface hotplug refuses, as Nova's AttachInterfaceNotSupported
    const capabilities = driver.capabilities;
    Object.defineProperty(driver, 'capabilities', { value: { ...capabilities, supports_attach_interface: false } });
    await assert.rejects(
      Promise.resolve(methods.attach_interface!(ctx, { instance: primitive, network_id: net.id, port_id: null })),
      (e: unknown) => e instanceof NovaError && e.novaClass === 'AttachInterfaceNotSupported',
    );
    Object.defineProperty(driver, 'capabilities', { value: capabilities });
    const vif = (await methods.attach_interface!(ctx, {
      instance: primitive,
      network_id: net.id,
      port_id: null,
      requested_ip: null,
      tag: null,
    })) as VifModel;
    assert.deepEqual(driver.pluggedFor(uuid), [bootPort, vif.id]);
    assert.equal(neutron.ports.get(vif.id)?.['binding:host_id'], HOST);
    const cache = () => (JSON.parse(conductor.infoCaches.get(uuid) ?? '[]') as VifModel[]).map((v) => v.id);
    assert.deepEqual(cache(), [bootPort, vif.id]);

    await methods.detach_interface!(ctx, { instance: primitive, port_id: vif.id });
    assert.deepEqual(driver.pluggedFor(uuid), [bootPort]);
    assert.equal(neutron.ports.has(vif.id), false);
    assert.deepEqual(cache(), [bootPort]);
    assert.deepEqual([...conductor.vifs.keys()], [bootPort]);
  });

  it('--nic none: no Neutron call at all', async () => {
    const { conductor, manager } = env();
    const uuid = await boot(conductor, manager, networkRequests({ network_id: 'none' }));
    assert.equal(conductor.row(uuid).vm_state, 'active');
    assert.deepEqual(neutron.calls, []);
  });
});
