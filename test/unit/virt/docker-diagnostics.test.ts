/** One Engine stats sample as Nova's Diagnostics fields (src/virt/docker/diagnostics.ts). */
import assert from 'node:assert/strict';
import type { DockerContainerStats } from '../../../src/clients/docker/types.js';
import { diagnosticsFromStats, type DiagnosedContainer } from '../../../src/virt/docker/diagnostics.js';
import { PowerState } from '../../../src/virt/power-state.js';

const MIB = 1024 * 1024;
const started = '2026-12-03T07:00:00.000Z';
const inspect = (memory: number): DiagnosedContainer => ({
  State: { Running: true, StartedAt: started },
  HostConfig: { Memory: memory },
});

describe('virt/docker diagnostics', () => {
  it('cgroup v2: the flavor limit, usage, uptime, one CPU with docker stats’ utilisation, the disk’s bytes', () => {
    const stats: DockerContainerStats = {
      pids_stats: { current: 3 },
      cpu_stats: { cpu_usage: { total_usage: 3_000_000_000 }, system_cpu_usage: 20_000_000_000, online_cpus: 2 },
      precpu_stats: { cpu_usage: { total_usage: 2_000_000_000 }, system_cpu_usage: 18_000_000_000 },
      memory_stats: { usage: 64 * MIB, limit: 512 * MIB },
      blkio_stats: {
        io_service_bytes_recursive: [
          { op: 'read', value: 4096 },
          { op: 'write', value: 8192 },
        ],
        io_serviced_recursive: null,
      },
    };
    const d = diagnosticsFromStats(inspect(512 * MIB), stats, PowerState.RUNNING, Date.parse(started) + 90_500);
    assert.equal(d.uptime, 90);
    assert.deepEqual(d.memory_details, { maximum: 512, used: 64 });
    // (1e9 / 2e9) × 2 CPUs × 100
    assert.deepEqual(d.cpu_details, [{ id: 0, time: 3_000_000_000, utilisation: 100 }]);
    assert.deepEqual(d.disk_details, [
      { read_bytes: 4096, read_requests: null, write_bytes: 8192, write_requests: null, errors_count: null },
    ]);
    assert.deepEqual(d.nic_details, []);
    assert.equal(d.processes, 3);
  });

  it('cgroup v1: per-CPU times; a first sample (no precpu) has no utilisation; no limit → the Engine’s', () => {
    const stats: DockerContainerStats = {
      cpu_stats: { cpu_usage: { total_usage: 30, percpu_usage: [10, 20, 0] }, system_cpu_usage: 100 },
      precpu_stats: {},
      memory_stats: { usage: 2 * MIB, limit: 8192 * MIB },
      networks: { eth0: { rx_bytes: 10, tx_bytes: 20, rx_packets: 1, tx_packets: 2 } },
    };
    const d = diagnosticsFromStats(inspect(0), stats, PowerState.RUNNING);
    assert.deepEqual(d.cpu_details, [
      { id: 0, time: 10, utilisation: null },
      { id: 1, time: 20, utilisation: null },
    ]);
    assert.equal(d.memory_details.maximum, 8192);
    assert.equal(d.nic_details[0]?.rx_octets, 10);
    assert.equal(d.nic_details[0]?.tx_packets, 2);
  });
});
