/**
 * InstanceEvents and the external_instance_event RPC method: waiters are in
 * place before the plug, a plugged event wakes the spawn, a failed one or a
 * timeout aborts it (vif_plugging_is_fatal) naming the port, and the
 * network-changed / network-vif-deleted handling.
 */
import assert from 'node:assert/strict';
import { NovaError } from '../../../src/common/errors.js';
import { nullLogger } from '../../../src/common/log.js';
import { ExternalEvents, InstanceEvents, eventWaiter } from '../../../src/compute/instance-events.js';
import { InstanceStore } from '../../../src/compute/instance-store.js';
import type { NetworkAPI } from '../../../src/compute/network.js';
import { NovaObject } from '../../../src/objects/base.js';
import { ZED } from '../../../src/objects/releases.js';
import { adminContext } from '../../../src/rpc/context.js';
import { FakeDriver } from '../../../src/virt/fake/driver.js';
import type { VifModel } from '../../../src/virt/network-model.js';
import { capturingLogger } from '../../support/capture-log.js';
import { FakeConductor } from '../../support/fake-conductor.js';
import { HOST, newInstance } from '../../support/fake-nova.js';

const PORT = '3f1c0b2a-9d11-4c55-8a77-0123456789ab';

function event(uuid: string, name: string, tag: string | null, status = 'completed') {
  return {
    'nova_object.name': 'InstanceExternalEvent',
    'nova_object.namespace': 'nova',
    'nova_object.version': '1.5',
    'nova_object.data': { instance_uuid: uuid, name, status, tag, data: {} },
  };
}

function vif(id: string): VifModel {
  return {
    id,
    address: 'fa:16:3e:00:00:01',
    type: 'ovs',
    details: {},
    devname: `tap${id}`.slice(0, 14),
    ovs_interfaceid: id,
    qbh_params: null,
    qbg_params: null,
    active: false,
    vnic_type: 'normal',
    profile: {},
    preserve_on_delete: false,
    delegate_create: true,
    meta: {},
    network: { id: 'net', bridge: 'br-int', label: 'private', subnets: [], meta: {} },
  };
}

describe('compute/instance-events', () => {
  const ctx = adminContext();
  let conductor: FakeConductor;
  let events: InstanceEvents;
  let instance: NovaObject;
  let uuid: string;

  beforeEach(() => {
    conductor = new FakeConductor();
    events = new InstanceEvents(nullLogger());
    const made = newInstance(conductor, { vm_state: 'building', task_state: 'spawning' });
    instance = NovaObject.fromPrimitive(made.primitive);
    uuid = made.uuid;
  });

  function handler(o: { network?: NetworkAPI; driver?: FakeDriver } = {}) {
    const { logger, lines } = capturingLogger();
    const store = new InstanceStore(conductor, ZED, HOST, nullLogger());
    const ext = new ExternalEvents({
      store,
      events,
      driver: o.driver ?? new FakeDriver({ host: HOST }),
      network: o.network,
      logger,
    });
    return { ext, lines };
  }

  it('registers the waiter before the plug: an event sent during the plug wakes the wait', async () => {
    const { ext } = handler();
    const heard: string[] = [];
    const wait = eventWaiter(events, instance, {
      timeoutS: 5,
      fatal: true,
      logger: nullLogger(),
      onWaited: (s, outcome) => heard.push(`${outcome} ${s >= 0 && s < 5}`),
    });
    let pendingDuringPlug: string[] = [];
    await wait([['network-vif-plugged', PORT]], async () => {
      pendingDuringPlug = events.pending(uuid);
      // Neutron answers before the body returns: the event must not be lost
      await ext.externalInstanceEvent(ctx, {
        instances: [instance.toPrimitive()],
        events: [event(uuid, 'network-vif-plugged', PORT)],
      });
    });
    assert.deepEqual(pendingDuringPlug, [`network-vif-plugged-${PORT}`]);
    assert.deepEqual(events.pending(uuid), []);
    assert.deepEqual(heard, ['completed true'], 'the wait is reported once, as completed');
  });

  it('a failed event is a VirtualInterfaceCreateException naming the port when fatal; not fatal, the spawn goes on', async () => {
    const { ext } = handler();
    const send = () =>
      ext.externalInstanceEvent(ctx, {
        instances: [instance.toPrimitive()],
        events: [event(uuid, 'network-vif-plugged', PORT, 'failed')],
      });
    const heard: string[] = [];
    const fatal = eventWaiter(events, instance, {
      timeoutS: 5,
      fatal: true,
      logger: nullLogger(),
      onWaited: (_s, outcome) => heard.push(outcome),
    });
    const err = await fatal([['network-vif-plugged', PORT]], send).catch((e: unknown) => e);
    assert.deepEqual(heard, ['failed']);
    assert.ok(err instanceof NovaError);
    assert.equal(err.novaClass, 'VirtualInterfaceCreateException');
    assert.match(err.message, new RegExp(PORT));
    const lenient = eventWaiter(events, instance, { timeoutS: 5, fatal: false, logger: nullLogger() });
    await lenient([['network-vif-plugged', PORT]], send);
  });

  it('a timeout is fatal by default, names the port and leaves no waiter; not fatal it returns', async () => {
    const { logger, lines } = capturingLogger();
    const heard: string[] = [];
    const fatal = eventWaiter(events, instance, {
      timeoutS: 0.05,
      fatal: true,
      logger,
      onWaited: (_s, outcome) => heard.push(outcome),
    });
    const err = await fatal([['network-vif-plugged', PORT]], () => Promise.resolve()).catch((e: unknown) => e);
    assert.deepEqual(heard, ['timeout']);
    assert.ok(err instanceof NovaError);
    assert.equal(err.novaClass, 'VirtualInterfaceCreateException');
    assert.match(err.message, new RegExp(`network-vif-plugged-${PORT} did not arrive within 0.05 s`));
    assert.ok(lines.some((l) => l.startsWith('WARN Timeout waiting for')));
    assert.deepEqual(events.pending(uuid), []);
    await eventWaiter(events, instance, { timeoutS: 0.05, fatal: false, logger })([['network-vif-plugged', PORT]], () =>
      Promise.resolve(),
    );
  });

  it('timeout 0 or no events: the body runs and nothing waits; a plug that throws leaves no waiter', async () => {
    let ran = 0;
    await eventWaiter(events, instance, { timeoutS: 0, fatal: true, logger: nullLogger() })(
      [['network-vif-plugged', PORT]],
      () => Promise.resolve(void ran++),
    );
    await eventWaiter(events, instance, { timeoutS: 5, fatal: true, logger: nullLogger() })([], () =>
      Promise.resolve(void ran++),
    );
    assert.equal(ran, 2);
    const boom = eventWaiter(events, instance, { timeoutS: 5, fatal: true, logger: nullLogger() });
    await assert.rejects(
      boom([['network-vif-plugged', PORT]], () => Promise.reject(new Error('veth failed'))),
      /veth failed/,
    );
    assert.deepEqual(events.pending(uuid), []);
  });

  it('cancelAll (stop) fails every waiter', async () => {
    const wait = eventWaiter(events, instance, { timeoutS: 5, fatal: true, logger: nullLogger() });
    const p = wait([['network-vif-plugged', PORT]], () => {
      events.cancelAll();
      return Promise.resolve();
    });
    await assert.rejects(
      p,
      (e: unknown) => e instanceof NovaError && e.novaClass === 'VirtualInterfaceCreateException',
    );
    assert.throws(() => events.prepare(uuid, 'network-vif-plugged', PORT), /In shutdown/);
  });

  it('an event nobody waits for is a warning, except network-vif-unplugged while deleting', async () => {
    const { ext, lines } = handler();
    await ext.externalInstanceEvent(ctx, {
      instances: [instance.toPrimitive()],
      events: [event(uuid, 'network-vif-plugged', PORT)],
    });
    assert.ok(
      lines.includes(
        `WARN Received unexpected event network-vif-plugged-${PORT} for instance with vm_state building and task_state spawning.`,
      ),
      lines.join('\n'),
    );
    instance.set('task_state', 'deleting');
    await ext.externalInstanceEvent(ctx, {
      instances: [instance.toPrimitive()],
      events: [event(uuid, 'network-vif-unplugged', PORT)],
    });
    assert.ok(
      lines.some((l) =>
        l.startsWith(`DEBUG Received event network-vif-unplugged-${PORT} for instance with task_state deleting`),
      ),
    );
  });

  it('network-changed refreshes the cache for that port; network-vif-deleted drops the VIF and detaches it', async () => {
    const refreshed: Array<string | undefined> = [];
    const saved: string[][] = [];
    const network = {
      getInstanceNwInfo: (_c: unknown, _i: unknown, o: { refreshVifId?: string }) => {
        refreshed.push(o.refreshVifId);
        return Promise.resolve([]);
      },
      updateInstanceCache: (_c: unknown, _i: unknown, nw: VifModel[]) => {
        saved.push(nw.map((v) => v.id));
        return Promise.resolve();
      },
    } as unknown as NetworkAPI;
    const driver = new FakeDriver({ host: HOST });
    const detached: string[] = [];
    Object.assign(driver, {
      detachInterface: (_c: unknown, _i: unknown, v: VifModel) => {
        detached.push(v.id);
        return Promise.resolve();
      },
    });
    const { ext } = handler({ network, driver });
    instance.set('info_cache', {
      'nova_object.name': 'InstanceInfoCache',
      'nova_object.namespace': 'nova',
      'nova_object.version': '1.5',
      'nova_object.data': { instance_uuid: uuid, network_info: JSON.stringify([vif(PORT), vif('other-port')]) },
    });
    await ext.externalInstanceEvent(ctx, {
      instances: [instance.toPrimitive()],
      events: [event(uuid, 'network-changed', PORT), event(uuid, 'network-vif-deleted', PORT)],
    });
    assert.deepEqual(refreshed, [PORT]);
    assert.deepEqual(saved, [['other-port']]);
    assert.deepEqual(detached, [PORT]);
  });
});
