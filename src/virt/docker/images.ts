/**
 * The image pipeline: makes a Nova (Glance) image present in the local dockerd
 * and returns a reference to run.
 *
 * Glance path (container_format=docker, the data is a `docker save` tarball):
 *   GET /v2/images/{id}/file ─► HashVerifier (os_hash / md5, size)
 *     ─► DockerArchiveFilter (tar walk, manifest RepoTags stripped)
 *     ─► POST /images/load ─► tag `nova-glance/<id>:<algo>-<hash prefix>`
 * streamed end to end: no temp file, no tarball in memory. A hash mismatch
 * fails the stream before its last chunk reaches docker (so the load cannot
 * complete), and whatever a failed load did report is removed again. The tag
 * is the cache: the next call for the same Glance id and hash finds it with
 * one inspect and no Glance traffic.
 *
 * Registry path (image property `docker_image_ref`, or a Glance name shaped
 * like `repo:tag`): pull `<registry>/<repo>:<tag>` according to the pull
 * policy, falling back to the Glance data when the pull fails and the image
 * has data.
 *
 * Concurrent calls for one image share one download/load, or one pull.
 */
import type { Readable } from 'node:stream';
import { AgentError, NovaError, errorMessage } from '../../common/errors.js';
import {
  HashMismatchError,
  HashVerifier,
  SizeMismatchError,
  nodeHashName,
  type ExpectedDigest,
} from '../../common/hash-verify.js';
import { nullLogger, type Logger } from '../../common/log.js';
import { SingleFlight } from '../../common/single-flight.js';
import { HttpError, NotFoundError, UnavailableError } from '../../clients/errors.js';
import { ImageDataMissingError, type GlanceImage, type ImageDownload } from '../../clients/glance/client.js';
import type { CallContext } from '../../clients/http.js';
import { parseRegistryUrl, type RegistryCredentials } from '../../clients/registry/client.js';
import { imageNotFound } from '../errors.js';
import type { ImageMeta } from '../types.js';
import { ArchiveError, DockerArchiveFilter } from './image-archive.js';
import type { ImageResolver, ImageResolverContext, ResolvedImage } from './image-resolver.js';

/** The Docker Engine calls the image pipeline makes (DockerClient fits). */
export interface ImageDocker {
  inspectImage(ref: string): Promise<{ Id: string; RepoTags?: string[] | null } | undefined>;
  loadImage(tar: Readable, opts?: { signal?: AbortSignal }): Promise<string[]>;
  pullImage(ref: string, auth?: { username: string; password: string; serveraddress: string }): Promise<void>;
  tagImage(source: string, repo: string, tag: string): Promise<void>;
  removeImage(ref: string, opts?: { force?: boolean }): Promise<unknown>;
}

/** The Glance calls the image pipeline makes (GlanceClient fits). */
export interface ImageGlance {
  showImage(ctx: CallContext | undefined, id: string): Promise<GlanceImage>;
  downloadImage(ctx: CallContext | undefined, id: string, opts?: { signal?: AbortSignal }): Promise<ImageDownload>;
}

export type PullPolicy = 'if-not-present' | 'always' | 'never';

export interface ImageServiceOptions {
  /**
   * Registry (`host:port` or URL) that registry references are pulled from.
   * Default `127.0.0.1:5042`; null disables the registry path.
   */
  registryUrl?: string | null | undefined;
  /** Credentials for that registry (sent to dockerd as X-Registry-Auth, never elsewhere). */
  registryAuth?: RegistryCredentials | undefined;
  /** Default if-not-present. */
  pullPolicy?: PullPolicy | undefined;
  /** Take a Glance name shaped like `repo:tag` as a registry reference. Default true. */
  nameAsRegistryRef?: boolean | undefined;
  /** Repository namespace of the cache tags. Default `nova-glance`. */
  cacheRepo?: string | undefined;
}

/**
 * Told how each image request was served (metrics): `hit` when the image was
 * already local, `miss` when it was downloaded or pulled (once per fetch:
 * callers that joined a fetch in flight are not counted). Must not throw.
 */
export interface ImageCacheObserver {
  lookup(source: 'glance' | 'registry', result: 'hit' | 'miss'): void;
}

export interface ImageServiceDeps {
  docker: ImageDocker;
  glance: ImageGlance;
  logger?: Logger | undefined;
  observer?: ImageCacheObserver | undefined;
}

export const DEFAULT_REGISTRY = '127.0.0.1:5042';
export const DEFAULT_CACHE_REPO = 'nova-glance';
const HASH_PREFIX_LEN = 24;

/** NovaError ImageUnacceptable: "Image %(image_id)s is unacceptable: %(reason)s". */
export function imageUnacceptable(imageId: string, reason: string, cause?: unknown): NovaError {
  return new NovaError(
    'ImageUnacceptable',
    `Image ${imageId} is unacceptable: ${reason}`,
    { image_id: imageId, reason },
    { ...(cause === undefined ? {} : { cause }), fields: { image_id: imageId } },
  );
}

interface DigestSource {
  checksum?: string | null | undefined;
  os_hash_algo?: string | null | undefined;
  os_hash_value?: string | null | undefined;
}

/** The digest to verify: os_hash when Node supports its algorithm, else the md5 checksum. */
export function expectedDigest(src: DigestSource): ExpectedDigest | undefined {
  if (src.os_hash_algo && src.os_hash_value && nodeHashName(src.os_hash_algo)) {
    return { algo: src.os_hash_algo.toLowerCase(), value: src.os_hash_value.toLowerCase() };
  }
  if (src.checksum) return { algo: 'md5', value: src.checksum.toLowerCase() };
  return undefined;
}

const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REF_RE = new RegExp(
  `^(?:(?<domain>(?:[a-zA-Z0-9-]+(?:\\.[a-zA-Z0-9-]+)*|\\[[0-9a-fA-F:]+\\])(?::[0-9]+)?)/)?` +
    `(?<path>${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)` +
    `(?::(?<tag>[\\w][\\w.-]{0,127}))?(?:@(?<digest>[a-z0-9]+:[a-f0-9]{32,}))?$`,
);

export interface ParsedRef {
  domain: string | undefined;
  path: string;
  tag: string | undefined;
  digest: string | undefined;
}

/** Parses a docker reference; the first component is a registry when it has a `.`, a `:` or is localhost. */
export function parseDockerRef(ref: string): ParsedRef | undefined {
  const m = REF_RE.exec(ref);
  if (!m?.groups) return undefined;
  let domain = m.groups.domain;
  let path = m.groups.path ?? '';
  if (domain !== undefined && !/[.:]|^localhost$|^\[/.test(domain)) {
    // `library/busybox`: the first component was a path component after all.
    if (!new RegExp(`^${PATH_COMPONENT}$`).test(domain)) return undefined;
    path = `${domain}/${path}`;
    domain = undefined;
  }
  return { domain, path, tag: m.groups.tag, digest: m.groups.digest };
}

interface Failure {
  err: unknown;
  origin: 'download' | 'verify' | 'archive' | 'load';
}

export class ImageService implements ImageResolver {
  readonly #docker: ImageDocker;
  readonly #glance: ImageGlance;
  readonly #log: Logger;
  readonly #observer: ImageCacheObserver | undefined;
  readonly #registryHost: string | undefined;
  readonly #registryAuth: RegistryCredentials | undefined;
  readonly #pullPolicy: PullPolicy;
  readonly #nameAsRef: boolean;
  readonly #cacheRepo: string;
  readonly #glanceFlight = new SingleFlight<string, ResolvedImage>();
  readonly #pullFlight = new SingleFlight<string, void>();

  constructor(deps: ImageServiceDeps, opts: ImageServiceOptions = {}) {
    this.#docker = deps.docker;
    this.#glance = deps.glance;
    this.#observer = deps.observer;
    this.#log = (deps.logger ?? nullLogger()).child({ logger: 'nova_docker.virt.docker.images' });
    const reg = opts.registryUrl === undefined ? DEFAULT_REGISTRY : opts.registryUrl;
    this.#registryHost = reg ? parseRegistryUrl(reg).host : undefined;
    this.#registryAuth = opts.registryAuth;
    this.#pullPolicy = opts.pullPolicy ?? 'if-not-present';
    this.#nameAsRef = opts.nameAsRegistryRef ?? true;
    this.#cacheRepo = opts.cacheRepo ?? DEFAULT_CACHE_REPO;
  }

  /** The cache reference of a Glance image with this digest. */
  cacheRef(imageId: string, digest: ExpectedDigest): { repo: string; tag: string; ref: string } {
    const repo = `${this.#cacheRepo}/${imageId.toLowerCase()}`;
    const tag = `${digest.algo.toLowerCase().replace(/[^a-z0-9_]/g, '')}-${digest.value.slice(0, HASH_PREFIX_LEN)}`;
    return { repo, tag, ref: `${repo}:${tag}` };
  }

  /** The registry reference to pull for `image`, if it names one. */
  registryRef(image: ImageMeta): string | undefined {
    const prop = image.properties.docker_image_ref;
    if (typeof prop === 'string' && prop.trim() !== '') {
      const p = parseDockerRef(prop.trim());
      if (!p) throw imageUnacceptable(image.id, `docker_image_ref ${JSON.stringify(prop)} is not a docker reference`);
      if (!this.#registryHost) {
        throw imageUnacceptable(image.id, `docker_image_ref is set but no registry is configured`);
      }
      if (p.domain !== undefined && p.domain !== this.#registryHost) {
        throw imageUnacceptable(
          image.id,
          `docker_image_ref names registry ${p.domain}; only ${this.#registryHost} is allowed`,
        );
      }
      return this.#fullRef(p);
    }
    if (this.#nameAsRef && this.#registryHost && image.name) {
      const p = parseDockerRef(image.name);
      if (p && p.domain === undefined && (p.tag !== undefined || p.digest !== undefined)) return this.#fullRef(p);
    }
    return undefined;
  }

  async ensureImage(ctx: ImageResolverContext, image: ImageMeta): Promise<ResolvedImage> {
    if (!/^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/.test(image.id) || image.id.length > 128) {
      throw imageNotFound(image.id);
    }
    // The driver's context may also carry Nova's global request id (DriverContext does).
    const global = (ctx as { globalRequestId?: unknown }).globalRequestId;
    const callCtx: CallContext = {
      authToken: ctx.authToken,
      requestId: ctx.requestId,
      ...(typeof global === 'string' ? { globalRequestId: global } : {}),
    };
    let ref: string | undefined;
    try {
      ref = this.registryRef(image);
    } catch (err) {
      // A registry reference we may not use: the Glance data may still do.
      if (!(await this.#hasData(callCtx, image))) throw err;
      this.#log.warn(`image ${image.id}: ${errorMessage(err)}; using the Glance data`, { image_id: image.id });
    }
    if (ref !== undefined) return this.#fromRegistry(callCtx, image, ref);
    return this.#fromGlance(callCtx, image);
  }

  // ---- registry -----------------------------------------------------------

  #fullRef(p: ParsedRef): string {
    // A digest pins the content; a tag next to it would only be decoration.
    const tail = p.digest !== undefined ? `@${p.digest}` : `:${p.tag ?? 'latest'}`;
    return `${this.#registryHost}/${p.path}${tail}`;
  }

  async #fromRegistry(ctx: CallContext, image: ImageMeta, ref: string): Promise<ResolvedImage> {
    if (this.#pullPolicy !== 'always') {
      const local = await this.#docker.inspectImage(ref);
      if (local) {
        this.#observer?.lookup('registry', 'hit');
        return { dockerRef: ref };
      }
      if (this.#pullPolicy === 'never') {
        return this.#fallback(ctx, image, `${ref} is not present locally and the pull policy is never`);
      }
    }
    const auth = this.#registryAuth ? { ...this.#registryAuth, serveraddress: this.#registryHost ?? '' } : undefined;
    try {
      await this.#pullFlight.run(ref, async () => {
        const started = Date.now();
        this.#observer?.lookup('registry', 'miss');
        await this.#docker.pullImage(ref, auth);
        this.#log.info(`image ${image.id}: pulled ${ref} in ${((Date.now() - started) / 1000).toFixed(2)} s`, {
          image_id: image.id,
        });
      });
      if (!(await this.#docker.inspectImage(ref))) throw new AgentError(`${ref} is not present after the pull`);
      return { dockerRef: ref };
    } catch (err) {
      if (err instanceof HttpError && err.service === 'docker' && isTransport(err)) throw err;
      return this.#fallback(ctx, image, `pull of ${ref} failed: ${engineMessage(err)}`, err);
    }
  }

  /**
   * The registry image is not to be had here (the pull failed, or the pull policy forbids it): the Glance
   * data when there is some, else InstanceDeployFailure, not ImageUnacceptable: the image may well be fine
   * and pullable on another host (its registry, its network), so the build is rescheduled, as Nova does
   * with an image download that fails.
   */
  async #fallback(ctx: CallContext, image: ImageMeta, reason: string, cause?: unknown): Promise<ResolvedImage> {
    if (!(await this.#hasData(ctx, image))) {
      throw new NovaError(
        'InstanceDeployFailure',
        `Failed to deploy instance: image ${image.id} is not available on this host: ${reason}`,
        { reason: `image ${image.id} is not available on this host: ${reason}` },
        { ...(cause === undefined ? {} : { cause }), fields: { image_id: image.id } },
      );
    }
    this.#log.warn(`image ${image.id}: ${reason}; using the Glance data`, { image_id: image.id });
    return this.#fromGlance(ctx, image);
  }

  /** Whether the Glance image has data to fall back on. */
  async #hasData(ctx: CallContext, image: ImageMeta): Promise<boolean> {
    if (typeof image.size === 'number') return image.size > 0;
    const rec = await this.#show(ctx, image.id);
    return rec.status === 'active' && typeof rec.size === 'number' && rec.size > 0;
  }

  // ---- glance -------------------------------------------------------------

  async #show(ctx: CallContext, id: string): Promise<GlanceImage> {
    try {
      return await this.#glance.showImage(ctx, id);
    } catch (err) {
      if (err instanceof NotFoundError) throw imageNotFound(id, err);
      throw err;
    }
  }

  async #cached(id: string, digest: ExpectedDigest): Promise<ResolvedImage | undefined> {
    const { ref } = this.cacheRef(id, digest);
    if (!(await this.#docker.inspectImage(ref))) return undefined;
    this.#observer?.lookup('glance', 'hit');
    return { dockerRef: ref };
  }

  async #fromGlance(ctx: CallContext, image: ImageMeta): Promise<ResolvedImage> {
    const id = image.id;
    if (image.container_format && image.container_format !== 'docker') throw badFormat(id, image.container_format);
    const metaDigest = expectedDigest(image);
    if (metaDigest) {
      const hit = await this.#cached(id, metaDigest);
      if (hit) return hit;
    }
    return this.#glanceFlight.run(`${id}|${metaDigest?.algo ?? ''}|${metaDigest?.value ?? ''}`, () =>
      this.#fetch(ctx, image, metaDigest),
    );
  }

  async #fetch(ctx: CallContext, image: ImageMeta, metaDigest: ExpectedDigest | undefined): Promise<ResolvedImage> {
    const id = image.id;
    const rec = await this.#show(ctx, id);
    const format = image.container_format ?? rec.container_format ?? undefined;
    if (format !== 'docker') throw badFormat(id, format);
    if (rec.status !== 'active') throw imageUnacceptable(id, `its status is ${rec.status ?? 'unknown'}, not active`);
    const digest = metaDigest ?? expectedDigest(rec);
    if (!digest) throw imageUnacceptable(id, 'Glance has no checksum for it, so its data cannot be verified');
    // Another flight (or process) may have loaded it meanwhile.
    const hit = await this.#cached(id, digest);
    if (hit) return hit;
    const size = typeof image.size === 'number' ? image.size : typeof rec.size === 'number' ? rec.size : undefined;
    return this.#downloadAndLoad(ctx, id, digest, size);
  }

  async #downloadAndLoad(
    ctx: CallContext,
    id: string,
    digest: ExpectedDigest,
    size: number | undefined,
  ): Promise<ResolvedImage> {
    const started = Date.now();
    this.#observer?.lookup('glance', 'miss');
    const ac = new AbortController();
    let dl: ImageDownload;
    try {
      dl = await this.#glance.downloadImage(ctx, id, { signal: ac.signal });
    } catch (err) {
      if (err instanceof NotFoundError) throw imageNotFound(id, err);
      if (err instanceof ImageDataMissingError) throw imageUnacceptable(id, 'it has no data', err);
      throw err;
    }
    const verifier = new HashVerifier(digest, { expectedSize: size ?? dl.contentLength });
    const filter = new DockerArchiveFilter();
    const source = dl.stream;
    let failure: Failure | undefined;
    const fail = (err: unknown, origin: Failure['origin']): void => {
      if (failure) return;
      failure = { err, origin };
      const reason = err instanceof Error ? err : new Error(String(err));
      ac.abort(reason);
      source.destroy();
      verifier.destroy();
      filter.destroy(reason);
    };
    source.on('error', (e) => fail(e, 'download'));
    verifier.on('error', (e) => fail(e, 'verify'));
    filter.on('error', (e) => fail(e, 'archive'));
    source.pipe(verifier).pipe(filter);

    let loaded: string[] = [];
    try {
      loaded = await this.#docker.loadImage(filter, { signal: ac.signal });
    } catch (err) {
      fail(err, 'load');
    }
    const manifest = filter.manifest;
    if (failure || !verifier.verified || !manifest) {
      await this.#discard(id, loaded);
      throw this.#mapFailure(id, failure ?? { err: new AgentError('the load ended early'), origin: 'load' }, verifier);
    }
    const imageId = loaded.find((r) => r.startsWith('sha256:')) ?? manifest.imageId ?? loaded[0];
    const inspected = imageId ? await this.#docker.inspectImage(imageId) : undefined;
    if (!inspected) {
      throw imageUnacceptable(id, `docker load reported ${loaded.join(', ') || 'nothing'}, which is not present`);
    }
    if (manifest.imageId && inspected.Id !== manifest.imageId) {
      await this.#discard(id, loaded);
      throw imageUnacceptable(id, `docker loaded ${inspected.Id}, but the archive holds ${manifest.imageId}`);
    }
    const { repo, tag, ref } = this.cacheRef(id, digest);
    await this.#docker.tagImage(inspected.Id, repo, tag);
    const secs = (Date.now() - started) / 1000;
    const mb = verifier.bytes / 1e6;
    this.#log.info(
      `image ${id}: loaded ${inspected.Id.slice(0, 19)} from Glance as ${ref} ` +
        `(${mb.toFixed(1)} MB in ${secs.toFixed(2)} s, ${(mb / Math.max(secs, 0.001)).toFixed(1)} MB/s)`,
      { image_id: id },
    );
    return { dockerRef: ref };
  }

  /** Removes images a failed load left behind, unless something else tags them. */
  async #discard(id: string, loaded: string[]): Promise<void> {
    for (const ref of loaded) {
      try {
        const img = await this.#docker.inspectImage(ref);
        if (!img) continue;
        const tags = (img.RepoTags ?? []).filter((t) => t !== '<none>:<none>');
        // Only IDs come back (the archive's tags were stripped); a tagged image pre-existed.
        if (tags.length > 0 && ref.startsWith('sha256:')) continue;
        await this.#docker.removeImage(ref, { force: false });
        this.#log.warn(`image ${id}: removed ${ref}, loaded by a failed load`, { image_id: id });
      } catch (err) {
        this.#log.warn(`image ${id}: could not remove ${ref} after a failed load: ${errorMessage(err)}`, {
          image_id: id,
        });
      }
    }
  }

  #mapFailure(id: string, f: Failure, verifier: HashVerifier): Error {
    const { err, origin } = f;
    if (err instanceof HashMismatchError) return imageUnacceptable(id, `checksum mismatch: ${err.message}`, err);
    if (err instanceof SizeMismatchError) {
      if (err.actualSize < err.expectedSize) {
        return new UnavailableError(`glance GET /v2/images/${id}/file: download truncated: ${err.message}`, {
          service: 'glance',
          method: 'GET',
          path: `/v2/images/${id}/file`,
          fields: { image_id: id },
          cause: err,
        });
      }
      return imageUnacceptable(id, `size mismatch: ${err.message}`, err);
    }
    if (err instanceof ArchiveError) return imageUnacceptable(id, err.message, err);
    if (origin === 'download') {
      return new UnavailableError(
        `glance GET /v2/images/${id}/file: download broke off after ${verifier.bytes} bytes: ${errorMessage(err)}`,
        {
          service: 'glance',
          method: 'GET',
          path: `/v2/images/${id}/file`,
          fields: { image_id: id },
          cause: err,
        },
      );
    }
    if (err instanceof HttpError && err.service === 'docker' && isTransport(err)) return err;
    return imageUnacceptable(id, `docker load failed: ${engineMessage(err)}`, err);
  }
}

function badFormat(id: string, format: string | null | undefined): NovaError {
  return imageUnacceptable(
    id,
    `container_format is ${format ?? 'unset'}; this driver runs container_format=docker images ` +
      '(a `docker save` archive) or images with a docker_image_ref property',
  );
}

/** The Engine did not answer (socket, connection, 5xx), as opposed to refusing the content. */
function isTransport(err: HttpError): boolean {
  return (err.status !== undefined && err.status >= 500) || (err.status === undefined && err.cause !== undefined);
}

function engineMessage(err: unknown): string {
  if (err instanceof HttpError && err.body) return err.body;
  return errorMessage(err);
}
