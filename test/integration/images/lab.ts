/**
 * Helpers for the image integration tests against the real lab (all on
 * 127.0.0.1): Keystone, Glance, the registry on :5042 and dockerd.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { DockerClient } from '../../../src/clients/docker/index.js';
import { GlanceClient, type GlanceImage, type ImageDownload } from '../../../src/clients/glance/index.js';
import type { CallContext } from '../../../src/clients/http.js';
import { KeystoneClient } from '../../../src/clients/keystone/index.js';
import { labServiceKeystone } from '../../support/lab-env.js';
import { RegistryClient } from '../../../src/clients/registry/index.js';
import type { ImageGlance } from '../../../src/virt/docker/images.js';

const run = promisify(execFile);
const ENV = { ...process.env, PATH: '/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

export const REGISTRY = '127.0.0.1:5042';

export function keystone(): KeystoneClient {
  return labServiceKeystone('http://127.0.0.1:5000/v3');
}

export function adminKeystone(): KeystoneClient {
  return new KeystoneClient({
    authUrl: 'http://127.0.0.1:5000/v3',
    username: 'admin',
    password: 'labadmin',
    projectName: 'admin',
    userDomainName: 'Default',
    projectDomainName: 'Default',
  });
}

export function docker(): DockerClient {
  return new DockerClient({ socketPath: '/var/run/docker.sock' });
}

export function registry(): RegistryClient {
  return new RegistryClient({ url: REGISTRY });
}

export async function sh(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await run(cmd, args, { env: ENV, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

export function unique(prefix = 'nd-it'): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** A Glance client that counts what the image service asks of it. */
export class CountingGlance implements ImageGlance {
  shows = 0;
  downloads = 0;
  constructor(readonly inner: GlanceClient) {}
  showImage(ctx: CallContext | undefined, id: string): Promise<GlanceImage> {
    this.shows++;
    return this.inner.showImage(ctx, id);
  }
  downloadImage(ctx: CallContext | undefined, id: string, opts?: { signal?: AbortSignal }): Promise<ImageDownload> {
    this.downloads++;
    return this.inner.downloadImage(ctx, id, opts);
  }
}

/** Tracks what a test created, and removes it. */
export class Lab {
  readonly ks = keystone();
  readonly glance = new GlanceClient({ keystone: this.ks });
  readonly docker = docker();
  readonly tmp: Promise<string> = mkdtemp(join(tmpdir(), 'nd-images-'));
  readonly glanceImages: string[] = [];
  readonly dockerRefs: string[] = [];
  readonly registryRefs: { repo: string; tag: string }[] = [];

  /**
   * A new docker image (busybox + a unique label; with `layerBytes`, also a
   * layer of its own holding /<name>.bin of random data), saved to a tarball,
   * then removed locally.
   */
  async uniqueImageTar(
    opts: { layerBytes?: number } = {},
  ): Promise<{ file: string; imageId: string; tag: string; name: string }> {
    const name = unique('nd-it-src');
    const tag = `${name}:src`;
    const cid = await sh('docker', ['create', 'busybox:latest']);
    try {
      if (opts.layerBytes) {
        const data = await this.writeTmp(`${name}.bin`, randomBytes(opts.layerBytes));
        await sh('docker', ['cp', data, `${cid}:/${name}.bin`]);
      }
      await sh('docker', ['commit', '--change', `LABEL nd.test=${name}`, cid, tag]);
    } finally {
      await sh('docker', ['rm', cid]);
    }
    const imageId = await sh('docker', ['image', 'inspect', '--format', '{{.Id}}', tag]);
    const file = join(await this.tmp, `${name}.tar`);
    await sh('docker', ['save', '-o', file, tag]);
    await sh('docker', ['rmi', tag]);
    return { file, imageId, tag, name };
  }

  async writeTmp(name: string, data: Buffer): Promise<string> {
    const file = join(await this.tmp, name);
    await writeFile(file, data);
    return file;
  }

  /** Creates a Glance image (uploads `file` when given) under a unique name. */
  async glanceImage(
    opts: { file?: string; containerFormat?: string; name?: string; properties?: Record<string, string> } = {},
  ): Promise<GlanceImage> {
    const rec = await this.glance.createImage(undefined, {
      name: opts.name ?? unique('nd-it-glance'),
      container_format: opts.containerFormat ?? 'docker',
      disk_format: 'raw',
      ...(opts.properties ? { properties: opts.properties } : {}),
    });
    this.glanceImages.push(rec.id);
    if (opts.file) {
      const { size } = await stat(opts.file);
      await this.glance.uploadImage(undefined, rec.id, createReadStream(opts.file), { size });
    }
    return this.glance.showImage(undefined, rec.id);
  }

  async cleanup(): Promise<void> {
    for (const id of this.glanceImages.splice(0)) {
      await this.glance.deleteImage(undefined, id).catch(() => undefined);
      // Whatever a test did not expect to be loaded, too.
      const cached = await this.docker.listImages({ filters: { reference: [`nova-glance/${id}`] } });
      for (const img of cached) this.dockerRefs.push(...(img.RepoTags ?? []));
    }
    for (const ref of this.dockerRefs.splice(0)) await this.docker.removeImage(ref).catch(() => undefined);
    const reg = registry();
    for (const { repo, tag } of this.registryRefs.splice(0)) {
      const digest = await reg.manifestDigest(repo, tag).catch(() => undefined);
      if (digest) await reg.deleteManifest(repo, digest).catch(() => undefined);
    }
  }

  async dispose(): Promise<void> {
    await this.cleanup();
    await rm(await this.tmp, { recursive: true, force: true });
  }
}

/** Offsets of the entries of a (plain ustar) tar archive. */
export function tarEntries(buf: Buffer): { name: string; offset: number; size: number }[] {
  const out: { name: string; offset: number; size: number }[] = [];
  let pos = 0;
  while (pos + 512 <= buf.length) {
    const h = buf.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break;
    const nul = h.indexOf(0);
    const name = h.toString('utf8', 0, Math.min(nul === -1 ? 100 : nul, 100));
    const size = parseInt(h.toString('latin1', 124, 136).replace(/\0/g, '').trim() || '0', 8);
    out.push({ name, offset: pos + 512, size });
    pos += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

export function bufferStream(b: Buffer): Readable {
  return Readable.from([b]);
}
