/**
 * Registry → Glance: registers every `repo:tag` of the docker registry as a
 * Glance image the Docker driver boots by pulling from the registry.
 *
 * Each image is named `repo:tag`, has container_format=docker,
 * disk_format=raw, and carries
 *   docker_image_ref    = <registry>/<repo>:<tag>@<digest>  (what the agent pulls, see images.ts)
 *   docker_image_digest = <digest>                          (the manifest digest at the last sync)
 * Its data is empty (a zero-byte upload): Nova boots only `active` images,
 * and an upload is the one way Glance's default configuration makes an image
 * active; with size 0 the agent never downloads from Glance (docs/images.md).
 *
 * One pass: list the registry, list Glance, then per tag
 *   created           no Glance image for it yet
 *   unchanged         its image has the same digest
 *   updated           the digest moved: the image's ref and digest are replaced in place
 *   removed-upstream  a synced image whose tag is gone from the registry: reported, never deleted
 *   skipped           a Glance image of that name exists that this sync did not create
 *   failed            the registry or Glance refused; the other tags go on
 * A repository whose tags could not be listed reports `failed`, and its
 * images are never taken for removed.
 */
import { Readable } from 'node:stream';
import { errorMessage } from '../../common/errors.js';
import { nullLogger, type Logger } from '../../common/log.js';
import type { GlanceImage, ImageCreate, ImageListQuery, ImagePatchOp } from '../../clients/glance/client.js';
import type { ManifestInfo } from '../../clients/registry/client.js';
import { parseDockerRef } from './images.js';

export const REF_PROPERTY = 'docker_image_ref';
export const DIGEST_PROPERTY = 'docker_image_digest';
/** Glance's limit on names and property values. */
const GLANCE_STRING_MAX = 255;

/** The registry calls a sync makes (RegistryClient fits). */
export interface SyncRegistry {
  /** `host[:port]` as image references spell it. */
  readonly host: string;
  listRepositories(): Promise<string[]>;
  listTags(repo: string): Promise<string[]>;
  manifestInfo(repo: string, reference: string): Promise<ManifestInfo | undefined>;
}

/** The Glance calls a sync makes (GlanceClient fits). */
export interface SyncGlance {
  listImages(ctx: undefined, q?: ImageListQuery): Promise<GlanceImage[]>;
  createImage(ctx: undefined, req: ImageCreate): Promise<GlanceImage>;
  uploadImage(ctx: undefined, id: string, data: Readable, opts?: { size?: number }): Promise<void>;
  updateImage(ctx: undefined, id: string, ops: readonly ImagePatchOp[]): Promise<GlanceImage>;
}

export type SyncAction = 'created' | 'unchanged' | 'updated' | 'removed-upstream' | 'skipped' | 'failed';
export const SYNC_ACTIONS: readonly SyncAction[] = [
  'created',
  'unchanged',
  'updated',
  'removed-upstream',
  'skipped',
  'failed',
];

export interface SyncReport {
  action: SyncAction;
  /** `repo:tag`, or `repo` for a repository-wide failure. */
  name: string;
  imageId?: string | undefined;
  digest?: string | undefined;
  previousDigest?: string | undefined;
  /** Why (skipped, failed), or a note. */
  detail?: string | undefined;
}

export interface SyncOptions {
  /** Repository patterns (`*` matches any run of characters, `/` included). Empty: every repository. */
  repositories?: readonly string[] | undefined;
  /** Visibility of created images. Default public, so every project can boot them. */
  visibility?: ImageCreate['visibility'];
  /** Checked between steps: an aborted pass stops after the step in progress. */
  signal?: AbortSignal | undefined;
}

export interface SyncDeps {
  registry: SyncRegistry;
  glance: SyncGlance;
  logger?: Logger | undefined;
}

/** A `*` glob as an anchored regular expression. */
export function repoMatcher(patterns: readonly string[]): (repo: string) => boolean {
  if (patterns.length === 0) return () => true;
  const res = patterns.map(
    (p) =>
      new RegExp(
        `^${p
          .split('*')
          .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*')}$`,
      ),
  );
  return (repo) => res.some((re) => re.test(repo));
}

/** The registry reference a synced image carries: pinned to the digest, the tag kept for people. */
export function syncedRef(host: string, repo: string, tag: string, digest: string): string {
  return `${host}/${repo}:${tag}@${digest}`;
}

interface Synced {
  image: GlanceImage;
  repo: string;
  tag: string;
  digest: string | undefined;
}

/** The `repo:tag` a Glance image was synced from (registry `host`), or undefined when it is not a synced image. */
export function syncedKey(img: GlanceImage, host: string): { repo: string; tag: string } | undefined {
  const ref = img[REF_PROPERTY];
  if (typeof ref !== 'string' || typeof img[DIGEST_PROPERTY] !== 'string') return undefined;
  const p = parseDockerRef(ref);
  if (!p || p.domain !== host || p.tag === undefined) return undefined;
  return { repo: p.path, tag: p.tag };
}

function short(digest: string | undefined): string {
  if (!digest) return '-';
  const [algo, hex] = digest.split(':');
  return hex ? `${algo}:${hex.slice(0, 12)}` : digest;
}

/** One line per report, as the CLI prints it. */
export function formatReport(r: SyncReport): string {
  const parts = [r.action.padEnd(16), r.name];
  if (r.action === 'updated') parts.push(`${short(r.previousDigest)} -> ${short(r.digest)}`);
  else if (r.digest) parts.push(short(r.digest));
  if (r.imageId) parts.push(`image ${r.imageId}`);
  if (r.detail) parts.push(`(${r.detail})`);
  return parts.join(' ');
}

/** `registry-sync: 1 created, 2 unchanged, …` */
export function formatSummary(reports: readonly SyncReport[]): string {
  const counts = SYNC_ACTIONS.map((a) => `${reports.filter((r) => r.action === a).length} ${a}`);
  return `registry-sync: ${counts.join(', ')}`;
}

class Aborted extends Error {}

/**
 * One pass. Throws only when the registry catalog or the Glance image list
 * cannot be read (nothing can be decided then); everything else is a report.
 */
export async function syncRegistry(deps: SyncDeps, opts: SyncOptions = {}): Promise<SyncReport[]> {
  const { registry, glance } = deps;
  const log = (deps.logger ?? nullLogger()).child({ logger: 'nova_docker.registry_sync' });
  const wanted = repoMatcher(opts.repositories ?? []);
  const checkAbort = (): void => {
    if (opts.signal?.aborted) throw new Aborted('aborted');
  };
  const reports: SyncReport[] = [];
  const report = (r: SyncReport): void => {
    reports.push(r);
    const line = formatReport(r);
    if (r.action === 'failed') log.error(line);
    else if (r.action === 'removed-upstream' || r.action === 'skipped') log.warn(line);
    else if (r.action === 'unchanged') log.debug(line);
    else log.info(line);
  };

  // ---- the registry: repo -> tag -> manifest digest ----
  const repos = (await registry.listRepositories()).filter(wanted).sort();
  /** Repositories whose tag list is known; only their images may be reported removed. */
  const listed = new Set<string>();
  const upstream = new Map<string, { repo: string; tag: string; manifest: ManifestInfo }>();
  try {
    for (const repo of repos) {
      checkAbort();
      let tags: string[];
      try {
        tags = (await registry.listTags(repo)).sort();
      } catch (err) {
        report({ action: 'failed', name: repo, detail: `listing its tags: ${errorMessage(err)}` });
        continue;
      }
      let complete = true;
      for (const tag of tags) {
        checkAbort();
        try {
          const manifest = await registry.manifestInfo(repo, tag);
          // listed but without a manifest: deleted between the two calls
          if (manifest) upstream.set(`${repo}:${tag}`, { repo, tag, manifest });
        } catch (err) {
          complete = false;
          report({ action: 'failed', name: `${repo}:${tag}`, detail: `reading its manifest: ${errorMessage(err)}` });
        }
      }
      if (complete) listed.add(repo);
    }
  } catch (err) {
    if (err instanceof Aborted) return reports;
    throw err;
  }
  if (opts.signal?.aborted) return reports;

  // ---- Glance: the synced images of this registry, and every name in use ----
  const all = await glance.listImages(undefined);
  const synced = new Map<string, Synced>();
  const byName = new Map<string, GlanceImage[]>();
  for (const img of all) {
    if (typeof img.name === 'string') byName.set(img.name, [...(byName.get(img.name) ?? []), img]);
    const key = syncedKey(img, registry.host);
    if (!key || !wanted(key.repo)) continue;
    const k = `${key.repo}:${key.tag}`;
    const prev = synced.get(k);
    // two records for one tag (two syncs raced): keep the oldest, the other is someone's to clean up
    if (prev && createdAt(prev.image) <= createdAt(img)) {
      log.warn(`${k}: Glance images ${prev.image.id} and ${img.id} were both synced from it; using ${prev.image.id}`);
      continue;
    }
    const digest = img[DIGEST_PROPERTY];
    synced.set(k, { image: img, ...key, digest: typeof digest === 'string' ? digest : undefined });
  }

  // ---- per tag ----
  for (const [name, up] of upstream) {
    if (opts.signal?.aborted) return reports;
    const { digest } = up.manifest;
    const ref = syncedRef(registry.host, up.repo, up.tag, digest);
    const have = synced.get(name);
    try {
      if (ref.length > GLANCE_STRING_MAX || name.length > GLANCE_STRING_MAX) {
        report({ action: 'skipped', name, digest, detail: `longer than Glance's ${GLANCE_STRING_MAX} characters` });
        continue;
      }
      if (!have) {
        const other = (byName.get(name) ?? [])[0];
        if (other) {
          report({
            action: 'skipped',
            name,
            digest,
            imageId: other.id,
            detail: 'a Glance image of that name exists that registry-sync did not create',
          });
          continue;
        }
        const img = await glance.createImage(undefined, {
          name,
          container_format: 'docker',
          disk_format: 'raw',
          visibility: opts.visibility ?? 'public',
          properties: { [REF_PROPERTY]: ref, [DIGEST_PROPERTY]: digest },
        });
        await activate(glance, img.id);
        report({ action: 'created', name, digest, imageId: img.id });
        continue;
      }
      const id = have.image.id;
      if (have.digest === digest && have.image[REF_PROPERTY] === ref) {
        if (have.image.status === 'queued') {
          // a create whose empty upload did not happen (an earlier pass died in between)
          await activate(glance, id);
          report({ action: 'created', name, digest, imageId: id, detail: 'activated an earlier queued record' });
        } else {
          report({ action: 'unchanged', name, digest, imageId: id });
        }
        continue;
      }
      // The tag moved: the same image now stands for the new manifest (boots from now on pull it; running
      // instances keep what they run). In place, so the image id and name people use stay valid.
      await glance.updateImage(undefined, id, [
        { op: 'replace', path: `/${REF_PROPERTY}`, value: ref },
        { op: 'replace', path: `/${DIGEST_PROPERTY}`, value: digest },
      ]);
      if (have.image.status === 'queued') await activate(glance, id);
      report({ action: 'updated', name, digest, previousDigest: have.digest, imageId: id });
    } catch (err) {
      report({ action: 'failed', name, digest, imageId: have?.image.id, detail: errorMessage(err) });
    }
  }

  // ---- synced images whose tag is gone ----
  for (const [name, have] of [...synced].sort(([a], [b]) => a.localeCompare(b))) {
    if (upstream.has(name)) continue;
    // a repository we could not list may still have the tag
    if (repos.includes(have.repo) && !listed.has(have.repo)) continue;
    report({
      action: 'removed-upstream',
      name,
      digest: have.digest,
      imageId: have.image.id,
      detail: 'kept in Glance',
    });
  }
  return reports;
}

function createdAt(img: GlanceImage): string {
  return typeof img.created_at === 'string' ? img.created_at : '';
}

/** The zero-byte upload that turns a queued record active. */
async function activate(glance: SyncGlance, id: string): Promise<void> {
  await glance.uploadImage(undefined, id, Readable.from([]), { size: 0 });
}
