/**
 * The ComputeDriver contract (src/virt/driver.ts) as a mocha suite any driver
 * runs: `describeDriverContract('FakeDriver', makeHarness)`.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { NovaError } from '../../src/common/errors.js';
import type { ComputeDriver } from '../../src/virt/driver.js';
import { PowerState } from '../../src/virt/power-state.js';
import { randomUUID as uuid4 } from 'node:crypto';
import type { DriverContext, ImageMeta, InstanceSpec, NetworkInfo } from '../../src/virt/types.js';

export interface DriverHarness {
  driver: ComputeDriver;
  host: string;
  /** An image whose guest keeps running. */
  image: ImageMeta;
  /** An image that does not exist. */
  missingImage: ImageMeta;
  /** Makes a running guest die abnormally (it must then read CRASHED). */
  crash(instance: InstanceSpec): Promise<void>;
  /** Whether anything of the instance is left on the hypervisor, owned by this driver or not. */
  leftovers(uuid: string): Promise<boolean>;
  /** A second driver on another compute host sharing the same hypervisor, when the driver supports that. */
  otherHostDriver?(): ComputeDriver;
  /** Removes whatever the tests created (called after each test). */
  cleanup(): Promise<void>;
  /**
   * Networking: `n` fresh VIFs the driver can plug on this hypervisor, as
   * network_info (absent: the networking cases are skipped).
   */
  networkInfo?(n: number): NetworkInfo;
  /** The port ids whose host devices exist (plugged) for the instance. */
  pluggedPorts?(uuid: string): Promise<string[]>;
  /** Called once after the suite. */
  teardown?(): Promise<void>;
}

export const ctx: DriverContext = { requestId: 'req-contract' };

export function makeInstance(host: string, overrides: Partial<InstanceSpec> = {}): InstanceSpec {
  const uuid = randomUUID();
  return {
    uuid,
    hostname: `vm-${uuid.slice(0, 8)}`,
    display_name: 'contract test',
    project_id: 'p-contract',
    user_id: 'u-contract',
    host,
    node: host,
    metadata: { role: 'test' },
    flavor: {
      flavorid: '42',
      name: 'm1.tiny',
      memory_mb: 64,
      vcpus: 1,
      root_gb: 1,
      ephemeral_gb: 0,
      swap: 0,
      extra_specs: {},
    },
    image_ref: 'img',
    ...overrides,
  };
}

export function isNova(klass: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(err instanceof NovaError, `expected NovaError ${klass}, got ${String(err)}`);
    assert.equal(err.novaClass, klass, err.message);
    return true;
  };
}

export function describeDriverContract(name: string, makeHarness: () => Promise<DriverHarness> | DriverHarness): void {
  describe(`ComputeDriver contract: ${name}`, function () {
    this.timeout(60_000);
    let h: DriverHarness;

    before(async () => {
      h = await makeHarness();
      await h.driver.initHost(h.host);
    });
    afterEach(async () => {
      await h.cleanup();
    });
    after(async () => {
      await h?.teardown?.();
    });

    const spawn = async (inst: InstanceSpec, image?: ImageMeta) =>
      h.driver.spawn(ctx, inst, image ?? h.image, [], undefined, undefined, [], undefined);
    const state = async (inst: InstanceSpec) => (await h.driver.getInfo(inst)).power_state;

    it('spawn: the instance is listed and RUNNING', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      assert.ok((await h.driver.listInstanceUuids()).includes(inst.uuid));
      assert.equal(await state(inst), PowerState.RUNNING);
    });

    it('spawn twice: InstanceExists, the first guest survives', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      await assert.rejects(spawn(inst), isNova('InstanceExists'));
      assert.equal(await state(inst), PowerState.RUNNING);
    });

    it('spawn of a missing image: ImageNotFound, nothing left behind', async () => {
      const inst = makeInstance(h.host);
      await assert.rejects(spawn(inst, h.missingImage), isNova('ImageNotFound'));
      assert.ok(!(await h.driver.listInstanceUuids()).includes(inst.uuid));
      assert.equal(await h.leftovers(inst.uuid), false);
    });

    it('spawn whose readyToStart rejects: that reason, nothing left behind', async () => {
      const inst = makeInstance(h.host);
      const gate = Promise.reject(new Error('Instance was deleted during the build'));
      gate.catch(() => undefined);
      await assert.rejects(
        h.driver.spawn({ ...ctx, readyToStart: gate }, inst, h.image, [], undefined, undefined, [], undefined),
        /deleted during the build/,
      );
      assert.ok(!(await h.driver.listInstanceUuids()).includes(inst.uuid));
      assert.equal(await h.leftovers(inst.uuid), false);
    });

    it('getInfo of a missing instance: InstanceNotFound', async () => {
      await assert.rejects(h.driver.getInfo(makeInstance(h.host)), isNova('InstanceNotFound'));
    });

    it('destroy removes everything; destroy again and destroy of a never-spawned instance succeed', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      await h.driver.destroy(ctx, inst, []);
      assert.ok(!(await h.driver.listInstanceUuids()).includes(inst.uuid));
      await assert.rejects(h.driver.getInfo(inst), isNova('InstanceNotFound'));
      assert.equal(await h.leftovers(inst.uuid), false);
      await h.driver.destroy(ctx, inst, []);
      await h.driver.destroy(ctx, makeInstance(h.host), []);
    });

    it('power off → SHUTDOWN (idempotent), power on → RUNNING (idempotent)', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      await h.driver.powerOff(inst, 5);
      assert.equal(await state(inst), PowerState.SHUTDOWN);
      await h.driver.powerOff(inst, 5);
      assert.equal(await state(inst), PowerState.SHUTDOWN);
      assert.ok((await h.driver.listInstanceUuids()).includes(inst.uuid), 'a stopped guest is still listed');
      await h.driver.powerOn(ctx, inst, []);
      assert.equal(await state(inst), PowerState.RUNNING);
      await h.driver.powerOn(ctx, inst, []);
      assert.equal(await state(inst), PowerState.RUNNING);
    });

    it('power off with timeout 0 forces the guest off', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      await h.driver.powerOff(inst, 0);
      assert.equal(await state(inst), PowerState.SHUTDOWN);
    });

    it('pause → PAUSED (idempotent), unpause → RUNNING (idempotent)', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      await h.driver.pause(inst);
      assert.equal(await state(inst), PowerState.PAUSED);
      await h.driver.pause(inst);
      assert.equal(await state(inst), PowerState.PAUSED);
      await h.driver.unpause(inst);
      assert.equal(await state(inst), PowerState.RUNNING);
      await h.driver.unpause(inst);
      assert.equal(await state(inst), PowerState.RUNNING);
    });

    it('pause of a stopped guest: InstanceInvalidState', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      await h.driver.powerOff(inst, 0);
      await assert.rejects(h.driver.pause(inst), isNova('InstanceInvalidState'));
    });

    it('suspend → SUSPENDED, resume → RUNNING', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      await h.driver.suspend(ctx, inst);
      assert.equal(await state(inst), PowerState.SUSPENDED);
      await h.driver.resume(ctx, inst, []);
      assert.equal(await state(inst), PowerState.RUNNING);
    });

    it('power off of a paused guest → SHUTDOWN', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      await h.driver.pause(inst);
      await h.driver.powerOff(inst, 1);
      assert.equal(await state(inst), PowerState.SHUTDOWN);
    });

    for (const type of ['SOFT', 'HARD'] as const) {
      it(`${type} reboot of a running guest → RUNNING`, async () => {
        const inst = makeInstance(h.host);
        await spawn(inst);
        await h.driver.reboot(ctx, inst, [], type);
        assert.equal(await state(inst), PowerState.RUNNING);
      });

      it(`${type} reboot of a stopped guest → RUNNING`, async () => {
        const inst = makeInstance(h.host);
        await spawn(inst);
        await h.driver.powerOff(inst, 0);
        await h.driver.reboot(ctx, inst, [], type);
        assert.equal(await state(inst), PowerState.RUNNING);
      });
    }

    it('HARD reboot of a paused guest → RUNNING', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      await h.driver.pause(inst);
      await h.driver.reboot(ctx, inst, [], 'HARD');
      assert.equal(await state(inst), PowerState.RUNNING);
    });

    it('a guest that dies reads CRASHED; power on brings it back', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      await h.crash(inst);
      assert.equal(await state(inst), PowerState.CRASHED);
      await h.driver.powerOn(ctx, inst, []);
      assert.equal(await state(inst), PowerState.RUNNING);
    });

    it('listInstancePowerStates agrees with getInfo for every state, in one call', async () => {
      const running = makeInstance(h.host);
      const stopped = makeInstance(h.host);
      const paused = makeInstance(h.host);
      const crashed = makeInstance(h.host);
      for (const i of [running, stopped, paused, crashed]) await spawn(i);
      await h.driver.powerOff(stopped, 0);
      await h.driver.pause(paused);
      await h.crash(crashed);
      const all = await h.driver.listInstancePowerStates();
      assert.equal(all.get(running.uuid), PowerState.RUNNING);
      assert.equal(all.get(stopped.uuid), PowerState.SHUTDOWN);
      assert.equal(all.get(paused.uuid), PowerState.PAUSED);
      assert.equal(all.get(crashed.uuid), PowerState.CRASHED);
      for (const i of [running, stopped, paused, crashed]) assert.equal(all.get(i.uuid), await state(i));
    });

    it('resize in place: power off, the new flavor’s resources and RUNNING, the old ones back on revert', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      const node = (await h.driver.getAvailableNodes())[0] ?? h.host;
      const used = async () => {
        const r = await h.driver.getAvailableResource(node);
        return [r.memory_mb_used, r.vcpus_used];
      };
      const [mem0 = 0, cpu0 = 0] = await used();
      const bigger = {
        ...inst,
        flavor: { ...inst.flavor, name: 'm1.bigger', flavorid: '43', memory_mb: 96, vcpus: 2 },
      };
      assert.equal(typeof (await h.driver.migrateDiskAndPowerOff(ctx, inst, h.host, bigger.flavor, 0)), 'string');
      assert.equal(await state(inst), PowerState.SHUTDOWN);
      await h.driver.finishMigration(ctx, bigger, '', [], h.image, false, true);
      assert.equal(await state(inst), PowerState.RUNNING);
      assert.deepEqual(await used(), [mem0 + 32, cpu0 + 1], 'usage follows the new flavor');
      await h.driver.powerOff(inst, 0);
      await h.driver.finishRevertMigration(ctx, inst, [], true);
      assert.equal(await state(inst), PowerState.RUNNING);
      assert.deepEqual(await used(), [mem0, cpu0], 'usage of the old flavor again');
      await h.driver.confirmMigration(ctx, inst);
      await h.driver.confirmMigration(ctx, inst);
      assert.equal(await state(inst), PowerState.RUNNING);
    });

    it('finishMigration without powerOn leaves the guest SHUTDOWN', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      await h.driver.migrateDiskAndPowerOff(ctx, inst, h.host, inst.flavor, 0);
      await h.driver.finishMigration(ctx, inst, '', [], h.image, false, false);
      assert.equal(await state(inst), PowerState.SHUTDOWN);
    });

    it('resize steps on a missing instance: InstanceNotFound; confirmMigration succeeds', async () => {
      const inst = makeInstance(h.host);
      await assert.rejects(
        h.driver.migrateDiskAndPowerOff(ctx, inst, h.host, inst.flavor, 0),
        isNova('InstanceNotFound'),
      );
      await assert.rejects(
        h.driver.finishMigration(ctx, inst, '', [], h.image, false, true),
        isNova('InstanceNotFound'),
      );
      await assert.rejects(h.driver.finishRevertMigration(ctx, inst, [], true), isNova('InstanceNotFound'));
      await h.driver.confirmMigration(ctx, inst);
    });

    it('operations on a missing instance: InstanceNotFound', async () => {
      const inst = makeInstance(h.host);
      await assert.rejects(h.driver.powerOff(inst, 0), isNova('InstanceNotFound'));
      await assert.rejects(h.driver.powerOn(ctx, inst, []), isNova('InstanceNotFound'));
      await assert.rejects(h.driver.reboot(ctx, inst, [], 'HARD'), isNova('InstanceNotFound'));
      await assert.rejects(h.driver.pause(inst), isNova('InstanceNotFound'));
      await assert.rejects(h.driver.getConsoleOutput(ctx, inst), isNova('InstanceNotFound'));
      await assert.rejects(h.driver.getDiagnostics(inst), isNova('InstanceNotFound'));
    });

    it('diagnostics of a running guest: RUNNING, the flavor’s memory as the maximum, one CPU entry', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      const d = await h.driver.getDiagnostics(inst);
      assert.equal(d.power_state, PowerState.RUNNING);
      assert.equal(d.memory_details.maximum, inst.flavor.memory_mb);
      assert.ok(d.memory_details.used !== null && d.memory_details.used <= inst.flavor.memory_mb, JSON.stringify(d));
      assert.ok(d.cpu_details.length >= 1);
      assert.ok(d.uptime !== null && d.uptime >= 0);
    });

    it('console output is a string; tailLines limits it', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      const all = await h.driver.getConsoleOutput(ctx, inst);
      assert.equal(typeof all, 'string');
      const one = await h.driver.getConsoleOutput(ctx, inst, 1);
      assert.ok(one.split('\n').filter(Boolean).length <= 1, one);
    });

    it('snapshot: the task moves to image_pending_upload, then image_uploading; the guest keeps running', async () => {
      const inst = makeInstance(h.host);
      await spawn(inst);
      const calls: Array<[string, string | undefined]> = [];
      await h.driver.snapshot(ctx, inst, randomUUID(), (taskState, expected) => {
        calls.push([taskState, expected]);
      });
      assert.deepEqual(calls, [
        ['image_pending_upload', undefined],
        ['image_uploading', 'image_pending_upload'],
      ]);
      assert.equal(await state(inst), PowerState.RUNNING);
    });

    it('snapshot: InstanceNotFound when missing; a refused task update stops it', async () => {
      await assert.rejects(
        h.driver.snapshot(ctx, makeInstance(h.host), randomUUID(), () => undefined),
        isNova('InstanceNotFound'),
      );
      const inst = makeInstance(h.host);
      await spawn(inst);
      const refused = new Error('UnexpectedTaskStateError');
      const calls: string[] = [];
      await assert.rejects(
        h.driver.snapshot(ctx, inst, randomUUID(), (taskState) => {
          calls.push(taskState);
          if (taskState === 'image_uploading') throw refused;
        }),
        (err) => err === refused,
      );
      assert.deepEqual(calls, ['image_pending_upload', 'image_uploading']);
      assert.equal(await state(inst), PowerState.RUNNING);
    });

    it('available resource: inventory, usage of our guests, non-null cpu_info', async () => {
      const before = await h.driver.getAvailableResource(h.host);
      const inst = makeInstance(h.host);
      await spawn(inst);
      const after = await h.driver.getAvailableResource(h.host);
      for (const k of ['vcpus', 'memory_mb', 'local_gb', 'hypervisor_version'] as const) {
        assert.ok(Number.isInteger(after[k]) && after[k] >= 0, `${k}=${after[k]}`);
      }
      assert.ok(after.vcpus > 0 && after.memory_mb > 0);
      assert.equal(after.vcpus_used - before.vcpus_used, inst.flavor.vcpus);
      assert.equal(after.memory_mb_used - before.memory_mb_used, inst.flavor.memory_mb);
      assert.equal(after.local_gb_used - before.local_gb_used, inst.flavor.root_gb + inst.flavor.ephemeral_gb);
      assert.equal(typeof after.cpu_info, 'string');
      assert.equal(typeof JSON.parse(after.cpu_info), 'object');
      assert.deepEqual(await h.driver.getAvailableNodes(), [after.hypervisor_hostname]);
      assert.ok(after.supported_instances.length > 0);
    });

    it('host uptime looks like uptime(1)', async () => {
      assert.match(await h.driver.getHostUptime(), /^ \d\d:\d\d:\d\d up .*load average: [\d.]+, [\d.]+, [\d.]+$/);
    });

    it('another compute host sharing the hypervisor sees none of our guests', async function () {
      if (!h.otherHostDriver) this.skip();
      const other = h.otherHostDriver();
      const inst = makeInstance(h.host);
      await spawn(inst);
      assert.ok(!(await other.listInstanceUuids()).includes(inst.uuid));
      await assert.rejects(other.getInfo(inst), isNova('InstanceNotFound'));
      await other.destroy(ctx, inst, []);
      assert.equal(await state(inst), PowerState.RUNNING, 'the other host must not destroy our guest');
    });

    describe('networking', () => {
      before(function () {
        if (!h.networkInfo || !h.pluggedPorts) this.skip();
      });
      const nets = (n: number) => h.networkInfo!(n);
      const plugged = async (inst: InstanceSpec) => (await h.pluggedPorts!(inst.uuid)).sort();
      const ids = (vifs: NetworkInfo) => vifs.map((v) => v.id).sort();

      it('spawn plugs every VIF inside waitForInstanceEvents, before the guest exists; destroy unplugs', async () => {
        const inst = makeInstance(h.host);
        const vifs = nets(2);
        vifs[1]!.active = true;
        let waited: Array<[string, string]> | undefined;
        let duringWait: string[] = [];
        let guestDuringWait = true;
        const wctx: DriverContext = {
          ...ctx,
          waitForInstanceEvents: async (events, body) => {
            waited = events;
            await body();
            duringWait = await plugged(inst);
            guestDuringWait = (await h.driver.listInstanceUuids()).includes(inst.uuid);
          },
        };
        await h.driver.spawn(wctx, inst, h.image, [], undefined, undefined, Promise.resolve(vifs), undefined);
        assert.deepEqual(waited, [['network-vif-plugged', vifs[0]!.id]], 'only the VIF Neutron has not marked active');
        assert.deepEqual(duringWait, ids(vifs), 'plugged by the body');
        assert.equal(guestDuringWait, false, 'the guest is made only after the wait');
        assert.equal(await state(inst), PowerState.RUNNING);
        await h.driver.destroy(ctx, inst, vifs);
        assert.deepEqual(await plugged(inst), []);
        assert.equal(await h.leftovers(inst.uuid), false);
      });

      it('a failed wait (VirtualInterfaceCreateException) fails the spawn with it, nothing left behind', async () => {
        const inst = makeInstance(h.host);
        const failed = new NovaError('VirtualInterfaceCreateException', 'Virtual Interface creation failed');
        const wctx: DriverContext = {
          ...ctx,
          waitForInstanceEvents: async (_events, body) => {
            await body();
            throw failed;
          },
        };
        await assert.rejects(
          h.driver.spawn(wctx, inst, h.image, [], undefined, undefined, nets(1), undefined),
          (err) => err === failed,
        );
        assert.deepEqual(await plugged(inst), []);
        assert.equal(await h.leftovers(inst.uuid), false);
      });

      it('a VIF the driver cannot plug: VirtualInterfacePlugException naming the port, nothing left', async () => {
        const inst = makeInstance(h.host);
        const vifs = nets(1);
        vifs[0]!.type = 'binding_failed';
        await assert.rejects(
          h.driver.spawn(ctx, inst, h.image, [], undefined, undefined, vifs, undefined),
          (err: unknown) =>
            isNova('VirtualInterfacePlugException')(err) && (err as Error).message.includes(vifs[0]!.id),
        );
        assert.equal(await h.leftovers(inst.uuid), false);
      });

      it('power off unplugs, power on and reboot plug again; plugVifs never duplicates', async () => {
        const inst = makeInstance(h.host);
        const vifs = nets(1);
        await h.driver.spawn(ctx, inst, h.image, [], undefined, undefined, vifs, undefined);
        await h.driver.powerOff(inst, 0);
        assert.deepEqual(await plugged(inst), [], 'a SHUTOFF guest has no network');
        await h.driver.plugVifs(inst, vifs);
        assert.deepEqual(await plugged(inst), [], 'plug_vifs leaves a stopped guest alone');
        await h.driver.powerOn(ctx, inst, vifs);
        assert.deepEqual(await plugged(inst), ids(vifs));
        await h.driver.reboot(ctx, inst, vifs, 'HARD');
        await h.driver.reboot(ctx, inst, [], 'SOFT');
        assert.deepEqual(await plugged(inst), ids(vifs));
        await h.driver.plugVifs(inst, vifs);
        await h.driver.plugVifs(inst, vifs);
        assert.deepEqual(await plugged(inst), ids(vifs));
        await h.driver.powerOff(inst, 0);
        await h.driver.reboot(ctx, inst, vifs, 'HARD');
        assert.equal(await state(inst), PowerState.RUNNING);
        assert.deepEqual(await plugged(inst), ids(vifs), 'a hard reboot of a stopped guest plugs its VIFs');
      });

      it('attach and detach an interface; detach is idempotent; a guest booted without network refuses', async () => {
        assert.equal(h.driver.capabilities.supports_attach_interface, true);
        const inst = makeInstance(h.host);
        const [first, second] = nets(2);
        await h.driver.spawn(ctx, inst, h.image, [], undefined, undefined, [first!], undefined);
        await h.driver.attachInterface(ctx, inst, h.image, second!);
        assert.deepEqual(await plugged(inst), ids([first!, second!]));
        await h.driver.detachInterface(ctx, inst, first!);
        assert.deepEqual(await plugged(inst), [second!.id]);
        await h.driver.detachInterface(ctx, inst, first!);
        await h.driver.powerOff(inst, 0);
        await h.driver.powerOn(ctx, inst, [second!]);
        assert.deepEqual(await plugged(inst), [second!.id]);
        const bare = makeInstance(h.host);
        await spawn(bare);
        await assert.rejects(
          h.driver.attachInterface(ctx, bare, h.image, nets(1)[0]!),
          isNova('VirtualInterfacePlugException'),
        );
        await assert.rejects(
          h.driver.attachInterface(ctx, makeInstance(h.host), h.image, nets(1)[0]!),
          isNova('InstanceNotFound'),
        );
      });

      it('resize keeps the network: off during the resize, plugged again on finish', async () => {
        const inst = makeInstance(h.host);
        const vifs = nets(1);
        await h.driver.spawn(ctx, inst, h.image, [], undefined, undefined, vifs, undefined);
        await h.driver.migrateDiskAndPowerOff(ctx, inst, h.host, inst.flavor, 0);
        assert.deepEqual(await plugged(inst), []);
        await h.driver.finishMigration(ctx, inst, '', vifs, h.image, false, true);
        assert.deepEqual(await plugged(inst), ids(vifs));
        await h.driver.destroy(ctx, inst, vifs);
        assert.equal(await h.leftovers(inst.uuid), false);
      });

      it('network_info may be a promise that rejects: that reason, nothing left', async () => {
        const inst = makeInstance(h.host);
        const rejected = Promise.reject(new Error('port allocation failed: ' + uuid4()));
        rejected.catch(() => undefined);
        await assert.rejects(
          h.driver.spawn(ctx, inst, h.image, [], undefined, undefined, rejected, undefined),
          /port allocation failed/,
        );
        assert.equal(await h.leftovers(inst.uuid), false);
      });
    });
  });
}
