/**
 * What changes for the compute manager from Zed to 2025.1/2026.1: Instance
 * 2.8's node/compute_id pairing, objects newer or older than the table,
 * the stable node identity file, set_host_enabled and the share casts.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NovaObject } from '../../../src/objects/base.js';
import { releaseNamed } from '../../../src/objects/releases.js';
import { adminContext, contextFromValues } from '../../../src/rpc/context.js';
import { bootImage, HOST, newInstance, setup } from '../../support/fake-nova.js';

const EPOXY = releaseNamed('2025.1')!;
const BUILDING = { vm_state: 'building', task_state: 'scheduling', power_state: 0, host: null, node: null };
const image = bootImage();
const ctx = contextFromValues({ request_id: 'req-rel', roles: ['member'], project_id: 'p1' });

describe('compute/manager across Nova releases', () => {
  it('Instance 2.8: the build pairs node with the ComputeNode id (compute_id); ERROR clears both', async () => {
    const { conductor, manager } = setup({ release: EPOXY });
    await manager.updateAvailableResource(adminContext());
    const nodeId = [...conductor.nodes.values()][0]?.id;
    assert.equal(typeof nodeId, 'number');
    const { uuid, primitive } = newInstance(conductor, BUILDING, '2.8');
    await manager.buildAndRunInstance(ctx, { instance: primitive, image, node: HOST });
    assert.equal(conductor.row(uuid).vm_state, 'active');
    assert.equal(conductor.row(uuid).compute_id, nodeId);
    const hostSave = conductor.saves.find((s) => s.changes.includes('node'));
    assert.deepEqual(hostSave?.changes.includes('compute_id'), true);
    assert.equal(hostSave?.version, '2.8');

    const failed = newInstance(conductor, BUILDING, '2.8');
    await manager.buildAndRunInstance(ctx, {
      instance: failed.primitive,
      image: { ...image, properties: { fake_fail_spawn: 'exited at once' } },
      node: HOST,
    });
    assert.equal(failed.row().vm_state, 'error');
    assert.equal(failed.row().node, null);
    assert.equal(failed.row().compute_id, null);
  });

  it('an Instance 2.7 (older than the table) is saved as 2.7, without compute_id', async () => {
    const { conductor, manager } = setup({ release: EPOXY });
    await manager.updateAvailableResource(adminContext());
    const { uuid, primitive } = newInstance(conductor, BUILDING, '2.7');
    await manager.buildAndRunInstance(ctx, { instance: primitive, image, node: HOST });
    assert.equal(conductor.row(uuid).vm_state, 'active');
    assert.ok(conductor.saves.filter((s) => s.uuid === uuid).every((s) => s.version === '2.7'));
    assert.equal(
      conductor.saves.some((s) => s.changes.includes('compute_id')),
      false,
    );
  });

  it('an Instance newer than the table (2.9, unknown field) is served and saved back as it came', async () => {
    const { conductor, manager } = setup({ release: EPOXY });
    await manager.updateAvailableResource(adminContext());
    const { uuid, primitive } = newInstance(conductor, { ...BUILDING, some_future_field: { x: 1 } }, '2.9');
    await manager.buildAndRunInstance(ctx, { instance: primitive, image, node: HOST });
    assert.equal(conductor.row(uuid).vm_state, 'active');
    const saves = conductor.saves.filter((s) => s.uuid === uuid);
    assert.equal(saves.length, 3, 'building+claim, spawning, active');
    assert.ok(saves.every((s) => s.version === '2.9'));
    assert.ok(saves.find((s) => s.changes.includes('node'))?.changes.includes('compute_id'));
  });

  it('without compute_id pairing the 2.8 save is refused (the fake conductor enforces nova’s rule)', async () => {
    const { conductor, manager } = setup({ release: EPOXY });
    const { primitive } = newInstance(conductor, BUILDING, '2.8');
    const instance = NovaObject.fromPrimitive(primitive);
    instance.set('node', HOST);
    await assert.rejects(conductor.objectAction(ctx, instance, 'save'), /compute_id is not/);
    // the store pairs them, so the same change goes through
    await manager.store.save(ctx, NovaObject.fromPrimitive(primitive), { node: HOST });
  });
});

describe('compute/manager node identity ($state_path/compute_id)', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'nd-cid-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('a new host creates its node with a uuid it then keeps in compute_id', async () => {
    const { conductor, manager } = setup({ statePath: dir });
    await manager.start();
    manager.stop();
    const [node] = [...conductor.nodes.values()];
    assert.ok(node);
    assert.equal(readFileSync(join(dir, 'compute_id'), 'utf8').trim(), node.uuid);
    assert.equal(node.service_id, 1);
  });

  it('a restart finds the node by the file’s uuid; a file of a new machine creates the node with that uuid', async () => {
    const uuid = '5f1c2f0e-8a40-4b6f-9a39-0d7d4a3b8e11';
    writeFileSync(join(dir, 'compute_id'), `${uuid}\n`);
    const { conductor, manager } = setup({ statePath: dir });
    await manager.start();
    manager.stop();
    assert.deepEqual([...conductor.nodes.keys()], [uuid]);
    const again = setup({ statePath: dir });
    again.conductor.nodes.set(uuid, { ...conductor.nodes.get(uuid) });
    await again.manager.start();
    again.manager.stop();
    assert.equal(again.conductor.nodes.size, 1);
    assert.ok(!again.conductor.calls.includes('ComputeNode.get_by_host_and_nodename'));
  });

  it('a host that predates the file gets it written from its existing node', async () => {
    const first = setup();
    await first.manager.start();
    first.manager.stop();
    const [existing] = [...first.conductor.nodes.values()];
    const { conductor, manager } = setup({ statePath: dir });
    conductor.nodes.set(String(existing?.uuid), { ...existing });
    await manager.start();
    manager.stop();
    assert.equal(conductor.nodes.size, 1);
    assert.equal(readFileSync(join(dir, 'compute_id'), 'utf8').trim(), existing?.uuid);
  });

  it('a file naming another host’s node stops the start with an error naming both', async () => {
    const uuid = '0b7a3b64-1d8f-4f0e-a3f1-9f8e7d6c5b4a';
    writeFileSync(join(dir, 'compute_id'), uuid);
    const { conductor, manager } = setup({ statePath: dir });
    conductor.nodes.set(uuid, { uuid, id: 7, host: 'other-host', hypervisor_hostname: 'other-host' });
    await assert.rejects(
      manager.start(),
      /names compute node 0b7a3b64.* of other-host:other-host, but this host is cmp1:cmp1/,
    );
    manager.stop();
  });

  it('compute_id next to a config file (DevStack’s /etc/nova/compute_id) names the node; none is written to state_path', async () => {
    const etc = mkdtempSync(join(tmpdir(), 'nd-cid-etc-'));
    try {
      const uuid = '3d9e6c1a-52b7-4a8e-9f00-6b1f2e3a4c5d';
      writeFileSync(join(etc, 'compute_id'), `${uuid}\n`);
      const { conductor, manager } = setup({ statePath: dir, configDirs: [etc] });
      await manager.start();
      manager.stop();
      assert.deepEqual([...conductor.nodes.keys()], [uuid]);
      assert.equal(existsSync(join(dir, 'compute_id')), false);
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  });

  it('compute_id files that disagree stop the start, naming both (nova’s InvalidNodeConfiguration)', async () => {
    const etc = mkdtempSync(join(tmpdir(), 'nd-cid-etc-'));
    try {
      writeFileSync(join(etc, 'compute_id'), '3d9e6c1a-52b7-4a8e-9f00-6b1f2e3a4c5d');
      writeFileSync(join(dir, 'compute_id'), '0b7a3b64-1d8f-4f0e-a3f1-9f8e7d6c5b4a');
      const { conductor, manager } = setup({ statePath: dir, configDirs: [etc] });
      await assert.rejects(manager.start(), /UUID 0b7a3b64-.* in .*compute_id does not match 3d9e6c1a-/);
      manager.stop();
      assert.equal(conductor.nodes.size, 0);
    } finally {
      rmSync(etc, { recursive: true, force: true });
    }
  });

  it('a file that holds no uuid is refused rather than replaced', async () => {
    writeFileSync(join(dir, 'compute_id'), 'garbage');
    const { manager } = setup({ statePath: dir });
    await assert.rejects(manager.start(), /compute_id holds "garbage", not a compute node uuid/);
    manager.stop();
  });
});

describe('compute/manager 2023.1+ calls', () => {
  it('set_host_enabled sets COMPUTE_STATUS_DISABLED at once and answers like nova-compute', async () => {
    const { manager, placement } = setup();
    await manager.start();
    manager.stop();
    const endpoint = manager.endpoint();
    assert.equal(await endpoint.methods.set_host_enabled?.(adminContext(), { enabled: false }), 'disabled');
    assert.equal(placement.disabled, true);
    assert.equal(await endpoint.methods.set_host_enabled?.(adminContext(), { enabled: true }), 'enabled');
    assert.equal(placement.disabled, false);
  });

  it('allow_share/deny_share: the share mapping goes to error, the action event fails with the reason', async () => {
    const { conductor, manager } = setup({ release: EPOXY });
    const { uuid, primitive } = newInstance(conductor, { vm_state: 'stopped' }, '2.8');
    const mapping = new NovaObject('ShareMapping', '1.2', {
      id: 3,
      uuid: 'share-map-1',
      instance_uuid: uuid,
      share_id: 'share-1',
      status: 'attaching',
    }).toPrimitive();
    await assert.rejects(
      async () => await manager.endpoint().methods.allow_share!(ctx, { instance: primitive, share_mapping: mapping }),
      /does not support shares/,
    );
    const save = conductor.saves.find((s) => s.obj === 'ShareMapping');
    assert.deepEqual(save?.fields, { status: 'error' });
    const finish = conductor.events.find((e) => e.kind === 'event_finish_with_failure');
    assert.equal(finish?.args[1], 'compute_allow_share');
    assert.match(String(finish?.kwargs.exc_val), /does not support shares/);
  });

  it('the endpoint serves the release’s RPC version', () => {
    assert.equal(setup().manager.endpoint().version, '6.1');
    assert.equal(setup({ release: EPOXY }).manager.endpoint().version, '6.4');
    assert.equal(setup({ release: releaseNamed('2026.1')! }).manager.endpoint().version, '6.5');
  });
});
