/**
 * get_diagnostics and get_instance_diagnostics (`openstack server show
 * --diagnostics`, the API's os-server-diagnostics): nova's manager answers
 * only for a RUNNING guest (InstanceInvalidState otherwise) under
 * wrap_instance_fault, the driver reads the numbers.
 */
import { NovaObject } from '../objects/base.js';
import type { RpcArgs, RpcHandler } from '../rpc/dispatcher.js';
import type { RequestContext } from '../rpc/context.js';
import type { ComputeDriver } from '../virt/driver.js';
import { instanceInvalidState } from '../virt/errors.js';
import { POWER_STATE_NAMES, PowerState } from '../virt/power-state.js';
import type { InstanceDiagnostics } from '../virt/types.js';
import { currentPowerState, isNovaException, type InstanceStore } from './instance-store.js';

/**
 * nova.objects.Diagnostics 1.0, its lists and MemoryDiagnostics 1.0.
 * `driver` stays unset: Nova's HypervisorDriverField knows libvirt, xenapi,
 * vmwareapi, ironic and hyperv only, and a container is none of them (the
 * API shows null there rather than a hypervisor this is not).
 */
export function diagnosticsObject(d: InstanceDiagnostics): NovaObject {
  const list = (name: string, items: ReadonlyArray<Record<string, unknown>>): unknown[] =>
    items.map((i) => NovaObject.create(name, '1.0', i).toPrimitive());
  return NovaObject.create('Diagnostics', '1.0', {
    state: POWER_STATE_NAMES[d.power_state],
    hypervisor: 'docker',
    hypervisor_os: 'linux',
    uptime: d.uptime,
    config_drive: false,
    memory_details: NovaObject.create('MemoryDiagnostics', '1.0', d.memory_details).toPrimitive(),
    cpu_details: list('CpuDiagnostics', d.cpu_details),
    nic_details: list('NicDiagnostics', d.nic_details),
    disk_details: list('DiskDiagnostics', d.disk_details),
    num_cpus: d.cpu_details.length,
    num_nics: d.nic_details.length,
    num_disks: d.disk_details.length,
  });
}

/**
 * The pre-2.48 free-form reply, in the libvirt driver's key names where a
 * container has the same thing (cpuN_time in ns, memory in KiB, the disk's
 * read/write bytes and requests).
 */
export function legacyDiagnostics(d: InstanceDiagnostics): Record<string, number | string | null> {
  const out: Record<string, number | string | null> = { state: POWER_STATE_NAMES[d.power_state], uptime: d.uptime };
  for (const c of d.cpu_details) out[`cpu${c.id ?? 0}_time`] = c.time;
  const kib = (mb: number | null): number | null => (mb === null ? null : mb * 1024);
  out.memory = kib(d.memory_details.maximum);
  out['memory-actual'] = kib(d.memory_details.maximum);
  out['memory-rss'] = kib(d.memory_details.used);
  const disk = d.disk_details[0];
  if (disk) {
    out.root_read = disk.read_bytes;
    out.root_read_req = disk.read_requests;
    out.root_write = disk.write_bytes;
    out.root_write_req = disk.write_requests;
  }
  d.nic_details.forEach((n, i) => {
    out[`eth${i}_rx`] = n.rx_octets;
    out[`eth${i}_tx`] = n.tx_octets;
  });
  if (d.processes !== undefined) out.processes = d.processes;
  return out;
}

export function diagnosticsMethods(store: InstanceStore, driver: ComputeDriver): Record<string, RpcHandler> {
  const read = async (ctx: RequestContext, args: RpcArgs, method: string): Promise<InstanceDiagnostics> => {
    const instance = store.instanceArg(args);
    const uuid = instance.str('uuid') ?? '';
    const spec = store.spec(instance);
    try {
      const state = await currentPowerState(driver, spec);
      if (state !== PowerState.RUNNING) {
        // nova names the state the instance record has, not the one just read
        const recorded = instance.num('power_state') ?? state;
        throw instanceInvalidState(uuid, POWER_STATE_NAMES[recorded as PowerState] ?? String(recorded), method);
      }
      return await driver.getDiagnostics(spec);
    } catch (err) {
      // wrap_instance_fault
      if (!isNovaException(err, 'InstanceNotFound')) await store.recordFault(ctx, uuid, err);
      throw err;
    }
  };
  return {
    get_diagnostics: async (ctx, a) => legacyDiagnostics(await read(ctx, a, 'get_diagnostics')),
    get_instance_diagnostics: async (ctx, a) =>
      diagnosticsObject(await read(ctx, a, 'get_instance_diagnostics')).toPrimitive(),
  };
}
