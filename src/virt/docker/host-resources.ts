/**
 * Resource accounting of a Docker host: what it has (the Engine's /info,
 * statfs of its root dir) and what the instances' containers hold, i.e.
 * what Nova's update_available_resource reads from
 * DockerDriver.getAvailableResource, which delegates here.
 * Behaviour: docs/docker-driver.md (getAvailableResource).
 */
import { statfs } from 'node:fs/promises';
import os from 'node:os';
import type { DockerClient } from '../../clients/docker/client.js';
import type { DockerContainerSummary } from '../../clients/docker/types.js';
import { NotFoundError } from '../../clients/errors.js';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { formatUptime, versionToInt } from '../driver.js';
import { hypervisorUnavailable } from '../errors.js';
import type { AvailableResource } from '../types.js';
import { LABELS } from './labels.js';

const GiB = 1024 * 1024 * 1024;
const MiB = 1024 * 1024;

/** The Engine calls the accounting makes (DockerClient fits). */
export type HostResourcesDocker = Pick<DockerClient, 'info' | 'inspectContainer'>;

export interface HostResourcesOptions {
  /** The compute host (for HypervisorUnavailable). */
  host: string;
  /** hypervisor_hostname / node name. */
  nodename: string;
}

export class HostResources {
  /** Container id → the vcpus and memory its limits give it (sizesOf). */
  private readonly sizes = new Map<string, { vcpus: number; memory_mb: number }>();

  /** `ours` lists the host's instance containers (the driver's label-filtered list). */
  constructor(
    private readonly docker: HostResourcesDocker,
    private readonly ours: () => Promise<DockerContainerSummary[]>,
    private readonly opts: HostResourcesOptions,
    private readonly log: Logger,
  ) {}

  async getAvailableResource(nodename: string): Promise<AvailableResource> {
    if (nodename !== this.opts.nodename) this.log.warn(`getAvailableResource(${nodename}): not our node`);
    const [info, containers] = await Promise.all([
      this.docker.info().catch((e: unknown) => Promise.reject(hypervisorUnavailable(this.opts.host, e))),
      this.ours(),
    ]);
    const vcpus = info.NCPU > 0 ? info.NCPU : os.cpus().length;
    const memTotal = info.MemTotal > 0 ? info.MemTotal : os.totalmem();
    let diskTotal = 0;
    let diskFree = 0;
    try {
      const s = await statfs(info.DockerRootDir);
      diskTotal = s.blocks * s.bsize;
      diskFree = s.bavail * s.bsize;
    } catch (err) {
      this.log.warn(`cannot statfs ${info.DockerRootDir} (remote engine?): local_gb reported as 0`, {
        error: errorMessage(err),
      });
    }
    let vcpusUsed = 0;
    let memUsed = 0;
    let diskUsed = 0;
    const live = new Set<string>();
    const allSizes = await Promise.all(containers.map((c) => this.sizesOf(c)));
    for (const [i, c] of containers.entries()) {
      const l = c.Labels ?? {};
      const sizes = allSizes[i] ?? { vcpus: 0, memory_mb: 0 };
      live.add(c.Id);
      vcpusUsed += sizes.vcpus;
      memUsed += sizes.memory_mb;
      diskUsed += num(l[LABELS.rootGb]) + num(l[LABELS.ephemeralGb]);
    }
    for (const id of this.sizes.keys()) if (!live.has(id)) this.sizes.delete(id);
    const cpu = os.cpus()[0];
    const arch = archName(info.Architecture ?? os.arch());
    const cpuInfo = {
      arch,
      model: cpu?.model ?? 'unknown',
      vendor: vendorOf(cpu?.model ?? ''),
      topology: { sockets: 1, cores: vcpus, threads: 1 },
      features: [] as string[],
    };
    return {
      vcpus,
      memory_mb: Math.floor(memTotal / MiB),
      local_gb: Math.floor(diskTotal / GiB),
      vcpus_used: vcpusUsed,
      memory_mb_used: memUsed,
      local_gb_used: diskUsed,
      hypervisor_type: 'docker',
      hypervisor_version: versionToInt(info.ServerVersion),
      hypervisor_hostname: this.opts.nodename,
      cpu_info: JSON.stringify(cpuInfo),
      disk_available_least: Math.floor(diskFree / GiB),
      numa_topology: null,
      supported_instances: [[arch, 'docker', 'exe']],
    };
  }

  getHostUptime(): Promise<string> {
    return Promise.resolve(formatUptime(os.uptime(), os.loadavg()));
  }

  /** The container's limits changed (a resize): its usage is read again on the next round. */
  limitsChanged(containerId: string): void {
    this.sizes.delete(containerId);
  }

  /**
   * vcpus and memory_mb a container holds, from its limits (CpuShares,
   * Memory): labels keep the flavor it was created with, a resize changes
   * the limits only. One inspect per container, cached by container id.
   */
  private async sizesOf(c: DockerContainerSummary): Promise<{ vcpus: number; memory_mb: number }> {
    const cached = this.sizes.get(c.Id);
    if (cached) return cached;
    const l = c.Labels ?? {};
    let sizes = { vcpus: num(l[LABELS.vcpus]), memory_mb: num(l[LABELS.memoryMb]) };
    try {
      const hc = (await this.docker.inspectContainer(c.Id)).HostConfig;
      if (typeof hc.Memory === 'number' && hc.Memory > 0) sizes = { ...sizes, memory_mb: Math.round(hc.Memory / MiB) };
      if (typeof hc.CpuShares === 'number' && hc.CpuShares > 0) {
        sizes = { ...sizes, vcpus: Math.round(hc.CpuShares / 1024) };
      }
      this.sizes.set(c.Id, sizes);
    } catch (err) {
      // gone meanwhile or the Engine hiccuped: the labels do for this round
      if (!(err instanceof NotFoundError)) this.log.debug(`inspect for usage failed: ${errorMessage(err)}`);
    }
    return sizes;
  }
}

function num(s: string | undefined): number {
  const n = Number(s);
  return Number.isFinite(n) ? n : 0;
}

/** Engine / Node architecture names → Nova's (obj_fields.Architecture). */
export function archName(a: string): string {
  switch (a) {
    case 'x64':
    case 'amd64':
    case 'x86_64':
      return 'x86_64';
    case 'arm64':
    case 'aarch64':
      return 'aarch64';
    case 'ppc64':
      return 'ppc64le';
    default:
      return a;
  }
}

function vendorOf(model: string): string {
  if (/intel/i.test(model)) return 'Intel';
  if (/amd/i.test(model)) return 'AMD';
  return 'unknown';
}
