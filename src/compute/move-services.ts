/**
 * What rebuild and resize need besides the conductor: the image record
 * (Glance, ImageMeta.from_image_ref) and compute-to-compute casts
 * (nova/compute/rpcapi.py, `compute.<host>`).
 */
import { NotFoundError } from '../clients/errors.js';
import type { GlanceClient } from '../clients/glance/client.js';
import type { RpcClient } from '../rpc/client.js';
import { imageNotFound } from '../virt/errors.js';
import { imageMetaFromGlance } from '../virt/image-meta.js';
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
        return imageMetaFromGlance(img);
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
