/**
 * Many hosts, as nova-compute serves them: the ComputeNode usage and stats
 * of Nova's resource tracker moved by claims, failed builds and deletes
 * (not only by the periodic update), failed_builds counted and reset, the
 * opt-in auto-disable, and a failed build sent back to the conductor
 * (compute_task build_instances) when another host may do better, with
 * retry information and alternates as _do_build_and_run_instance sends
 * them; builds that would fail anywhere still end in ERROR.
 */
import assert from 'node:assert/strict';
import { NovaError } from '../../../src/common/errors.js';
import { nullLogger } from '../../../src/common/log.js';
import { NovaObject } from '../../../src/objects/base.js';
import { classifyBuildFailure, retryOf } from '../../../src/compute/build-failure.js';
import type { ComputeManagerOptions } from '../../../src/compute/manager.js';
import { ResourceTracker, type InstanceUsage } from '../../../src/compute/resource-tracker-math.js';
import { decodeEnvelope } from '../../../src/rpc/envelope.js';
import { ComputeTaskAPI, type BuildInstancesArgs, type ComputeTaskCaster } from '../../../src/objects/conductor.js';
import { RELEASES } from '../../../src/objects/releases.js';
import { RpcClient, ReplyListener } from '../../../src/rpc/client.js';
import { adminContext, contextFromValues, type RequestContext } from '../../../src/rpc/context.js';
import { RemoteError } from '../../../src/rpc/errors.js';
import { DEFAULT_QUEUE_FLAGS } from '../../../src/rpc/flags.js';
import type { Transport } from '../../../src/rpc/transport.js';
import { guestExited, hypervisorUnavailable, instanceDeployFailure } from '../../../src/virt/errors.js';
import { bootImage, HOST, newInstance, setup } from '../../support/fake-nova.js';

const ctx = contextFromValues({ request_id: 'req-resched', roles: ['member'], project_id: 'p1' });
const BUILDING = { vm_state: 'building', task_state: 'scheduling', power_state: 0, host: null, node: null };
const PROJECT = 'p1';

/** A Selection primitive as the conductor sends the alternates (host_list). */
function selection(host: string) {
  return {
    'nova_object.name': 'Selection',
    'nova_object.namespace': 'nova',
    'nova_object.version': '1.1',
    'nova_object.data': {
      service_host: host,
      nodename: host,
      compute_node_uuid: `cn-${host}`,
      cell_uuid: 'cell-1',
      limits: null,
      allocation_request: '{"allocations": {}}',
      allocation_request_version: '1.36',
      availability_zone: 'nova',
    },
  };
}
const REQUEST_SPEC = {
  'nova_object.name': 'RequestSpec',
  'nova_object.namespace': 'nova',
  'nova_object.version': '1.14',
  'nova_object.data': { num_instances: 1 },
};

/** build_and_run_instance's arguments as the conductor casts them with retries on (max_attempts 3). */
function buildArgs(primitive: unknown, props: Record<string, unknown> = {}, retry = true) {
  return {
    instance: primitive,
    image: bootImage(props),
    request_spec: REQUEST_SPEC,
    filter_properties: retry ? { retry: { num_attempts: 1, hosts: [[HOST, HOST]] }, scheduler_hints: {} } : {},
    admin_password: null,
    injected_files: [],
    requested_networks: null,
    security_groups: ['default'],
    block_device_mapping: [],
    node: HOST,
    limits: null,
    host_list: [selection('cmp2'), selection('cmp3')],
    accel_uuids: [],
  };
}

class FakeComputeTask implements ComputeTaskCaster {
  readonly casts: BuildInstancesArgs[] = [];
  buildInstances(_ctx: RequestContext, args: BuildInstancesArgs): Promise<void> {
    this.casts.push(structuredClone(args));
    return Promise.resolve();
  }
}

async function started(opts: Partial<ComputeManagerOptions> = {}) {
  const computeTask = new FakeComputeTask();
  const env = setup(opts, { computeTask });
  await env.manager.start();
  return { ...env, computeTask };
}

/** The ComputeNode as the conductor has it now, once the queued writes are done. */
async function node(env: Awaited<ReturnType<typeof started>>): Promise<Record<string, unknown>> {
  // the writes run in the background, one after another: one more periodic update waits behind them
  await env.manager.updateAvailableResource(adminContext());
  const [cn] = [...env.conductor.nodes.values()];
  assert.ok(cn);
  return cn;
}

const usage = (uuid: string, over: Partial<InstanceUsage> = {}): InstanceUsage => ({
  uuid,
  vm_state: 'active',
  task_state: null,
  os_type: null,
  project_id: PROJECT,
  flavor: { memory_mb: 512, vcpus: 1, root_gb: 1, ephemeral_gb: 0, swap: 0 },
  ...over,
});

describe('compute/resource tracker: usage and stats between periodic updates (nova/compute/stats.py)', () => {
  const HOSTR = { vcpus: 4, memory_mb: 8192, local_gb: 100 };
  const reserved = { reserved_host_memory_mb: 512, reserved_host_disk_mb: 0, reserved_host_cpus: 0 };

  it('a claim adds the flavor and the building state; nothing before the first periodic update (NopClaim)', () => {
    const rt = new ResourceTracker(reserved);
    assert.equal(rt.instanceClaim(usage('a', { vm_state: 'building' })), undefined);
    rt.updateAvailableResource(HOSTR, [usage('x')], { uptime: 'up' });
    const v = rt.instanceClaim(usage('a', { vm_state: 'building' }))!;
    assert.equal(v.running_vms, 2);
    assert.equal(v.memory_mb_used, 512 + 1024);
    assert.equal(v.vcpus_used, 2);
    assert.equal(v.local_gb_used, 2);
    assert.deepEqual(v.stats, {
      failed_builds: '0',
      uptime: 'up',
      num_instances: '2',
      num_vm_active: '1',
      num_task_None: '2',
      num_os_type_None: '2',
      [`num_proj_${PROJECT}`]: '2',
      io_workload: '1',
      num_vm_building: '1',
    });
  });

  it('an aborted claim takes it all back; the keys stay at 0 as in Nova’s dict', () => {
    const rt = new ResourceTracker(reserved);
    rt.updateAvailableResource(HOSTR, []);
    rt.instanceClaim(usage('a', { vm_state: 'building' }));
    const v = rt.abortInstanceClaim(usage('a', { vm_state: 'building', task_state: 'spawning' }))!;
    assert.equal(v.running_vms, 0);
    assert.equal(v.memory_mb_used, 512);
    assert.equal(v.vcpus_used, 0);
    assert.equal(v.current_workload, 0);
    assert.deepEqual(v.stats, {
      failed_builds: '0',
      num_instances: '0',
      num_vm_building: '0',
      num_task_None: '0',
      num_os_type_None: '0',
      [`num_proj_${PROJECT}`]: '0',
      io_workload: '0',
    });
  });

  it('update_usage: a state change moves the stats; a deleted or offloaded instance leaves; an untracked one is ignored', () => {
    const rt = new ResourceTracker(reserved);
    rt.updateAvailableResource(HOSTR, [usage('a'), usage('b')]);
    let v = rt.updateUsage(usage('a', { vm_state: 'stopped', task_state: 'powering-on' }))!;
    assert.equal(v.stats.num_vm_active, '1');
    assert.equal(v.stats.num_vm_stopped, '1');
    assert.equal(v.current_workload, 1);
    v = rt.updateUsage(usage('b', { vm_state: 'deleted' }))!;
    assert.equal(v.running_vms, 1);
    assert.equal(v.vcpus_used, 1);
    assert.equal(v.stats.num_instances, '1');
    v = rt.updateUsage(usage('a', { vm_state: 'shelved_offloaded' }))!;
    assert.equal(v.running_vms, 0);
    assert.equal(v.memory_mb_used, 512);
    assert.equal(rt.updateUsage(usage('zz', { vm_state: 'deleted' })), undefined);
  });

  it('failed_builds: counted, kept across the periodic update (the stats are cleared around it), reset by a success', () => {
    const rt = new ResourceTracker(reserved);
    rt.updateAvailableResource(HOSTR, []);
    rt.buildFailed();
    rt.buildFailed();
    assert.equal(rt.updateAvailableResource(HOSTR, [], { uptime: 'u' }).stats.failed_builds, '2');
    rt.buildSucceeded();
    assert.equal(rt.view().stats.failed_builds, '0');
  });
});

describe('compute/manager: the ComputeNode follows builds and deletes', () => {
  it('a build writes its claim at once (building, io_workload 1); a delete writes its removal', async () => {
    const env = await started();
    try {
      const { uuid, primitive } = newInstance(env.conductor, { ...BUILDING, project_id: PROJECT });
      const writes = env.conductor.computeNodeWrites.length;
      await env.manager.buildAndRunInstance(ctx, buildArgs(primitive));
      await env.manager.nodeWritesSettled();
      const claim = env.conductor.computeNodeWrites.slice(writes).find((w) => w.fields.running_vms === 1);
      assert.ok(claim, JSON.stringify(env.conductor.computeNodeWrites.slice(writes)));
      const stats = claim.fields.stats as Record<string, string>;
      assert.equal(stats.num_vm_building, '1');
      assert.equal(stats.io_workload, '1');
      assert.equal(claim.fields.vcpus_used, 1);
      assert.equal(claim.fields.memory_mb_used, 512);
      // the periodic update sees it ACTIVE
      const cn = await node(env);
      assert.equal((cn.stats as Record<string, string>).num_vm_active, '1');
      assert.equal(cn.running_vms, 1);

      const row = env.conductor.row(uuid);
      row.task_state = 'deleting';
      await env.manager.terminateInstance(adminContext(), {
        instance: NovaObject.create('Instance', '2.7', row).toPrimitive(),
        bdms: null,
      });
      await env.manager.nodeWritesSettled();
      const removal = env.conductor.computeNodeWrites.at(-1)!;
      assert.equal(removal.method, 'save');
      assert.equal((removal.fields.stats as Record<string, string>).num_instances, '0', JSON.stringify(removal));
      assert.equal(removal.fields.running_vms, 0);
      assert.equal(removal.fields.vcpus_used, 0);
    } finally {
      env.manager.stop();
    }
  });
});

describe('compute/manager: failed builds (failed_builds, auto-disable)', () => {
  it('each failed build counts, rescheduled or not; a success resets the count', async () => {
    const env = await started();
    try {
      for (let i = 0; i < 2; i++) {
        const { primitive } = newInstance(env.conductor, BUILDING);
        await env.manager.buildAndRunInstance(ctx, buildArgs(primitive, { fake_fail_spawn: 'no' }, i === 0));
      }
      assert.equal(env.computeTask.casts.length, 1, 'the first had retry information');
      assert.equal(((await node(env)).stats as Record<string, string>).failed_builds, '2');
      const { primitive } = newInstance(env.conductor, BUILDING);
      await env.manager.buildAndRunInstance(ctx, buildArgs(primitive));
      assert.equal(((await node(env)).stats as Record<string, string>).failed_builds, '0');
    } finally {
      env.manager.stop();
    }
  });

  it('an instance deleted during its build counts as a failed build (Nova: build_results.FAILED)', async () => {
    const env = await started();
    try {
      const { uuid, primitive } = newInstance(env.conductor, BUILDING);
      env.conductor.deleteOnSave.add(uuid);
      await env.manager.buildAndRunInstance(ctx, buildArgs(primitive));
      assert.equal(((await node(env)).stats as Record<string, string>).failed_builds, '1');
      assert.deepEqual(env.computeTask.casts, []);
    } finally {
      env.manager.stop();
    }
  });

  it('[compute] consecutive_build_service_disable_threshold = 0: failed builds are not reported', async () => {
    const env = await started({ buildFailureReporting: 0 });
    try {
      const { primitive } = newInstance(env.conductor, BUILDING);
      await env.manager.buildAndRunInstance(ctx, buildArgs(primitive, { fake_fail_spawn: 'no' }));
      assert.equal(((await node(env)).stats as Record<string, string>).failed_builds, '0');
    } finally {
      env.manager.stop();
    }
  });

  it('without [docker] build_failure_disable_threshold the service is never disabled (Nova since Rocky)', async () => {
    const env = await started();
    try {
      for (let i = 0; i < 12; i++) {
        const { primitive } = newInstance(env.conductor, BUILDING);
        await env.manager.buildAndRunInstance(ctx, buildArgs(primitive, { fake_fail_spawn: 'no' }));
      }
      assert.equal(env.conductor.service?.disabled, false);
    } finally {
      env.manager.stop();
    }
  });

  it('[docker] build_failure_disable_threshold = 2: disabled at the second failure in a row, with Nova’s reason; the trait follows', async () => {
    const env = await started({ buildFailureDisableThreshold: 2 });
    try {
      const fail = async () => {
        const { primitive } = newInstance(env.conductor, BUILDING);
        await env.manager.buildAndRunInstance(ctx, buildArgs(primitive, { fake_fail_spawn: 'no' }));
      };
      await fail();
      const { primitive } = newInstance(env.conductor, BUILDING);
      await env.manager.buildAndRunInstance(ctx, buildArgs(primitive)); // a success in between starts again
      await fail();
      assert.equal(env.conductor.service?.disabled, false);
      await fail();
      assert.equal(env.conductor.service?.disabled, true);
      assert.equal(env.conductor.service?.disabled_reason, 'Auto-disabled due to 2 build failures');
      assert.equal(env.placement.disabled, true, 'COMPUTE_STATUS_DISABLED at once');
      // the operator re-enables it (the API calls set_host_enabled): the count starts afresh
      const row = env.conductor.service;
      assert.ok(row);
      row.disabled = false;
      await env.manager.setHostEnabled(adminContext(), true);
      await fail();
      assert.equal(env.conductor.service?.disabled, false);
    } finally {
      env.manager.stop();
    }
  });
});

describe('compute/manager: reschedule (_do_build_and_run_instance RescheduledException)', () => {
  it('a spawn failure another host may not have: cleaned up here, back to the conductor with retry and alternates', async () => {
    const env = await started();
    try {
      const { uuid, primitive, row } = newInstance(env.conductor, { ...BUILDING, availability_zone: 'nova' });
      env.placement.consumers.set(uuid, { [`cn-${HOST}`]: { VCPU: 1 } });
      const args = buildArgs(primitive, { fake_fail_spawn: 'dockerd hiccup' });
      await env.manager.buildAndRunInstance(ctx, args);
      assert.equal(env.computeTask.casts.length, 1);
      const cast = env.computeTask.casts[0]!;
      assert.deepEqual(Object.keys(cast).sort(), [
        'admin_password',
        'block_device_mapping',
        'filter_properties',
        'host_lists',
        'image',
        'injected_files',
        'instances',
        'request_spec',
        'requested_networks',
        'security_groups',
      ]);
      assert.deepEqual(cast.host_lists, [args.host_list], 'the alternates as received');
      assert.deepEqual(cast.request_spec, REQUEST_SPEC);
      assert.deepEqual(cast.image, args.image);
      assert.deepEqual(cast.security_groups, ['default']);
      const retry = cast.filter_properties.retry as Record<string, unknown>;
      assert.equal(retry.num_attempts, 1);
      assert.deepEqual(retry.hosts, [[HOST, HOST]]);
      assert.match(String(retry.exc_reason), /dockerd hiccup/);
      assert.ok(Array.isArray(retry.exc) && retry.exc.length === 1);
      assert.deepEqual(cast.filter_properties.scheduler_hints, {});
      const sent = (cast.instances[0] as { 'nova_object.data': Record<string, unknown> })['nova_object.data'];
      assert.equal(sent.uuid, uuid);
      assert.equal(sent.host, null);
      assert.equal(sent.node, null);
      assert.equal(sent.task_state, 'scheduling');
      assert.equal(sent.vm_state, 'building');
      // the row as the conductor will find it; nothing left here
      assert.equal(row().vm_state, 'building');
      assert.equal(row().task_state, 'scheduling');
      assert.equal(row().host, null);
      assert.equal(row().launched_on, null);
      assert.equal(row().availability_zone, null);
      assert.deepEqual(env.conductor.faults, [], 'no fault: the conductor records one if no host is left');
      assert.deepEqual(env.placement.deleted, [uuid], 'allocations removed before the cast');
      assert.deepEqual(await env.driver.listInstanceUuids(), []);
      assert.equal(env.manager.tracker.isTracked(uuid), false, 'the claim taken back');
    } finally {
      env.manager.stop();
    }
  });

  it('no retry information (a forced host, max_attempts 1): ERROR here with the error as the fault, as before', async () => {
    const env = await started();
    try {
      const { uuid, primitive, row } = newInstance(env.conductor, BUILDING);
      await env.manager.buildAndRunInstance(ctx, buildArgs(primitive, { fake_fail_spawn: 'dockerd hiccup' }, false));
      assert.deepEqual(env.computeTask.casts, []);
      assert.equal(row().vm_state, 'error');
      assert.match(String(env.conductor.faults[0]?.message), /dockerd hiccup/);
      assert.deepEqual(env.placement.deleted, [uuid]);
    } finally {
      env.manager.stop();
    }
  });

  it('HypervisorUnavailable from the spawn is rescheduled, also when the cleanup cannot reach it (dockerd dead)', async () => {
    const env = await started();
    try {
      const down = hypervisorUnavailable(HOST);
      env.driver.spawn = () => Promise.reject(down);
      const a = newInstance(env.conductor, BUILDING);
      await env.manager.buildAndRunInstance(ctx, buildArgs(a.primitive));
      assert.equal(env.computeTask.casts.length, 1);
      // dockerd gone: the image lookup failed (no image_ready mark), so did the cleanup; nothing was made here
      env.driver.destroy = () => Promise.reject(hypervisorUnavailable(HOST));
      const b = newInstance(env.conductor, BUILDING);
      await env.manager.buildAndRunInstance(ctx, buildArgs(b.primitive));
      assert.equal(env.computeTask.casts.length, 2, 'rescheduled');
      assert.equal(b.row().host, null, 'off this host');
      assert.notEqual(b.row().vm_state, 'error');
      assert.equal(env.conductor.faults.length, 0);
    } finally {
      env.manager.stop();
    }
  });

  it('a guest that may exist (the spawn got past image_ready) and cannot be removed is not rescheduled (Could not clean up failed build)', async () => {
    const env = await started();
    try {
      env.driver.spawn = (dctx) => {
        dctx.onProgress?.('image_ready');
        return Promise.reject(hypervisorUnavailable(HOST));
      };
      env.driver.destroy = () => Promise.reject(hypervisorUnavailable(HOST));
      const b = newInstance(env.conductor, BUILDING);
      await env.manager.buildAndRunInstance(ctx, buildArgs(b.primitive));
      assert.equal(env.computeTask.casts.length, 0, 'not rescheduled');
      assert.equal(b.row().vm_state, 'error');
      assert.match(
        String(env.conductor.faults[0]?.message),
        /^Build of instance .* aborted: Connection to the hypervisor/,
      );
    } finally {
      env.manager.stop();
    }
  });

  for (const [what, props, fault] of [
    ['a guest whose command exits at once', { fake_exit_at_once: 'status 1' }, /status 1/],
    ['an image the driver refuses (ImageUnacceptable)', { fake_fail_spawn: 'x' }, /unacceptable/],
  ] as const) {
    it(`would fail anywhere, not rescheduled: ${what}`, async () => {
      const env = await started();
      try {
        if (what.includes('ImageUnacceptable')) {
          env.driver.spawn = () =>
            Promise.reject(
              new NovaError('ImageUnacceptable', 'Image img-1 is unacceptable: corrupt', { image_id: 'img-1' }),
            );
        }
        const { primitive, row } = newInstance(env.conductor, BUILDING);
        await env.manager.buildAndRunInstance(ctx, buildArgs(primitive, props));
        assert.deepEqual(env.computeTask.casts, []);
        assert.equal(row().vm_state, 'error');
        assert.match(String(env.conductor.faults[0]?.message), fault);
        assert.equal(((await node(env)).stats as Record<string, string>).failed_builds, '1');
      } finally {
        env.manager.stop();
      }
    });
  }

  it('classifyBuildFailure: Nova’s lists (deleted, network and image aborts, everything else rescheduled)', () => {
    const u = 'uuid-1';
    assert.equal(
      classifyBuildFailure(u, new RemoteError('InstanceNotFound', 'nova.exception', 'gone')).kind,
      'deleted',
    );
    assert.equal(
      classifyBuildFailure(u, new RemoteError('UnexpectedDeletingTaskStateError', 'nova.exception', 'x')).kind,
      'deleted',
    );
    const vif = classifyBuildFailure(
      u,
      new NovaError('VirtualInterfaceCreateException', 'Virtual Interface creation failed'),
    );
    assert.equal(vif.kind, 'abort');
    assert.match(String((vif as { error: Error }).error.message), /not rescheduling/);
    for (const k of [
      'ImageUnacceptable',
      'ImageNotActive',
      'FlavorDiskTooSmall',
      'BuildAbortException',
      'InvalidInput',
    ]) {
      assert.equal(classifyBuildFailure(u, new NovaError(k, k)).kind, 'abort', k);
    }
    assert.equal(classifyBuildFailure(u, guestExited(u, 'exit 1')).kind, 'abort');
    for (const e of [
      instanceDeployFailure(u, 'creating the container failed'),
      hypervisorUnavailable(HOST),
      new NovaError('ImageNotFound', 'Image x could not be found.'),
      new NovaError('GlanceConnectionFailed', 'down'),
      new Error('boom'),
    ]) {
      const c = classifyBuildFailure(u, e);
      assert.equal(c.kind, 'reschedule', e.message);
      assert.equal((c as { reason: string }).reason, e.message);
    }
    assert.equal(retryOf({}), undefined);
    assert.equal(retryOf({ retry: {} }), undefined, 'Python: `if not retry`');
    assert.deepEqual(retryOf({ retry: { num_attempts: 1 } }), { num_attempts: 1 });
  });
});

describe('objects/conductor ComputeTaskAPI.build_instances: the cast on the wire, per release', () => {
  for (const release of RELEASES) {
    it(`${release.name}: topic conductor, namespace compute_task, version 1.19, Nova's keyword arguments`, async () => {
      const published: Array<{ exchange: string; key: string; body: Buffer }> = [];
      const transport: Transport = {
        addConsumer: () => Promise.resolve(() => Promise.resolve()),
        deleteQueue: () => Promise.resolve(),
        publish: (exchange, key, body) => {
          published.push({ exchange, key, body });
          return Promise.resolve();
        },
      };
      const rpc = new RpcClient(transport, new ReplyListener(transport, DEFAULT_QUEUE_FLAGS, nullLogger()), {
        exchange: 'nova',
        topic: 'conductor',
        flags: DEFAULT_QUEUE_FLAGS,
        defaultTimeoutS: 60,
        logger: nullLogger(),
      });
      const args: BuildInstancesArgs = {
        instances: [{ 'nova_object.name': 'Instance' }],
        image: bootImage(),
        filter_properties: { retry: { num_attempts: 1, hosts: [], exc_reason: 'r', exc: ['r\n'] } },
        admin_password: null,
        injected_files: [],
        requested_networks: null,
        security_groups: ['default'],
        block_device_mapping: [],
        request_spec: REQUEST_SPEC,
        host_lists: [[selection('cmp2')]],
      };
      await new ComputeTaskAPI(rpc, release).buildInstances(ctx, args);
      assert.equal(published.length, 1);
      assert.equal(published[0]!.exchange, 'nova');
      assert.equal(published[0]!.key, 'conductor');
      const msg = decodeEnvelope(published[0]!.body);
      assert.equal(msg.method, 'build_instances');
      assert.equal(msg.namespace, 'compute_task');
      assert.equal(msg.version, '1.19');
      assert.equal('_msg_id' in msg, false, 'a cast: nobody answers');
      assert.deepEqual(msg.args, args);
    });
  }
});
