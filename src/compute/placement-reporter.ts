/**
 * The manager's view of Placement: provider = compute node (same uuid, name =
 * hypervisor_hostname), VCPU/MEMORY_MB/DISK_GB inventory with nova.conf's
 * ratios and reservations, COMPUTE_NODE trait; allocations removed on delete.
 * Always with the service's own token (never the user's).
 */
import type { Config } from '../config/index.js';
import type { Logger } from '../common/log.js';
import { PlacementClient, type PlacementKeystone } from '../clients/placement/index.js';
import type { RequestContext } from '../rpc/context.js';
import type { AvailableResource } from '../virt/types.js';
import type { PlacementReporter } from './manager.js';
import { computeInventories, mergeProviderTraits } from './resource-tracker-math.js';
import { CONTAINER_DRIVER_CAPABILITIES } from '../virt/driver.js';

function callContext(ctx: RequestContext): { requestId: string; globalRequestId?: string } {
  return { requestId: ctx.request_id, ...(ctx.global_request_id ? { globalRequestId: ctx.global_request_id } : {}) };
}

export function placementReporter(keystone: PlacementKeystone, config: Config, logger: Logger): PlacementReporter {
  const client = new PlacementClient({
    keystone,
    endpointOverride: config.placement.endpoint_override,
    region: config.placement.region_name,
    interfaces: config.placement.valid_interfaces,
    logger,
  });
  const D = config.DEFAULT;
  let known: string | undefined;
  return {
    async syncProvider(ctx, node, resources: AvailableResource, disabled: boolean) {
      const cc = callContext(ctx);
      if (known !== node.uuid) {
        await client.ensureProvider(node, cc);
        known = node.uuid;
      }
      // nova keeps a ratio an operator set in Placement when nova.conf leaves it unset: pass what is there
      const current = await client.getInventories(node.uuid, cc);
      const inventories = computeInventories(
        resources,
        {
          cpu_allocation_ratio: D.cpu_allocation_ratio,
          ram_allocation_ratio: D.ram_allocation_ratio,
          disk_allocation_ratio: D.disk_allocation_ratio,
          initial_cpu_allocation_ratio: D.initial_cpu_allocation_ratio,
          initial_ram_allocation_ratio: D.initial_ram_allocation_ratio,
          initial_disk_allocation_ratio: D.initial_disk_allocation_ratio,
          reserved_host_memory_mb: D.reserved_host_memory_mb,
          reserved_host_disk_mb: D.reserved_host_disk_mb,
          reserved_host_cpus: D.reserved_host_cpus,
        },
        current.inventories,
      );
      await client.setInventories(node.uuid, inventories, cc, { current });
      // merge, as nova does: traits an operator added stay; ours are set or cleared
      const traits = await client.getTraits(node.uuid, cc);
      const wanted = mergeProviderTraits(traits.traits, CONTAINER_DRIVER_CAPABILITIES, { disabled });
      await client.setTraits(node.uuid, wanted, cc, { current: traits });
    },
    async deleteAllocations(ctx, instanceUuid) {
      await client.deleteAllocations(instanceUuid, callContext(ctx));
    },
  };
}
