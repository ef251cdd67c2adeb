/**
 * `openstack server show --diagnostics` for a container: one Engine stats
 * sample read as Nova's Diagnostics fields (nova/objects/diagnostics.py, the
 * libvirt driver's units: memory in MiB, CPU time in ns, utilisation in %).
 */
import type { DockerContainerStats } from '../../clients/docker/types.js';
import type { PowerState } from '../power-state.js';
import type { InstanceDiagnostics } from '../types.js';

const MIB = 1024 * 1024;

/** A number the Engine really reported (it sends 0 or omits what a cgroup version lacks). */
const known = (v: number | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The `op` entry of a blkio list (cgroup v2 says "read", v1 "Read"). */
function blkio(list: Array<{ op?: string; value?: number }> | null | undefined, op: string): number | null {
  if (!list) return null;
  let sum: number | null = null;
  for (const e of list) if (e.op?.toLowerCase() === op && typeof e.value === 'number') sum = (sum ?? 0) + e.value;
  return sum;
}

/** What is read of the container's inspect (a DockerContainerInspect is one). */
export interface DiagnosedContainer {
  State: { Running: boolean; StartedAt?: string | undefined };
  HostConfig?: { Memory?: number | undefined } | undefined;
}

export function diagnosticsFromStats(
  c: DiagnosedContainer,
  stats: DockerContainerStats,
  powerState: PowerState,
  now = Date.now(),
): InstanceDiagnostics {
  const started = Date.parse(c.State.StartedAt ?? '');
  const uptime = c.State.Running && Number.isFinite(started) ? Math.max(0, Math.floor((now - started) / 1000)) : null;
  // the flavor's hard limit; the Engine reports the host's memory when there is none
  const limit = c.HostConfig?.Memory ? c.HostConfig.Memory : known(stats.memory_stats?.limit);
  const used = known(stats.memory_stats?.usage);

  const cpu = stats.cpu_stats;
  const pre = stats.precpu_stats;
  const total = known(cpu?.cpu_usage?.total_usage);
  let utilisation: number | null = null;
  const cpuDelta = (cpu?.cpu_usage?.total_usage ?? 0) - (pre?.cpu_usage?.total_usage ?? 0);
  const systemDelta = (cpu?.system_cpu_usage ?? 0) - (pre?.system_cpu_usage ?? 0);
  if (pre?.system_cpu_usage && systemDelta > 0 && cpuDelta >= 0) {
    // docker stats' formula: share of the whole host, times its CPUs
    utilisation = Math.round((cpuDelta / systemDelta) * (cpu?.online_cpus ?? 1) * 100);
  }
  // cgroup v1 gives per-CPU times; v2 only the total (one entry, as libvirt's per-vCPU list with one vCPU)
  const perCpu = cpu?.cpu_usage?.percpu_usage?.filter((t) => t > 0) ?? [];
  const cpuDetails =
    perCpu.length > 0
      ? perCpu.map((time, id) => ({ id, time, utilisation: null }))
      : [{ id: 0, time: total, utilisation }];
  if (perCpu.length > 0 && cpuDetails[0]) cpuDetails[0].utilisation = utilisation;

  const nics = Object.values(stats.networks ?? {}).map((n) => ({
    mac_address: null,
    rx_octets: known(n.rx_bytes),
    rx_errors: known(n.rx_errors),
    rx_drop: known(n.rx_dropped),
    rx_packets: known(n.rx_packets),
    rx_rate: null,
    tx_octets: known(n.tx_bytes),
    tx_errors: known(n.tx_errors),
    tx_drop: known(n.tx_dropped),
    tx_packets: known(n.tx_packets),
    tx_rate: null,
  }));
  const b = stats.blkio_stats;
  const disk = {
    read_bytes: blkio(b?.io_service_bytes_recursive, 'read'),
    read_requests: blkio(b?.io_serviced_recursive, 'read'),
    write_bytes: blkio(b?.io_service_bytes_recursive, 'write'),
    write_requests: blkio(b?.io_serviced_recursive, 'write'),
    errors_count: null,
  };
  return {
    power_state: powerState,
    uptime,
    memory_details: {
      maximum: limit === null ? null : Math.round(limit / MIB),
      used: used === null ? null : Math.round(used / MIB),
    },
    cpu_details: cpuDetails,
    nic_details: nics,
    // the container's writable layer is its one disk
    disk_details: [disk],
    ...(typeof stats.pids_stats?.current === 'number' ? { processes: stats.pids_stats.current } : {}),
  };
}
