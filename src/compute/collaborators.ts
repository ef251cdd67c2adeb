/**
 * What the compute manager and its action modules need from the services
 * around them, as interfaces: Placement, the scheduler's instance info,
 * Glance, the compute RPC API of other hosts, and the boot observer. The
 * real implementations (placement-reporter.ts, scheduler-notifier.ts,
 * move-services.ts, GlanceClient, metrics) and the test fakes implement
 * these; the modules that use them import this file, never manager.ts, so
 * compute/ has no import circle (test/unit/architecture.test.ts).
 */
import type { ImageListQuery } from '../clients/glance/client.js';
import type { CallContext } from '../clients/http.js';
import type { ConsumerAllocations } from '../clients/placement/types.js';
import type { NovaObject } from '../objects/base.js';
import type { RequestContext } from '../rpc/context.js';
import type { RpcArgs } from '../rpc/dispatcher.js';
import type { AvailableResource, ImageMeta } from '../virt/types.js';

/** What the manager needs from Placement (src/clients/placement behind it). */
export interface PlacementReporter {
  /** Ensures the provider, its inventory and traits match the node (COMPUTE_STATUS_DISABLED when `disabled`). */
  syncProvider(
    ctx: RequestContext,
    node: { uuid: string; name: string },
    resources: AvailableResource,
    disabled: boolean,
  ): Promise<void>;
  /** Removes an instance's allocations; a missing consumer is fine. */
  deleteAllocations(ctx: RequestContext, instanceUuid: string): Promise<void>;
  /** GET /allocations/{consumer} (report.py get_allocs_for_consumer). */
  getAllocations(ctx: RequestContext, consumerUuid: string): Promise<ConsumerAllocations>;
  /** report.py move_allocations: true when moved (or already moved); AllocationMoveFailed on a consumer conflict. */
  moveAllocations(ctx: RequestContext, sourceConsumer: string, targetConsumer: string): Promise<boolean>;
  /** report.py delete_allocation_for_instance(force=False); AllocationDeleteFailed on a conflict. */
  deleteMigrationAllocations(ctx: RequestContext, consumerUuid: string): Promise<boolean>;
}

/** The scheduler's instance-info fanout casts (nova/scheduler/rpcapi.py, version 4.2). */
export interface SchedulerNotifier {
  updateInstanceInfo(ctx: RequestContext, hostName: string, instance: NovaObject): Promise<void>;
  deleteInstanceInfo(ctx: RequestContext, hostName: string, instanceUuid: string): Promise<void>;
  syncInstanceInfo(ctx: RequestContext, hostName: string, instanceUuids: string[]): Promise<void>;
}

/** ImageMeta.from_image_ref: the image record behind an image_ref. */
export interface ImageAPI {
  /** ImageNotFound (NovaError) when the image does not exist. */
  show(ctx: RequestContext, imageId: string): Promise<ImageMeta>;
}

/** The Glance calls the manager makes around a snapshot (GlanceClient fits). */
export interface SnapshotImageApi {
  showImage(ctx: CallContext | undefined, id: string): Promise<{ id: string; status?: string }>;
  deleteImage(ctx: CallContext | undefined, id: string): Promise<void>;
  listImages(ctx: CallContext | undefined, q: ImageListQuery): Promise<Array<{ id: string }>>;
}

/** The compute RPC API casts one compute host makes to another (nova/compute/rpcapi.py). */
export interface ComputeCaster {
  cast(ctx: RequestContext, host: string, method: string, args: RpcArgs, version: string): Promise<void>;
}

/**
 * Phase timings of one boot, ms since the cast arrived (for bench/boot and
 * metrics); 0 = not reached. The state saves (→ spawning) overlap the driver's
 * image fetch and guest creation, so those marks come in either order.
 */
export interface BootTiming {
  instance_uuid: string;
  received: number;
  spawning: number;
  /** The driver has the image locally. */
  image_ready: number;
  /** The driver created the guest (not started yet). */
  guest_created: number;
  spawned: number;
  active: number;
  ok: boolean;
}
