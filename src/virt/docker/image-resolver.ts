/**
 * Where the Docker driver gets the image to run. The image pipeline (Glance
 * download, registry pull, `docker load`) implements this; the driver only
 * needs a local docker reference back.
 */
import type { DockerClient } from '../../clients/docker/client.js';
import type { ImageMeta } from '../types.js';
import { imageNotFound } from '../errors.js';

export interface ImageResolverContext {
  /** Keystone token of the request, for Glance / the registry. */
  authToken?: string;
  requestId?: string;
}

export interface ResolvedImage {
  /** A reference the local dockerd can create a container from (tag or sha256: id). */
  dockerRef: string;
}

export interface ImageResolver {
  /**
   * Makes `image` present in the local dockerd and returns its reference.
   * Idempotent; concurrent calls for one image may share the work.
   * Throws ImageNotFound (NovaError) when the image does not exist; other
   * failures as NovaError/HttpError with a cause.
   */
  ensureImage(ctx: ImageResolverContext, image: ImageMeta): Promise<ResolvedImage>;
}

/**
 * Resolver for tests, benches and labs: the image's `name` (or
 * `properties.docker_image`) is taken as a local docker reference that must
 * already exist. Never pulls.
 */
export class LocalImageResolver implements ImageResolver {
  constructor(private readonly docker: Pick<DockerClient, 'inspectImage'>) {}

  async ensureImage(_ctx: ImageResolverContext, image: ImageMeta): Promise<ResolvedImage> {
    const prop = image.properties['docker_image'];
    const ref = typeof prop === 'string' && prop ? prop : image.name;
    if (!ref) throw imageNotFound(image.id);
    const found = await this.docker.inspectImage(ref);
    if (!found) throw imageNotFound(image.id);
    return { dockerRef: ref };
  }
}
