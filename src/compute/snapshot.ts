/**
 * snapshot_instance and backup_instance, as nova/compute/manager.py (Zed)
 * does them: the API has created the Glance record and set the task; the
 * manager moves image_snapshot(_pending) → image_pending_upload →
 * image_uploading → None (the last two through the driver's
 * update_task_state callback), and on failure deletes the unfinished image
 * (delete_image_on_error), records a fault (wrap_instance_fault), finishes
 * the action event with the error (wrap_instance_event) and clears the task
 * (reverts_task_state).
 */
import { errorMessage } from '../common/errors.js';
import { NotFoundError } from '../clients/errors.js';
import type { CallContext } from '../clients/http.js';
import type { NovaObject } from '../objects/base.js';
import type { RequestContext } from '../rpc/context.js';
import type { RpcArgs, RpcHandler } from '../rpc/dispatcher.js';
import type { ComputeDriver } from '../virt/driver.js';
import type { UpdateTaskState } from '../virt/types.js';
import type { SnapshotImageApi } from './collaborators.js';
import { currentPowerState, driverContext, type InstanceStore, isNovaException } from './instance-store.js';
import { PowerStateValue } from './states.js';

/** nova/compute/task_states.py */
export const SnapshotTaskState = {
  IMAGE_SNAPSHOT: 'image_snapshot',
  IMAGE_SNAPSHOT_PENDING: 'image_snapshot_pending',
  IMAGE_PENDING_UPLOAD: 'image_pending_upload',
  IMAGE_UPLOADING: 'image_uploading',
  IMAGE_BACKUP: 'image_backup',
} as const;
const T = SnapshotTaskState;

/** The Glance call context of a request: its token and request ids. */
export function callContext(ctx: RequestContext): CallContext {
  return {
    authToken: ctx.auth_token ?? undefined,
    requestId: ctx.request_id,
    globalRequestId: ctx.global_request_id ?? undefined,
  };
}

export class SnapshotActions {
  constructor(
    private readonly store: InstanceStore,
    private readonly driver: ComputeDriver,
    private readonly images: SnapshotImageApi | undefined,
  ) {}

  methods(): Record<string, RpcHandler> {
    return {
      snapshot_instance: (ctx, a) => this.snapshotInstance(ctx, a),
      backup_instance: (ctx, a) => this.backupInstance(ctx, a),
    };
  }

  async snapshotInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    const imageId = String(args.image_id);
    await this.decorated(ctx, instance, 'snapshot_instance', () =>
      this.deleteImageOnError(ctx, instance, imageId, async () => {
        const uuid = instance.str('uuid') ?? '';
        // The API set image_snapshot_pending; setting it again also covers a task
        // state cleared by a restart of this service meanwhile.
        try {
          await this.store.save(ctx, instance, { task_state: T.IMAGE_SNAPSHOT }, T.IMAGE_SNAPSHOT_PENDING);
        } catch (err) {
          if (isNovaException(err, 'InstanceNotFound', 'UnexpectedDeletingTaskStateError')) {
            this.store.log('debug', `Instance gone or being deleted, no snapshot: ${errorMessage(err)}`, ctx, uuid);
            return;
          }
          throw err;
        }
        await this.snapshotOnHypervisor(ctx, imageId, instance, T.IMAGE_SNAPSHOT);
      }),
    );
  }

  /** backup_instance: a snapshot with task image_backup, then the oldest backups beyond `rotation` deleted. */
  async backupInstance(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instance = this.store.instanceArg(args);
    const imageId = String(args.image_id);
    const backupType = String(args.backup_type);
    const rotation = typeof args.rotation === 'number' ? args.rotation : Number(args.rotation);
    await this.decorated(ctx, instance, 'backup_instance', async () => {
      await this.deleteImageOnError(ctx, instance, imageId, () =>
        this.snapshotOnHypervisor(ctx, imageId, instance, T.IMAGE_BACKUP),
      );
      await this.rotateBackups(ctx, instance, backupType, rotation);
    });
  }

  /** _snapshot_instance */
  private async snapshotOnHypervisor(
    ctx: RequestContext,
    imageId: string,
    instance: NovaObject,
    expectedTaskState: string,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    const spec = this.store.spec(instance);
    const power: number = await currentPowerState(this.driver, spec);
    try {
      await this.store.save(ctx, instance, { power_state: power });
      this.store.log('info', 'instance snapshotting', ctx, uuid);
      if (power !== PowerStateValue.RUNNING) {
        this.store.log(
          'warn',
          `trying to snapshot a non-running instance: (state: ${power} expected: ${PowerStateValue.RUNNING})`,
          ctx,
          uuid,
        );
      }
      const update: UpdateTaskState = async (taskState, expected = expectedTaskState) => {
        await this.store.save(ctx, instance, { task_state: taskState }, expected);
      };
      const t0 = performance.now();
      await this.driver.snapshot(driverContext(ctx), spec, imageId, update);
      const secs = (performance.now() - t0) / 1000;
      this.store.log('info', `Took ${secs.toFixed(2)} seconds to snapshot the instance on the hypervisor.`, ctx, uuid);
      await this.store.save(ctx, instance, { task_state: null }, T.IMAGE_UPLOADING);
    } catch (err) {
      if (isNovaException(err, 'InstanceNotFound', 'InstanceNotRunning', 'UnexpectedDeletingTaskStateError')) {
        this.store.log('debug', 'Instance disappeared during snapshot', ctx, uuid);
        await this.deleteUnlessActive(ctx, uuid, imageId);
        return;
      }
      if (isNovaException(err, 'ImageNotFound')) {
        await this.store.save(ctx, instance, { task_state: null });
        this.store.log('warn', 'Image not found during snapshot', ctx, uuid);
        return;
      }
      throw err;
    }
  }

  /** Cleanup after the instance went away: an image that did not become active is deleted. */
  private async deleteUnlessActive(ctx: RequestContext, uuid: string, imageId: string): Promise<void> {
    if (!this.images) return;
    try {
      const image = await this.images.showImage(callContext(ctx), imageId);
      if (image.status !== 'active') await this.images.deleteImage(callContext(ctx), imageId);
    } catch (err) {
      if (err instanceof NotFoundError) {
        this.store.log('debug', `Image not found during clean up ${imageId}`, ctx, uuid);
        return;
      }
      this.store.log('warn', `Error while trying to clean up image ${imageId}: ${errorMessage(err)}`, ctx, uuid);
    }
  }

  /** delete_image_on_error: the image the API created is deleted when the snapshot fails. */
  private async deleteImageOnError(
    ctx: RequestContext,
    instance: NovaObject,
    imageId: string,
    fn: () => Promise<void>,
  ): Promise<void> {
    try {
      await fn();
    } catch (err) {
      const uuid = instance.str('uuid') ?? '';
      if (!this.images) {
        this.store.log('warn', `no image API to clean up image ${imageId}`, ctx, uuid);
      } else {
        this.store.log('debug', `Cleaning up image ${imageId}`, ctx, uuid);
        await this.images.deleteImage(callContext(ctx), imageId).catch((e: unknown) => {
          if (!(e instanceof NotFoundError)) {
            this.store.log('error', `Error while trying to clean up image ${imageId}: ${errorMessage(e)}`, ctx, uuid);
          }
        });
      }
      throw err;
    }
  }

  /** reverts_task_state ∘ wrap_instance_event ∘ wrap_instance_fault (InstanceStore.decorated). */
  private async decorated(
    ctx: RequestContext,
    instance: NovaObject,
    method: string,
    fn: () => Promise<void>,
  ): Promise<void> {
    await this.store.decorated(ctx, instance, method, {}, fn);
  }

  /** _rotate_backups: the newest `rotation` backups of this type stay, older ones are deleted. */
  private async rotateBackups(
    ctx: RequestContext,
    instance: NovaObject,
    backupType: string,
    rotation: number,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    if (!this.images) {
      this.store.log('warn', 'no image API: backups are not rotated', ctx, uuid);
      return;
    }
    const images = await this.images.listImages(callContext(ctx), {
      filters: { image_type: 'backup', backup_type: backupType, instance_uuid: uuid },
      sortKey: 'created_at',
      sortDir: 'desc',
    });
    this.store.log('debug', `Found ${images.length} images (rotation: ${rotation})`, ctx, uuid);
    if (!Number.isFinite(rotation) || images.length <= rotation) return;
    const excess = images.slice(Math.max(0, rotation));
    this.store.log('debug', `Rotating out ${excess.length} backups`, ctx, uuid);
    for (const image of excess.reverse()) {
      try {
        await this.images.deleteImage(callContext(ctx), image.id);
      } catch (err) {
        this.store.log(
          'info',
          err instanceof NotFoundError
            ? `Failed to find image ${image.id} to delete`
            : `Failed to delete image ${image.id} during deleting excess backups. Continuing for next image.. ${errorMessage(err)}`,
          ctx,
          uuid,
        );
      }
    }
  }
}
