/**
 * What rebuild and resize need besides the conductor: the image record
 * (Glance, ImageMeta.from_image_ref) and compute-to-compute casts
 * (nova/compute/rpcapi.py, `compute.<host>`).
 */
import { NotFoundError } from '../clients/errors.js';
import { type GlanceClient, imageProperties } from '../clients/glance/client.js';
import type { RpcClient } from '../rpc/client.js';
import { imageNotFound } from '../virt/errors.js';
import type { ImageMeta } from '../virt/types.js';
import type { ComputeCaster, ImageAPI } from './collaborators.js';

export function glanceImageAPI(glance: GlanceClient): ImageAPI {
  return {
    async show(ctx, imageId): Promise<ImageMeta> {
      try {
        const img = await glance.showImage(
          {
            authToken: ctx.auth_token ?? undefined,
            requestId: ctx.request_id,
            globalRequestId: ctx.global_request_id ?? undefined,
          },
          imageId,
        );
        const meta: ImageMeta = { id: img.id, properties: imageProperties(img) };
        if (typeof img.name === 'string') meta.name = img.name;
        if (typeof img.container_format === 'string') meta.container_format = img.container_format;
        if (typeof img.disk_format === 'string') meta.disk_format = img.disk_format;
        if (typeof img.checksum === 'string') meta.checksum = img.checksum;
        if (typeof img.os_hash_algo === 'string') meta.os_hash_algo = img.os_hash_algo;
        if (typeof img.os_hash_value === 'string') meta.os_hash_value = img.os_hash_value;
        if (typeof img.size === 'number') meta.size = img.size;
        return meta;
      } catch (err) {
        if (err instanceof NotFoundError) throw imageNotFound(imageId, err);
        throw err;
      }
    },
  };
}

export function computeCaster(rpc: RpcClient): ComputeCaster {
  return {
    cast: (ctx, host, method, args, version) => rpc.cast(ctx, method, args, { server: host, version }),
  };
}
