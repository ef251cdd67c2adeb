/**
 * The snapshot pipeline: `docker commit` of an instance's container →
 * `docker save` of the committed image → streamed into the Glance image's
 * data. DockerDriver.snapshot finds the container and delegates here.
 * Behaviour: docs/docker-driver.md (snapshot).
 */
import { Transform, pipeline, type Readable } from 'node:stream';
import type { DockerClient } from '../../clients/docker/client.js';
import type { DockerContainerInspect } from '../../clients/docker/types.js';
import { NotFoundError } from '../../clients/errors.js';
import type { GlanceImage, ImagePatchOp } from '../../clients/glance/client.js';
import type { CallContext } from '../../clients/http.js';
import { AgentError, errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { imageNotFound } from '../errors.js';
import type { DriverContext, InstanceSpec, UpdateTaskState } from '../types.js';
import { META_ENV_PREFIX } from './container-spec.js';
import { engineError, guardEngineCall } from './engine-errors.js';
import { LABEL_PREFIX } from './labels.js';
import type { LifecycleJournal } from './lifecycle-journal.js';

/** The Glance calls a snapshot makes (GlanceClient fits). */
export interface SnapshotGlance {
  showImage(ctx: CallContext | undefined, id: string): Promise<GlanceImage>;
  updateImage(ctx: CallContext | undefined, id: string, ops: readonly ImagePatchOp[]): Promise<GlanceImage>;
  uploadImage(ctx: CallContext | undefined, id: string, data: Readable, opts?: { signal?: AbortSignal }): Promise<void>;
}

/** Repository of the image a snapshot commits, until its upload is done: `nova-snapshot/<glance id>:upload`. */
export const SNAPSHOT_REPO = 'nova-snapshot';

/** The Engine calls a snapshot makes (DockerClient fits). */
export type SnapshotDocker = Pick<DockerClient, 'commitContainer' | 'saveImage' | 'removeImage'>;

export interface SnapshotPipelineOptions {
  /** The compute host (for HypervisorUnavailable). */
  host: string;
  /** The driver's extra labels, blanked in the committed image as its own are. */
  extraLabels: Readonly<Record<string, string>>;
}

export class SnapshotPipeline {
  constructor(
    private readonly docker: SnapshotDocker,
    private readonly glance: SnapshotGlance,
    private readonly journal: LifecycleJournal,
    private readonly opts: SnapshotPipelineOptions,
    private readonly log: Logger,
  ) {}

  /**
   * `docker commit` of the container (paused meanwhile, so the filesystem is
   * consistent), then its `docker save` streamed straight into the Glance
   * image's data (PUT /file, chunked): no temp file, nothing buffered. The
   * image becomes container_format=docker, disk_format=raw, which the image
   * pipeline boots like any other. The committed image is removed afterwards.
   */
  async take(
    ctx: DriverContext,
    instance: InstanceSpec,
    c: DockerContainerInspect,
    imageId: string,
    updateTaskState: UpdateTaskState,
  ): Promise<void> {
    const glance = this.glance;
    const uuid = instance.uuid;
    const meta = { instance_uuid: uuid, image_id: imageId, ...(ctx.requestId ? { request_id: ctx.requestId } : {}) };
    const callCtx: CallContext = {
      authToken: ctx.authToken,
      requestId: ctx.requestId,
      globalRequestId: ctx.globalRequestId,
    };
    const record = await glanceCall(imageId, () => glance.showImage(callCtx, imageId));
    await updateTaskState('image_pending_upload');

    const repo = `${SNAPSHOT_REPO}/${dockerPathComponent(imageId)}`;
    const ref = `${repo}:upload`;
    const started = Date.now();
    let committed = false;
    void this.journal.note(
      uuid,
      `snapshot ${imageId} requested by Nova: processes frozen while the filesystem is committed`,
      c.Id,
    );
    try {
      await guardEngineCall(this.opts.host, uuid, undefined, async () => {
        await this.docker.commitContainer(c.Id, {
          repo,
          tag: 'upload',
          pause: true,
          comment: `nova-docker snapshot of instance ${uuid}`,
          ...snapshotConfig(c, this.opts.extraLabels),
        });
      });
      committed = true;
      const commitS = (Date.now() - started) / 1000;
      await updateTaskState('image_uploading', 'image_pending_upload');
      await glanceCall(imageId, () => glance.updateImage(callCtx, imageId, snapshotPatch(record, instance)));
      const bytes = await this.upload(uuid, imageId, ref, (data, signal) =>
        glanceCall(imageId, () => glance.uploadImage(callCtx, imageId, data, { signal })),
      );
      const secs = (Date.now() - started) / 1000;
      const mb = bytes / 1e6;
      this.log.info(
        `snapshot ${imageId}: committed in ${commitS.toFixed(2)} s, uploaded ${mb.toFixed(1)} MB ` +
          `in ${(secs - commitS).toFixed(2)} s (${(mb / Math.max(secs - commitS, 0.001)).toFixed(1)} MB/s)`,
        meta,
      );
    } finally {
      if (committed) {
        await this.docker.removeImage(ref, { force: false }).catch((err: unknown) => {
          this.log.warn(`could not remove the snapshot's intermediate image ${ref}: ${errorMessage(err)}`, meta);
        });
      }
    }
  }

  /** `docker save ref` piped into `put`, counted; a broken save aborts the upload and vice versa. */
  private async upload(
    uuid: string,
    imageId: string,
    ref: string,
    put: (data: Readable, signal: AbortSignal) => Promise<void>,
  ): Promise<number> {
    const ac = new AbortController();
    let tar: Readable;
    try {
      tar = await this.docker.saveImage(ref, { signal: ac.signal });
    } catch (err) {
      throw engineError(this.opts.host, uuid, err);
    }
    let bytes = 0;
    const counter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        bytes += chunk.length;
        cb(null, chunk);
      },
    });
    let saveErr: Error | undefined;
    tar.once('error', (e) => {
      saveErr ??= e;
    });
    // the save's error reaches the upload through `counter`, and the upload's end destroys `tar`
    pipeline(tar, counter, () => undefined);
    try {
      await put(counter, ac.signal);
    } catch (err) {
      ac.abort();
      tar.destroy();
      if (saveErr !== undefined && err === saveErr) {
        throw new AgentError(`docker save of ${ref} broke off after ${bytes} bytes: ${errorMessage(saveErr)}`, {
          cause: saveErr,
          fields: { instance_uuid: uuid, image_id: imageId },
        });
      }
      throw err;
    }
    return bytes;
  }
}

/** A Glance call of a snapshot: the image deleted meanwhile is ImageNotFound (the manager stops quietly). */
async function glanceCall<T>(imageId: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof NotFoundError) throw imageNotFound(imageId, err);
    throw err;
  }
}

/**
 * The image config a commit overrides: the driver's labels and the instance
 * metadata's env blanked (the Engine can only override, not drop, what the
 * container had), so a container run from the snapshot is never taken for
 * an instance and does not inherit the old instance's metadata.
 */
export function snapshotConfig(
  c: Pick<DockerContainerInspect, 'Config'>,
  extraLabels: Readonly<Record<string, string>>,
): { labels: Record<string, string>; env?: string[] } {
  const labels: Record<string, string> = {};
  for (const k of Object.keys(c.Config.Labels ?? {})) {
    if (k.startsWith(LABEL_PREFIX) || Object.hasOwn(extraLabels, k)) labels[k] = '';
  }
  const env = (c.Config.Env ?? [])
    .filter((e) => e.startsWith(META_ENV_PREFIX))
    .map((e) => `${e.slice(0, e.indexOf('=') < 0 ? e.length : e.indexOf('='))}=`);
  return env.length > 0 ? { labels, env } : { labels };
}

/**
 * What the snapshot's Glance record gets before its data (Glance refuses
 * data without both formats): docker/raw, libvirt's snapshot properties, and
 * no `docker_image_ref` inherited from the instance's image, which would make
 * a boot pull the base image instead of this data.
 */
export function snapshotPatch(record: GlanceImage, instance: InstanceSpec): ImagePatchOp[] {
  const ops: ImagePatchOp[] = [
    { op: 'add', path: '/container_format', value: 'docker' },
    { op: 'add', path: '/disk_format', value: 'raw' },
    { op: 'add', path: '/image_location', value: 'snapshot' },
    { op: 'add', path: '/image_state', value: 'available' },
  ];
  if (instance.project_id) ops.push({ op: 'add', path: '/owner_id', value: instance.project_id });
  if (record.docker_image_ref !== undefined) ops.push({ op: 'remove', path: '/docker_image_ref' });
  return ops;
}

/** A Glance id as a docker repository path component (lowercase, `[a-z0-9]` runs joined by `._-`). */
export function dockerPathComponent(id: string): string {
  const c = id
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[._-]+|[._-]+$/g, '')
    .replace(/[._-]{2,}/g, '-');
  return c || 'image';
}
