/**
 * The manager's view of Placement: provider = compute node (same uuid, name =
 * hypervisor_hostname), VCPU/MEMORY_MB/DISK_GB inventory with nova.conf's
 * ratios and reservations, COMPUTE_NODE trait; allocations removed on delete.
 * Always with the service's own token (never the user's).
 */
import type { Config } from '../config/index.js';
import type { Logger } from '../common/log.js';
import {
  PLACEMENT_ERROR_CODES,
  PlacementClient,
  type PlacementAllocations,
  type PlacementKeystone,
} from '../clients/placement/index.js';
import type { RequestContext } from '../rpc/context.js';
import type { AvailableResource } from '../virt/types.js';
import type { PlacementReporter } from './collaborators.js';
import { computeInventories, mergeProviderTraits } from './resource-tracker-math.js';
import { CONTAINER_DRIVER_CAPABILITIES } from '../virt/driver.js';
import { NovaError } from '../common/errors.js';

/** @retries in nova/scheduler/client/report.py: 4 attempts, random back-off of up to 2 s × attempt. */
const MOVE_ATTEMPTS = 4;

/**
 * report.py move_allocations: what `source` holds now goes to `target` in
 * one POST /allocations, both consumer generations checked. Already moved
 * (source empty, target not) counts as done. A consumer generation conflict
 * is AllocationMoveFailed; a provider generation conflict is retried.
 * Returns false when placement refused it otherwise or the retries ran out.
 */
export async function moveAllocations(
  client: PlacementAllocations,
  ctx: RequestContext,
  source: string,
  target: string,
  logger: Logger,
): Promise<boolean> {
  const cc = callContext(ctx);
  for (let attempt = 0; attempt < MOVE_ATTEMPTS; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, Math.random() * attempt * 2000));
    const src = await client.getAllocations(source, cc);
    const dst = await client.getAllocations(target, cc);
    const srcEmpty = Object.keys(src.allocations).length === 0;
    if (Object.keys(dst.allocations).length > 0 && srcEmpty) {
      logger.info(
        `Allocations not found for consumer ${source}; assuming they were already moved to consumer ${target}`,
      );
      return true;
    }
    const who = { project_id: src.project_id ?? '', user_id: src.user_id ?? '' };
    const r = await client.postAllocations(
      {
        [source]: { allocations: {}, ...who, consumer_generation: src.consumer_generation ?? null },
        [target]: {
          allocations: Object.fromEntries(
            Object.entries(src.allocations).map(([rp, a]) => [rp, { resources: a.resources }]),
          ),
          ...who,
          consumer_generation: dst.consumer_generation ?? null,
        },
      },
      cc,
    );
    if (r.ok) return true;
    if (r.code === PLACEMENT_ERROR_CODES.concurrentUpdate) {
      if (r.detail?.includes('consumer generation conflict')) {
        throw new NovaError(
          'AllocationMoveFailed',
          `Failed to move allocations from consumer ${source} to consumer ${target}. Error: ${r.detail}`,
          { source_consumer: source, target_consumer: target, error: r.detail },
        );
      }
      continue;
    }
    logger.warn(`Unable to post allocations for consumer ${target} (${r.status} ${r.detail ?? ''})`);
    return false;
  }
  logger.error('Failed scheduler client operation move_allocations: out of retries');
  return false;
}

/**
 * report.py delete_allocation_for_instance(force=False): read the consumer,
 * PUT it empty with its generation. False when it held nothing; a conflict
 * is AllocationDeleteFailed.
 */
export async function deleteAllocationChecked(
  client: PlacementAllocations,
  ctx: RequestContext,
  consumer: string,
): Promise<boolean> {
  const cc = callContext(ctx);
  const cur = await client.getAllocations(consumer, cc);
  if (Object.keys(cur.allocations).length === 0) return false;
  const r = await client.putAllocations(
    consumer,
    {
      allocations: {},
      project_id: cur.project_id ?? '',
      user_id: cur.user_id ?? '',
      consumer_generation: cur.consumer_generation ?? null,
    },
    cc,
  );
  if (r.ok) return true;
  throw new NovaError(
    'AllocationDeleteFailed',
    `Failed to delete allocations for consumer ${consumer}. Error: ${r.detail ?? String(r.status)}`,
    { consumer_uuid: consumer, error: r.detail ?? '' },
  );
}

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
    async getAllocations(ctx, consumerUuid) {
      return await client.getAllocations(consumerUuid, callContext(ctx));
    },
    moveAllocations: (ctx, source, target) => moveAllocations(client, ctx, source, target, logger),
    deleteMigrationAllocations: (ctx, consumer) => deleteAllocationChecked(client, ctx, consumer),
  };
}
