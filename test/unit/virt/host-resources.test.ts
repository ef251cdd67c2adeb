/**
 * The resource accounting behind getAvailableResource over a stub Engine:
 * usage read from the containers' limits (a resize changes those, not the
 * labels), cached by container id until a resize or the container's end.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import type { DockerContainerSummary, DockerInfo } from '../../../src/clients/docker/types.js';
import { httpErrorFor } from '../../../src/clients/errors.js';
import { NovaError } from '../../../src/common/errors.js';
import { nullLogger } from '../../../src/common/log.js';
import { HostResources, archName, type HostResourcesDocker } from '../../../src/virt/docker/host-resources.js';
import { LABELS } from '../../../src/virt/docker/labels.js';
import { runningContainer } from '../../support/docker-inspect.js';

const MiB = 1024 * 1024;

function summary(id: string, vcpus: number, memoryMb: number, rootGb: number): DockerContainerSummary {
  return {
    Id: id,
    Names: [`/nova-${id}`],
    Image: 'busybox',
    Created: 0,
    State: 'running',
    Status: 'Up',
    Labels: { [LABELS.vcpus]: String(vcpus), [LABELS.memoryMb]: String(memoryMb), [LABELS.rootGb]: String(rootGb) },
  };
}

describe('virt/docker host resources', () => {
  let containers: DockerContainerSummary[];
  /** Container id → its limits, as the Engine's inspect returns them. */
  let limits: Map<string, { Memory: number; CpuShares: number }>;
  let inspects: string[];
  let info: () => Promise<DockerInfo>;

  const docker: HostResourcesDocker = {
    info: () => info(),
    inspectContainer: (id) => {
      inspects.push(id);
      const l = limits.get(id);
      if (!l) return Promise.reject(new Error(`no such container ${id}`));
      return Promise.resolve(runningContainer({ Id: id, HostConfig: l }));
    },
  };
  const resources = (): HostResources =>
    new HostResources(docker, () => Promise.resolve(containers), { host: 'h1', nodename: 'node-1' }, nullLogger());

  beforeEach(() => {
    containers = [summary('a', 1, 512, 1), summary('b', 2, 1024, 5)];
    limits = new Map([
      ['a', { Memory: 512 * MiB, CpuShares: 1024 }],
      ['b', { Memory: 1024 * MiB, CpuShares: 2048 }],
    ]);
    inspects = [];
    info = () =>
      Promise.resolve({
        ServerVersion: '24.0.7',
        NCPU: 8,
        MemTotal: 16384 * MiB,
        DockerRootDir: os.tmpdir(),
        Architecture: 'x86_64',
      });
  });

  it('reports the host and the usage of its containers', async () => {
    const r = await resources().getAvailableResource('node-1');
    assert.equal(r.vcpus, 8);
    assert.equal(r.memory_mb, 16384);
    assert.ok(r.local_gb >= 0);
    assert.deepEqual([r.vcpus_used, r.memory_mb_used, r.local_gb_used], [3, 1536, 6]);
    assert.equal(r.hypervisor_type, 'docker');
    assert.equal(r.hypervisor_version, 24000007);
    assert.equal(r.hypervisor_hostname, 'node-1');
    assert.deepEqual(r.supported_instances, [['x86_64', 'docker', 'exe']]);
  });

  it('usage follows the limits; cached until limitsChanged', async () => {
    const res = resources();
    await res.getAvailableResource('node-1');
    assert.deepEqual(inspects.sort(), ['a', 'b']);
    limits.set('b', { Memory: 2048 * MiB, CpuShares: 4096 }); // a resize of b
    inspects = [];
    assert.equal((await res.getAvailableResource('node-1')).memory_mb_used, 1536, 'cached: not read again');
    assert.deepEqual(inspects, []);
    res.limitsChanged('b');
    const r = await res.getAvailableResource('node-1');
    assert.deepEqual(inspects, ['b']);
    assert.deepEqual([r.vcpus_used, r.memory_mb_used], [5, 2560], 'the limits, not the labels');
  });

  it('a container that cannot be inspected counts with its labels, and is asked again next time', async () => {
    limits.delete('a');
    const res = resources();
    assert.equal((await res.getAvailableResource('node-1')).memory_mb_used, 1536);
    inspects = [];
    await res.getAvailableResource('node-1');
    assert.deepEqual(inspects, ['a']);
  });

  it('the Engine not answering is HypervisorUnavailable; an invisible root dir is local_gb 0', async () => {
    info = () => Promise.reject(httpErrorFor({ service: 'docker', method: 'GET', path: '/info' }));
    await assert.rejects(
      resources().getAvailableResource('node-1'),
      (err: unknown) => err instanceof NovaError && err.novaClass === 'HypervisorUnavailable',
    );
    info = () =>
      Promise.resolve({ ServerVersion: '24.0.7', NCPU: 2, MemTotal: 1024 * MiB, DockerRootDir: '/nonexistent/docker' });
    const r = await resources().getAvailableResource('node-1');
    assert.deepEqual([r.local_gb, r.disk_available_least], [0, 0]);
  });

  it("archName maps Engine and Node names to Nova's", () => {
    assert.deepEqual(['x64', 'amd64', 'arm64', 'aarch64', 'ppc64', 's390x'].map(archName), [
      'x86_64',
      'x86_64',
      'aarch64',
      'aarch64',
      'ppc64le',
      's390x',
    ]);
  });
});
