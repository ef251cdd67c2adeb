import assert from 'node:assert/strict';
import {
  ContainerSpecError,
  buildContainerSpec,
  buildHolderSpec,
  containerHostname,
  metadataEnv,
  parseBinds,
  type ContainerSpecInput,
  type ContainerSpecOptions,
} from '../../../src/virt/docker/container-spec.js';
import { LABELS, ROLE_NET, ownedBy, ownedWithRole } from '../../../src/virt/docker/labels.js';
import type { InstanceSpec } from '../../../src/virt/types.js';

const MiB = 1024 * 1024;

const options: ContainerSpecOptions = {
  host: 'compute-1',
  privileged: false,
  capAdd: [],
  allowHostMounts: false,
  cpuHardLimit: false,
  pidsLimit: 512,
  logMaxBytes: 10 * MiB,
  init: true,
  extraLabels: {},
};

function instance(over: Partial<InstanceSpec> = {}): InstanceSpec {
  return {
    uuid: '11111111-2222-3333-4444-555555555555',
    hostname: 'web-1',
    project_id: 'proj',
    user_id: 'user',
    host: 'compute-1',
    node: 'compute-1',
    metadata: {},
    flavor: {
      flavorid: '1',
      name: 'm1.small',
      memory_mb: 512,
      vcpus: 2,
      root_gb: 10,
      ephemeral_gb: 1,
      swap: 256,
      extra_specs: {},
    },
    ...over,
  };
}

function input(over: Partial<ContainerSpecInput> = {}): ContainerSpecInput {
  return {
    instance: instance(),
    image: { id: 'img-1', name: 'busybox', properties: {} },
    dockerRef: 'busybox:latest',
    options,
    ...over,
  };
}

describe('virt/docker/container-spec', () => {
  it('maps the flavor to hard limits and the defaults to a locked-down container', () => {
    const { name, body } = buildContainerSpec(input());
    assert.equal(name, 'nova-11111111-2222-3333-4444-555555555555');
    assert.equal(body.Image, 'busybox:latest');
    assert.equal(body.Cmd, undefined, "the image's CMD stays");
    assert.equal(body.Entrypoint, undefined, "the image's ENTRYPOINT stays");
    assert.equal(body.Hostname, 'web-1');
    assert.equal(body.Tty, false);
    const hc = body.HostConfig!;
    assert.equal(hc.Memory, 512 * MiB);
    assert.equal(hc.MemorySwap, 512 * MiB, 'no swap on top (flavor swap ignored)');
    assert.equal(hc.CpuShares, 2048);
    assert.equal(hc.NanoCpus, undefined);
    assert.equal(hc.PidsLimit, 512);
    assert.equal(hc.Privileged, false);
    assert.equal(hc.CapAdd, undefined);
    assert.deepEqual(hc.SecurityOpt, ['no-new-privileges']);
    assert.equal(hc.Binds, undefined);
    assert.equal(hc.NetworkMode, 'none');
    assert.deepEqual(hc.RestartPolicy, { Name: 'no' });
    assert.deepEqual(hc.LogConfig, { Type: 'json-file', Config: { 'max-size': String(10 * MiB), 'max-file': '1' } });
    assert.equal(hc.Init, true);
  });

  it('labels: ownership, identity and flavor sizes; extra labels cannot override them', () => {
    const { body } = buildContainerSpec(
      input({ options: { ...options, extraLabels: { [LABELS.host]: 'evil', 'org.example.run': 'r1' } } }),
    );
    assert.deepEqual(body.Labels, {
      'org.example.run': 'r1',
      [LABELS.managedBy]: 'nova-docker',
      [LABELS.instanceUuid]: '11111111-2222-3333-4444-555555555555',
      [LABELS.host]: 'compute-1',
      [LABELS.node]: 'compute-1',
      [LABELS.projectId]: 'proj',
      [LABELS.userId]: 'user',
      [LABELS.flavor]: 'm1.small',
      [LABELS.flavorId]: '1',
      [LABELS.imageId]: 'img-1',
      [LABELS.memoryMb]: '512',
      [LABELS.vcpus]: '2',
      [LABELS.rootGb]: '10',
      [LABELS.ephemeralGb]: '1',
    });
  });

  it('labels the display name when the instance has one', () => {
    const { body } = buildContainerSpec(input({ instance: instance({ display_name: 'web 1' }) }));
    assert.equal(body.Labels?.[LABELS.displayName], 'web 1');
    assert.equal(buildContainerSpec(input()).body.Labels?.[LABELS.displayName], undefined);
  });

  it('options: cpu hard limit, capabilities, privileged, no pids limit, no init', () => {
    const { body } = buildContainerSpec(
      input({
        options: { ...options, cpuHardLimit: true, capAdd: ['NET_ADMIN'], privileged: true, pidsLimit: 0, init: false },
      }),
    );
    const hc = body.HostConfig!;
    assert.equal(hc.NanoCpus, 2e9);
    assert.deepEqual(hc.CapAdd, ['NET_ADMIN']);
    assert.equal(hc.Privileged, true);
    assert.equal(hc.PidsLimit, undefined);
    assert.equal(hc.Init, false);
  });

  it('is pure: same input, same output; input not mutated', () => {
    const i = input();
    const snapshot = JSON.stringify(i);
    assert.deepEqual(buildContainerSpec(i), buildContainerSpec(i));
    assert.equal(JSON.stringify(i), snapshot);
  });

  it('metadata becomes NOVA_META_<KEY> env, sanitized, sorted, later key wins a collision', () => {
    assert.deepEqual(metadataEnv({ 'app-mode': 'ro', role: 'db', 'a.b': 'x', a_b: 'y', z: 'nul\0l' }), [
      'NOVA_META_A_B=y',
      'NOVA_META_APP_MODE=ro',
      'NOVA_META_ROLE=db',
      'NOVA_META_Z=null',
    ]);
    const { body } = buildContainerSpec(input({ instance: instance({ metadata: { Role: 'web' } }) }));
    assert.deepEqual(body.Env, ['NOVA_META_ROLE=web']);
  });

  it('hostname: sanitized, at most 63 characters, omitted when empty', () => {
    assert.equal(containerHostname(instance({ hostname: 'My_Host' })), 'my-host');
    assert.equal(containerHostname(instance({ hostname: 'a'.repeat(80) }))?.length, 63);
    assert.equal(containerHostname(instance({ hostname: '' })), undefined);
    const { hostname: _h, ...noHostname } = instance();
    assert.equal(buildContainerSpec(input({ instance: noHostname })).body.Hostname, undefined);
  });

  it('host mounts only from the flavor and only when allowed', () => {
    const withBinds = instance();
    withBinds.flavor = { ...withBinds.flavor, extra_specs: { 'docker:binds': '/srv/data:/data:ro, /tmp:/tmp' } };
    assert.throws(() => buildContainerSpec(input({ instance: withBinds })), ContainerSpecError);
    const { body } = buildContainerSpec(input({ instance: withBinds, options: { ...options, allowHostMounts: true } }));
    assert.deepEqual(body.HostConfig!.Binds, ['/srv/data:/data:ro', '/tmp:/tmp']);
    for (const bad of ['relative:/x', '/x', '/a:/b:rx', '/a:b'])
      assert.throws(() => parseBinds(bad), ContainerSpecError);
    assert.deepEqual(parseBinds(undefined), []);
  });

  it('with a network: the holder namespace, no hostname, the DNS/hosts files mounted over the Engine ones', () => {
    const { body } = buildContainerSpec(
      input({ network: { holderId: 'nova-u-net', resolvConf: '/state/u/resolv.conf', hosts: '/state/u/hosts' } }),
    );
    assert.equal(body.HostConfig!.NetworkMode, 'container:nova-u-net');
    assert.equal(body.Hostname, undefined, 'the Engine refuses a hostname in container: mode');
    assert.deepEqual(body.HostConfig!.Binds, ['/state/u/resolv.conf:/etc/resolv.conf', '/state/u/hosts:/etc/hosts']);
  });

  it('the netns holder: none mode, no capabilities, SIGKILL, IPv6 on, the instance hostname, role label, no sizes', () => {
    const inst = instance();
    const { name, body } = buildHolderSpec({
      instance: inst,
      pauseRef: 'nova-docker/pause:abc',
      cmd: ['/bin/busybox', 'sleep', 'infinity'],
      options,
    });
    assert.equal(name, `nova-${inst.uuid}-net`);
    assert.equal(body.Image, 'nova-docker/pause:abc');
    assert.deepEqual(body.Cmd, ['/bin/busybox', 'sleep', 'infinity']);
    assert.equal(body.StopSignal, 'SIGKILL');
    assert.equal(body.Hostname, containerHostname(inst));
    const hc = body.HostConfig!;
    assert.equal(hc.NetworkMode, 'none');
    assert.deepEqual(hc.CapDrop, ['ALL']);
    assert.equal(hc.ReadonlyRootfs, true);
    assert.deepEqual(hc.RestartPolicy, { Name: 'no' });
    assert.deepEqual(hc.Sysctls, {
      'net.ipv6.conf.all.disable_ipv6': '0',
      'net.ipv6.conf.default.disable_ipv6': '0',
    });
    assert.equal(body.Labels![LABELS.role], ROLE_NET);
    assert.equal(body.Labels![LABELS.instanceUuid], inst.uuid);
    assert.equal(body.Labels![LABELS.memoryMb], undefined, 'the holder uses none of the flavor');
    assert.equal(ownedBy(body.Labels, options.host), false, 'a holder is not an instance container');
    assert.equal(ownedWithRole(body.Labels, options.host, ROLE_NET, inst.uuid), true);
  });
});
