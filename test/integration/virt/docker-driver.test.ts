/**
 * DockerDriver against the real dockerd (/var/run/docker.sock). Every
 * container is labelled with this run's id and removed after each test by one
 * label-filtered list; containers run with network mode none.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerClient } from '../../../src/clients/docker/client.js';
import type { DockerContainerInspect } from '../../../src/clients/docker/types.js';
import { UnavailableError } from '../../../src/clients/errors.js';
import { findCause } from '../../../src/common/errors.js';
import { pollUntil } from '../../../src/common/poll.js';
import type { Readable } from 'node:stream';
import type { GlanceImage, ImagePatchOp } from '../../../src/clients/glance/client.js';
import { DockerDriver, type DockerDriverOptions } from '../../../src/virt/docker/driver.js';
import { DockerArchiveFilter } from '../../../src/virt/docker/image-archive.js';
import { JOURNAL_FILE } from '../../../src/virt/docker/lifecycle-journal.js';
import { LocalImageResolver, type ImageResolver } from '../../../src/virt/docker/image-resolver.js';
import { LABELS, containerName } from '../../../src/virt/docker/labels.js';
import { SNAPSHOT_REPO, type SnapshotGlance } from '../../../src/virt/docker/snapshot.js';
import { versionToInt } from '../../../src/virt/driver.js';
import { PowerState } from '../../../src/virt/power-state.js';
import type { ImageMeta, InstanceSpec, NetworkInfo, Vif } from '../../../src/virt/types.js';
import { docker as dockerCli } from '../../support/lab.js';
import { ctx, describeDriverContract, isNova, makeInstance } from '../../contract/driver.contract.js';
import { addBridge, delBridge, deviceLeftovers, ovsUsable, pluggedPorts } from '../../support/ovs.js';
import { makeVif } from '../../support/vifs.js';

const SOCKET = '/var/run/docker.sock';
const TEST_LABEL = 'org.openstack.nova.test-run';
const RUN = randomUUID().slice(0, 8);
const HOST = `test-host-${RUN}`;
const docker = new DockerClient({ socketPath: SOCKET });
const resolver = new LocalImageResolver(docker);

const busybox: ImageMeta = { id: randomUUID(), name: 'busybox:latest', properties: {} };
const exit1: ImageMeta = { id: randomUUID(), name: 'lab/exit1:latest', properties: {} };
const missing: ImageMeta = { id: randomUUID(), name: `nova-docker-test/missing:${RUN}`, properties: {} };

/** Glance in memory: records the patches and keeps uploads (small test images only). */
class MemoryGlance implements SnapshotGlance {
  readonly records = new Map<string, GlanceImage>();
  readonly patches = new Map<string, ImagePatchOp[]>();
  readonly data = new Map<string, Buffer>();
  failUpload: Error | undefined;

  showImage(_ctx: unknown, id: string): Promise<GlanceImage> {
    return Promise.resolve(this.records.get(id) ?? { id, status: 'queued' });
  }
  updateImage(_ctx: unknown, id: string, ops: readonly ImagePatchOp[]): Promise<GlanceImage> {
    this.patches.set(id, [...ops]);
    return this.showImage(undefined, id);
  }
  async uploadImage(_ctx: unknown, id: string, data: Readable): Promise<void> {
    if (this.failUpload) {
      data.destroy();
      throw this.failUpload;
    }
    const parts: Buffer[] = [];
    for await (const c of data) parts.push(c as Buffer);
    this.data.set(id, Buffer.concat(parts));
  }
}
const glance = new MemoryGlance();

function makeDriver(extra: Partial<DockerDriverOptions> = {}, images: ImageResolver = resolver): DockerDriver {
  return new DockerDriver(docker, images, {
    host: HOST,
    stopTimeoutS: 2,
    extraLabels: { [TEST_LABEL]: RUN },
    glance,
    ...extra,
  });
}

async function removeTestContainers(): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${TEST_LABEL}=${RUN}`] } });
  await Promise.all(list.map((c) => docker.removeContainer(c.Id, { force: true, v: true })));
}

async function inspectOf(inst: InstanceSpec): Promise<DockerContainerInspect> {
  return docker.inspectContainer(containerName(inst.uuid));
}

/** Containers (the instance's and its netns holder) or, where OVS is usable, devices of the instance. */
async function leftovers(uuid: string): Promise<boolean> {
  const byLabel = await docker.listContainers({ all: true, filters: { label: [`${LABELS.instanceUuid}=${uuid}`] } });
  const byName = await docker.listContainers({ all: true, filters: { name: [containerName(uuid)] } });
  const devices = (await ovsUsable()) ? await deviceLeftovers(uuid) : [];
  return byLabel.length + byName.length + devices.length > 0;
}

/** The contract's networking cases plug into a bridge of their own, standing in for br-int. */
const CONTRACT_BRIDGE = 'br-vif-ct';

/** Builds a throw-away image from busybox with another CMD (commit of a never-started container). */
async function commitImage(name: string, cmd: string[]): Promise<string> {
  const ref = `nova-docker-test/${name}:${RUN}`;
  const c = await docker.createContainer(`nova-docker-test-build-${name}-${RUN}`, {
    Image: 'busybox:latest',
    Cmd: cmd,
    Labels: { [TEST_LABEL]: RUN },
    HostConfig: { NetworkMode: 'none' },
  });
  try {
    await docker.commitContainer(c.Id, { repo: `nova-docker-test/${name}`, tag: RUN, labels: { [TEST_LABEL]: RUN } });
  } finally {
    await docker.removeContainer(c.Id, { force: true });
  }
  return ref;
}

describeDriverContract('DockerDriver', async () => {
  // A shorter early-exit watch keeps the suite quick; the default is exercised below.
  const driver = makeDriver({ spawnCheckMs: 200 });
  const net = await ovsUsable();
  if (net) await addBridge(CONTRACT_BRIDGE);
  let n = 0;
  return {
    driver,
    host: HOST,
    image: busybox,
    missingImage: missing,
    async crash(inst) {
      // docker-init forwards SIGUSR1 to sleep, which dies of it: exit 138.
      await docker.killContainer(containerName(inst.uuid), 'SIGUSR1');
      await pollUntil(async () => ((await inspectOf(inst)).State.Running ? undefined : true), {
        timeoutMs: 5000,
        what: 'the guest to die',
      });
    },
    leftovers,
    otherHostDriver: () => makeDriver({ host: `other-${HOST}`, spawnCheckMs: 200 }),
    cleanup: removeTestContainers,
    ...(net
      ? {
          networkInfo: (count: number) =>
            Array.from({ length: count }, () => {
              n++;
              const hex = (n % 256).toString(16).padStart(2, '0');
              return makeVif({
                id: randomUUID(),
                mac: `fa:16:3e:c7:00:${hex}`,
                ip4: `10.77.0.${(n % 250) + 2}`,
                cidr4: '10.77.0.0/24',
                gateway4: '10.77.0.1',
                bridge: CONTRACT_BRIDGE,
              });
            }),
          pluggedPorts,
          teardown: () => delBridge(CONTRACT_BRIDGE),
        }
      : {}),
  };
});

describe('DockerDriver (docker specifics)', function () {
  this.timeout(60_000);
  let consoleImage: string;
  let fail3Image: string;

  before(async () => {
    // The pauses order the lines: stdout and stderr reach the log through separate copiers.
    consoleImage = await commitImage('console', [
      'sh',
      '-c',
      'i=0; while [ $i -lt 2000 ]; do echo "filler line $i"; i=$((i+1)); done; sleep 1; ' +
        'echo console-out; echo console-err >&2; sleep 1; echo last-line; exec sleep 3600',
    ]);
    fail3Image = await commitImage('fail3', ['sh', '-c', 'echo "boom: config missing" >&2; exit 3']);
  });
  afterEach(removeTestContainers);
  after(async () => {
    await removeTestContainers();
    for (const ref of [consoleImage, fail3Image]) if (ref) await docker.removeImage(ref, { force: true });
  });

  const spawn = (d: DockerDriver, inst: InstanceSpec, image: ImageMeta, networkInfo: NetworkInfo = []) =>
    d.spawn(ctx, inst, image, [], undefined, undefined, networkInfo);

  it('creates the container with the limits, labels, env and security of the spec; CMD untouched', async () => {
    const d = makeDriver();
    const inst = makeInstance(HOST, { metadata: { role: 'db', 'app-mode': 'ro' } });
    inst.flavor = { ...inst.flavor, memory_mb: 96, vcpus: 2, root_gb: 3, name: 'm1.small', flavorid: '2' };
    await spawn(d, inst, busybox);
    const c = await inspectOf(inst);
    assert.equal(c.HostConfig.Memory, 96 * 1024 * 1024);
    assert.equal(c.HostConfig.MemorySwap, 96 * 1024 * 1024);
    assert.equal(c.HostConfig.CpuShares, 2048);
    assert.equal(c.HostConfig.NanoCpus, 0);
    assert.equal(c.HostConfig.PidsLimit, 1024);
    assert.equal(c.HostConfig.Privileged, false);
    assert.deepEqual(c.HostConfig.SecurityOpt, ['no-new-privileges']);
    assert.equal(c.HostConfig.CapAdd, null);
    assert.equal(c.HostConfig.Binds, null);
    assert.equal(c.HostConfig.NetworkMode, 'none');
    assert.equal(c.HostConfig.RestartPolicy?.Name, 'no');
    assert.equal(c.HostConfig.LogConfig?.Type, 'json-file');
    assert.equal(c.HostConfig.Init, true);
    assert.deepEqual(c.Config.Cmd, ['/bin/sleep', '3600']);
    assert.equal(c.Config.Hostname, inst.hostname);
    assert.ok(c.Config.Env?.includes('NOVA_META_ROLE=db'));
    assert.ok(c.Config.Env?.includes('NOVA_META_APP_MODE=ro'));
    const l = c.Config.Labels ?? {};
    assert.equal(l[LABELS.instanceUuid], inst.uuid);
    assert.equal(l[LABELS.host], HOST);
    assert.equal(l[LABELS.projectId], 'p-contract');
    assert.equal(l[LABELS.flavor], 'm1.small');
    assert.equal(l[LABELS.imageId], busybox.id);
    assert.equal(l[LABELS.managedBy], 'nova-docker');
    // The limits are live in the cgroup: the container cannot fork past PidsLimit etc.
    assert.equal(c.State.Running, true);
  });

  it('cpuHardLimit sets NanoCpus; pidsLimit 0 means unlimited', async () => {
    const d = makeDriver({ cpuHardLimit: true, pidsLimit: 0 });
    const inst = makeInstance(HOST);
    await spawn(d, inst, busybox);
    const c = await inspectOf(inst);
    assert.equal(c.HostConfig.NanoCpus, 1e9);
    assert.ok(!c.HostConfig.PidsLimit, `PidsLimit=${String(c.HostConfig.PidsLimit)}`);
  });

  it('resize: the same container gets the new flavor’s Memory/CpuShares/NanoCpus; revert restores them; a fresh driver counts the limits', async () => {
    const d = makeDriver({ cpuHardLimit: true });
    const inst = makeInstance(HOST);
    await spawn(d, inst, busybox);
    const before = await inspectOf(inst);
    const big = { ...inst, flavor: { ...inst.flavor, memory_mb: 128, vcpus: 2 } };
    await d.migrateDiskAndPowerOff(ctx, inst, HOST, big.flavor, 0);
    await d.finishMigration(ctx, big, '', [], busybox, false, true);
    const after = await inspectOf(inst);
    assert.equal(after.Id, before.Id, 'the same container');
    assert.deepEqual(
      [after.HostConfig.Memory, after.HostConfig.MemorySwap, after.HostConfig.CpuShares, after.HostConfig.NanoCpus],
      [128 * 1024 * 1024, 128 * 1024 * 1024, 2048, 2e9],
    );
    assert.equal(after.State.Running, true);
    assert.equal(after.Config.Labels?.[LABELS.memoryMb], '64', 'labels keep the flavor the container was made with');
    const fresh = await makeDriver().getAvailableResource(HOST);
    assert.equal(fresh.memory_mb_used, 128, 'usage from the limits, not the labels');
    assert.equal(fresh.vcpus_used, 2);
    await d.powerOff(inst, 0);
    await d.finishRevertMigration(ctx, inst, [], false);
    const reverted = await inspectOf(inst);
    assert.deepEqual(
      [reverted.HostConfig.Memory, reverted.HostConfig.CpuShares, reverted.HostConfig.NanoCpus],
      [64 * 1024 * 1024, 1024, 1e9],
    );
    assert.equal(reverted.State.Running, false, 'powerOn false: stays stopped');
  });

  for (const type of ['SOFT', 'HARD'] as const) {
    it(`${type} reboot keeps the configuration (same container, limits, Privileged false)`, async () => {
      const d = makeDriver();
      const inst = makeInstance(HOST);
      await spawn(d, inst, busybox);
      const before = await inspectOf(inst);
      await d.reboot(ctx, inst, [], type);
      const after = await inspectOf(inst);
      assert.equal(after.Id, before.Id);
      assert.deepEqual(after.HostConfig, before.HostConfig);
      assert.deepEqual(after.Config, before.Config);
      assert.equal(after.HostConfig.Privileged, false);
      assert.notEqual(after.State.StartedAt, before.State.StartedAt);
      assert.equal((await d.getInfo(inst)).power_state, PowerState.RUNNING);
    });
  }

  it('a command that exits at once fails the spawn with its status and output, leaving nothing', async () => {
    const d = makeDriver();
    const inst = makeInstance(HOST);
    const img: ImageMeta = { id: randomUUID(), name: fail3Image, properties: {} };
    await assert.rejects(spawn(d, inst, img), (err: unknown) => {
      isNova('InstanceDeployFailure')(err);
      assert.match((err as Error).message, /exited at once with status 3/);
      assert.match((err as Error).message, /boom: config missing/);
      return true;
    });
    assert.equal(await leftovers(inst.uuid), false);
  });

  it('exit1 with the early-exit check off: spawn succeeds, the guest reads CRASHED', async () => {
    const d = makeDriver({ spawnCheckMs: 0 });
    const inst = makeInstance(HOST);
    await spawn(d, inst, exit1);
    const st = await pollUntil(
      async () => {
        const s = (await d.getInfo(inst)).power_state;
        return s === PowerState.RUNNING ? undefined : s;
      },
      { timeoutMs: 5000, what: 'exit1 to exit' },
    );
    assert.equal(st, PowerState.CRASHED);
  });

  it('docker stop from outside reads SHUTDOWN (exit 143), also for a driver that did not stop it', async () => {
    const d = makeDriver();
    const inst = makeInstance(HOST);
    await spawn(d, inst, busybox);
    await docker.stopContainer(containerName(inst.uuid), 2);
    assert.equal((await inspectOf(inst)).State.ExitCode, 143);
    assert.equal((await makeDriver().getInfo(inst)).power_state, PowerState.SHUTDOWN);
  });

  it('suspend is remembered by the driver; a fresh driver reads the frozen guest as PAUSED', async () => {
    const d = makeDriver();
    const inst = makeInstance(HOST);
    await spawn(d, inst, busybox);
    await d.suspend(ctx, inst);
    assert.equal((await d.getInfo(inst)).power_state, PowerState.SUSPENDED);
    assert.equal((await makeDriver().getInfo(inst)).power_state, PowerState.PAUSED);
  });

  it('console output: stdout and stderr, tail, capped to consoleLogMaxBytes keeping the newest', async () => {
    const d = makeDriver({ consoleLogMaxBytes: 4096 });
    const inst = makeInstance(HOST);
    await spawn(d, inst, { id: randomUUID(), name: consoleImage, properties: {} });
    const all = await pollUntil(
      async () => {
        const out = await d.getConsoleOutput(ctx, inst);
        return out.includes('last-line\n') ? out : undefined;
      },
      { timeoutMs: 10_000, what: 'console output' },
    );
    assert.ok(Buffer.byteLength(all) <= 4096, `${Buffer.byteLength(all)} bytes`);
    // stdout vs stderr order of lines written together is not guaranteed; both must be there.
    assert.ok(all.endsWith('last-line\n'), all.slice(-100));
    assert.ok(all.includes('console-out\n') && all.includes('console-err\n'), all.slice(-100));
    assert.ok(!all.includes('filler line 0\n'));
    assert.ok(!all.includes('\u0001\u0000\u0000\u0000'), 'no stream headers');
    assert.equal(await d.getConsoleOutput(ctx, inst, 1), 'last-line\n');
  });

  it('network interfaces of a type other than ovs are refused, naming the port, leaving nothing', async () => {
    const d = makeDriver();
    const inst = makeInstance(HOST);
    const vif: Vif = makeVif({ id: randomUUID(), mac: 'fa:16:3e:00:00:01', ip4: '10.0.0.5', type: 'vhostuser' });
    await assert.rejects(spawn(d, inst, busybox, [vif]), (err: unknown) => {
      isNova('VirtualInterfacePlugException')(err);
      assert.match((err as Error).message, new RegExp(`port ${vif.id}: vif type 'vhostuser' is not supported`));
      return true;
    });
    assert.equal(await leftovers(inst.uuid), false);
  });

  it('host mounts requested by the flavor: refused unless allowHostMounts', async () => {
    const inst = makeInstance(HOST);
    inst.flavor.extra_specs = { 'docker:binds': '/tmp:/host-tmp:ro' };
    await assert.rejects(spawn(makeDriver(), inst, busybox), isNova('InstanceDeployFailure'));
    assert.equal(await leftovers(inst.uuid), false);
    await spawn(makeDriver({ allowHostMounts: true }), inst, busybox);
    assert.deepEqual((await inspectOf(inst)).HostConfig.Binds, ['/tmp:/host-tmp:ro']);
  });

  it('a resolver that returns an unknown ref: ImageNotFound; a resolver failure: InstanceDeployFailure', async () => {
    const inst = makeInstance(HOST);
    const bogus: ImageResolver = { ensureImage: () => Promise.resolve({ dockerRef: `nova-docker-test/nope:${RUN}` }) };
    await assert.rejects(spawn(makeDriver({}, bogus), inst, busybox), isNova('ImageNotFound'));
    const broken: ImageResolver = { ensureImage: () => Promise.reject(new Error('glance is down')) };
    await assert.rejects(spawn(makeDriver({}, broken), inst, busybox), isNova('InstanceDeployFailure'));
    assert.equal(await leftovers(inst.uuid), false);
  });

  it('a same-named container not managed by us: spawn says InstanceExists, others do not touch it', async () => {
    const d = makeDriver();
    const inst = makeInstance(HOST);
    const foreign = await docker.createContainer(containerName(inst.uuid), {
      Image: 'busybox:latest',
      Labels: { [TEST_LABEL]: RUN },
      HostConfig: { NetworkMode: 'none' },
    });
    await assert.rejects(spawn(d, inst, busybox), isNova('InstanceExists'));
    await assert.rejects(d.getInfo(inst), isNova('InstanceNotFound'));
    await d.destroy(ctx, inst, []);
    assert.equal((await docker.inspectContainer(foreign.Id)).Id, foreign.Id);
  });

  it('available resource: docker hypervisor, version int from the engine, usage from labels', async () => {
    const d = makeDriver();
    const info = await docker.info();
    const r = await d.getAvailableResource(HOST);
    assert.equal(r.hypervisor_type, 'docker');
    assert.equal(r.hypervisor_version, versionToInt(info.ServerVersion));
    assert.equal(r.hypervisor_hostname, HOST);
    assert.ok(r.local_gb > 0, 'statfs of DockerRootDir');
    assert.equal(r.vcpus, info.NCPU);
    const cpu = JSON.parse(r.cpu_info) as { arch: string };
    assert.equal(cpu.arch, r.supported_instances[0]?.[0]);
  });

  it('snapshot: commit + save streamed to Glance as docker/raw; the archive boots with the changed file, no instance labels', async () => {
    const d = makeDriver();
    const inst = makeInstance(HOST, { metadata: { snapkey: 'secret-value' } });
    await spawn(d, inst, busybox);
    await dockerCli(['exec', containerName(inst.uuid), 'sh', '-c', 'echo snapshot-marker > /marker']);
    const imageId = randomUUID();
    glance.records.set(imageId, { id: imageId, status: 'queued', docker_image_ref: 'busybox:latest' });
    const states: string[] = [];
    await d.snapshot(ctx, inst, imageId, (s) => {
      states.push(s);
    });
    assert.deepEqual(states, ['image_pending_upload', 'image_uploading']);
    assert.deepEqual(glance.patches.get(imageId), [
      { op: 'add', path: '/container_format', value: 'docker' },
      { op: 'add', path: '/disk_format', value: 'raw' },
      { op: 'add', path: '/image_location', value: 'snapshot' },
      { op: 'add', path: '/image_state', value: 'available' },
      { op: 'add', path: '/owner_id', value: 'p-contract' },
      { op: 'remove', path: '/docker_image_ref' },
    ]);
    assert.equal(await docker.inspectImage(`${SNAPSHOT_REPO}/${imageId}:upload`), undefined, 'intermediate removed');
    const tar = glance.data.get(imageId);
    assert.ok(tar && tar.length > 100_000);

    // what the image pipeline does with Glance data: archive filter, then load
    const filter = new DockerArchiveFilter();
    const loading = docker.loadImage(filter);
    filter.end(tar);
    const loaded = await loading;
    const id = loaded.find((r) => r.startsWith('sha256:')) ?? loaded[0]!;
    try {
      const img = await docker.inspectImage(id);
      assert.ok(img?.Config, 'the loaded image has a Config');
      const labels = img.Config.Labels ?? {};
      for (const [k, v] of Object.entries(labels)) if (k.startsWith('org.openstack.nova.')) assert.equal(v, '', k);
      const again = makeInstance(HOST);
      await spawn(d, again, { id: randomUUID(), name: id, properties: {} });
      assert.equal(await dockerCli(['exec', containerName(again.uuid), 'cat', '/marker']), 'snapshot-marker');
      const c = await inspectOf(again);
      assert.equal(c.Config.Labels?.[LABELS.instanceUuid], again.uuid, 'the new instance labels win');
      assert.ok(
        c.Config.Env?.includes('NOVA_META_SNAPKEY='),
        `the old metadata env is blanked: ${String(c.Config.Env)}`,
      );
    } finally {
      await removeTestContainers();
      await docker.removeImage(id, { force: true });
    }
  });

  it('snapshot: a failed upload removes the committed image and fails with the upload error', async () => {
    const d = makeDriver();
    const inst = makeInstance(HOST);
    await spawn(d, inst, busybox);
    const imageId = randomUUID();
    glance.failUpload = new Error('glance said 413');
    try {
      await assert.rejects(
        d.snapshot(ctx, inst, imageId, () => undefined),
        /glance said 413/,
      );
    } finally {
      glance.failUpload = undefined;
    }
    assert.equal(await docker.inspectImage(`${SNAPSHOT_REPO}/${imageId}:upload`), undefined);
    assert.equal((await d.getInfo(inst)).power_state, PowerState.RUNNING);
  });

  describe('engine down', () => {
    const down = new DockerDriver(new DockerClient({ socketPath: `/tmp/nova-docker-no-such-${RUN}.sock` }), resolver, {
      host: HOST,
    });
    const inst = makeInstance(HOST);
    const unavailable = (err: unknown) => {
      isNova('HypervisorUnavailable')(err);
      assert.ok(findCause(err, UnavailableError));
      return true;
    };
    it('initHost, list, getInfo, destroy: HypervisorUnavailable with an UnavailableError cause', async () => {
      await assert.rejects(down.initHost(HOST), unavailable);
      await assert.rejects(down.listInstanceUuids(), unavailable);
      await assert.rejects(down.getInfo(inst), unavailable);
      await assert.rejects(down.destroy(ctx, inst, []), unavailable);
      await assert.rejects(down.getAvailableResource(HOST), unavailable);
    });
    it('spawn fails with a retryable cause', async () => {
      await assert.rejects(spawn(down, inst, busybox), (err: unknown) => {
        assert.ok(findCause(err, UnavailableError), String(err));
        return true;
      });
    });
  });
});

describe('DockerDriver console: lifecycle lines with the container output', function () {
  this.timeout(60_000);
  let dir: string;
  let chattyImage: string;
  let hogImage: string;
  const drivers: DockerDriver[] = [];

  before(async () => {
    chattyImage = await commitImage('chatty', ['sh', '-c', 'echo hello; echo to-stderr >&2; sleep 1; exit 3']);
    hogImage = await commitImage('hog', ['sh', '-c', 'echo hog; sleep 1; a=$(head -c 64m /dev/zero | tr "\\0" x)']);
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nd-console-'));
  });
  afterEach(async () => {
    for (const d of drivers.splice(0)) d.registerEventListener(undefined);
    await removeTestContainers();
    rmSync(dir, { recursive: true, force: true });
  });
  after(async () => {
    for (const ref of [chattyImage, hogImage]) if (ref) await docker.removeImage(ref, { force: true });
  });

  /** A driver as the agent runs it: the event stream followed, the lines kept in `dir`. */
  const watching = (): DockerDriver => {
    const d = makeDriver({ consoleLifecycleDir: dir });
    d.registerEventListener(() => undefined);
    drivers.push(d);
    return d;
  };
  const spawn = (d: DockerDriver, inst: InstanceSpec, image: ImageMeta) =>
    d.spawn(ctx, inst, image, [], undefined, undefined, []);
  const untilConsole = (d: DockerDriver, inst: InstanceSpec, re: RegExp) =>
    pollUntil(
      async () => {
        const out = await d.getConsoleOutput(ctx, inst);
        return re.test(out) ? out : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: `console matching ${String(re)}` },
    );
  const bodies = (out: string) => out.split('\n').map((l) => l.replace(/^\[nova-docker\] \S+Z /, ''));

  it('a silent container: spawning, created, started; stop and start add their lines and the exit status', async () => {
    const d = watching();
    const inst = makeInstance(HOST);
    await spawn(d, inst, busybox);
    const first = await d.getConsoleOutput(ctx, inst);
    assert.deepEqual(bodies(first), [
      `spawning: image busybox:latest (${busybox.id}), flavor m1.tiny: 1 vCPU, 64 MB RAM, 1 GB disk`,
      bodies(first)[1]?.startsWith(`container ${containerName(inst.uuid)} created from busybox:latest (id `)
        ? bodies(first)[1]
        : 'container … created',
      'container started: image busybox:latest, command ["/bin/sleep","3600"]',
      '',
    ]);
    assert.match(first, /^\[nova-docker\] \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z spawning: /);

    await d.powerOff(inst, 2);
    await d.powerOn(ctx, inst, []);
    // the exit status comes from the die event: the start reset State.ExitCode
    const out = await untilConsole(d, inst, /container restarted: .*\n$/);
    assert.deepEqual(bodies(out).slice(3), [
      'stop requested by Nova: stop signal, SIGKILL after 2 s',
      'container exited: status 143',
      'start requested by Nova',
      'container restarted: image busybox:latest, command ["/bin/sleep","3600"]',
      '',
    ]);

    // an agent restart: another driver on the same directory shows the same history
    assert.equal(await makeDriver({ consoleLifecycleDir: dir }).getConsoleOutput(ctx, inst), out);
    assert.equal(await d.getConsoleOutput(ctx, inst, 2), out.split('\n').slice(-3).join('\n'));

    const file = join(dir, inst.uuid, JOURNAL_FILE);
    assert.ok(existsSync(file));
    await d.destroy(ctx, inst, []);
    assert.equal(existsSync(join(dir, inst.uuid)), false, 'the lines go with the instance');
  });

  it('an exit nobody watched: the read fills it in, after the output, which stays untouched', async () => {
    const d = makeDriver({ consoleLifecycleDir: dir });
    const inst = makeInstance(HOST);
    await spawn(d, inst, { id: randomUUID(), name: chattyImage, properties: {} });
    const out = await untilConsole(d, inst, /container exited: status 3\n$/);
    const lines = bodies(out);
    // stdout and stderr reach the log through separate copiers: either order
    assert.deepEqual(
      lines.slice(2, 5).sort(),
      [
        'container started: image ' +
          chattyImage +
          ', command ["sh","-c","echo hello; echo to-stderr >&2; sleep 1; exit 3"]',
        'hello',
        'to-stderr',
      ].sort(),
    );
    assert.match(lines[2] ?? '', /^container started: /, 'the start before the output it produced');
    assert.equal(lines[5], 'container exited: status 3');
    assert.ok(
      out.includes('\nhello\n') && out.includes('\nto-stderr\n'),
      'the output lines as the container wrote them',
    );
    assert.equal(await d.getConsoleOutput(ctx, inst, 1), out.split('\n').slice(-2).join('\n'));
  });

  it('an OOM kill: the oom line and the exit says so', async () => {
    const d = watching();
    const inst = makeInstance(HOST);
    inst.flavor = { ...inst.flavor, memory_mb: 16 };
    await spawn(d, inst, { id: randomUUID(), name: hogImage, properties: {} });
    const out = await untilConsole(d, inst, /container exited: status 137, OOM killed\n$/);
    assert.match(out, /\nhog\n/);
    assert.match(out, /out of memory: the kernel killed a process of the container\n/);
  });
});
