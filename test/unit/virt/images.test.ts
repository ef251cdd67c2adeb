import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import nock from 'nock';
import { HttpError, NotFoundError, UnavailableError, httpErrorFor } from '../../../src/clients/errors.js';
import { GlanceClient, ImageDataMissingError, type GlanceImage } from '../../../src/clients/glance/index.js';
import type { ImageDownload } from '../../../src/clients/glance/client.js';
import type { CallContext } from '../../../src/clients/http.js';
import {
  ImageService,
  expectedDigest,
  parseDockerRef,
  type ImageDocker,
  type ImageGlance,
  type ImageServiceOptions,
} from '../../../src/virt/docker/images.js';
import { imageMetaFromGlance } from '../../../src/virt/image-meta.js';
import type { ImageMeta } from '../../../src/virt/types.js';
import { CONFIG_HEX, dockerSaveTar, md5, sha512, untar } from './images-tar-fixture.js';
import { failure, novaError } from '../../support/nova-error.js';

const IMAGE_ID = `sha256:${CONFIG_HEX}`;
const ID = '6a0e7c2e-5b1f-4c55-9d7e-0123456789ab';

interface FakeImage {
  Id: string;
  RepoTags: string[];
}

class FakeDocker implements ImageDocker {
  images: FakeImage[] = [];
  loads = 0;
  pulls: string[] = [];
  removed: string[] = [];
  received: Buffer | undefined;
  loadError: Error | undefined;
  /** Report this id as loaded as soon as data arrives (a load that "succeeds" before the stream ends). */
  resolveEarly: string | undefined;
  pullable = new Set<string>();
  pullError: Error | undefined;
  pullDelayMs = 5;

  find(ref: string): FakeImage | undefined {
    return this.images.find((i) => i.Id === ref || i.RepoTags.includes(ref.includes(':') ? ref : `${ref}:latest`));
  }
  inspectImage(ref: string): Promise<FakeImage | undefined> {
    const i = this.find(ref);
    return Promise.resolve(i ? { ...i, RepoTags: [...i.RepoTags] } : undefined);
  }
  loadImage(tar: Readable, opts: { signal?: AbortSignal } = {}): Promise<string[]> {
    this.loads++;
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      opts.signal?.addEventListener('abort', () => reject(opts.signal?.reason as Error));
      tar.on('data', (c: Buffer) => {
        parts.push(c);
        if (this.resolveEarly) {
          this.images.push({ Id: this.resolveEarly, RepoTags: [] });
          resolve([this.resolveEarly]);
        }
      });
      tar.on('error', reject);
      tar.on('end', () => {
        this.received = Buffer.concat(parts);
        if (this.loadError) return reject(this.loadError);
        const manifest = JSON.parse(untar(this.received).get('manifest.json')!.toString()) as {
          RepoTags: string[];
        }[];
        const tags = manifest[0]!.RepoTags;
        for (const i of this.images) i.RepoTags = i.RepoTags.filter((t) => !tags.includes(t));
        if (!this.find(IMAGE_ID)) this.images.push({ Id: IMAGE_ID, RepoTags: [] });
        this.find(IMAGE_ID)!.RepoTags.push(...tags);
        resolve(tags.length ? tags : [IMAGE_ID]);
      });
    });
  }
  async pullImage(ref: string): Promise<void> {
    this.pulls.push(ref);
    await new Promise((r) => setTimeout(r, this.pullDelayMs));
    if (this.pullError) throw this.pullError;
    if (!this.pullable.has(ref)) {
      throw new NotFoundError(`docker POST /images/create: manifest unknown`, {
        service: 'docker',
        method: 'POST',
        path: '/images/create',
        body: 'manifest for x not found: manifest unknown',
      });
    }
    const existing = this.find(ref);
    if (!existing) this.images.push({ Id: `sha256:${'p'.repeat(64)}`, RepoTags: [ref] });
  }
  tagImage(source: string, repo: string, tag: string): Promise<void> {
    const img = this.find(source);
    if (!img) return Promise.reject(new Error(`no ${source}`));
    img.RepoTags.push(`${repo}:${tag}`);
    return Promise.resolve();
  }
  removeImage(ref: string): Promise<boolean> {
    this.removed.push(ref);
    this.images = this.images.filter((i) => i.Id !== ref);
    return Promise.resolve(true);
  }
}

interface StoredImage {
  record: GlanceImage;
  data: Buffer | undefined;
}

class FakeGlance implements ImageGlance {
  images = new Map<string, StoredImage>();
  shows = 0;
  downloads = 0;
  ctxs: (CallContext | undefined)[] = [];
  /** Cut the data after this many bytes (stream ends cleanly). */
  cutAt: number | undefined;

  add(id: string, data: Buffer | undefined, extra: Partial<GlanceImage> = {}): GlanceImage {
    const record: GlanceImage = {
      id,
      name: `img-${id.slice(0, 4)}`,
      status: data ? 'active' : 'queued',
      container_format: 'docker',
      disk_format: 'raw',
      size: data ? data.length : null,
      checksum: data ? md5(data) : null,
      os_hash_algo: data ? 'sha512' : null,
      os_hash_value: data ? sha512(data) : null,
      ...extra,
    };
    this.images.set(id, { record, data });
    return record;
  }
  showImage(ctx: CallContext | undefined, id: string): Promise<GlanceImage> {
    this.shows++;
    this.ctxs.push(ctx);
    const i = this.images.get(id);
    if (!i)
      return Promise.reject(httpErrorFor({ service: 'glance', method: 'GET', path: `/v2/images/${id}`, status: 404 }));
    return Promise.resolve({ ...i.record });
  }
  downloadImage(_ctx: CallContext | undefined, id: string): Promise<ImageDownload> {
    this.downloads++;
    const i = this.images.get(id);
    if (!i)
      return Promise.reject(
        httpErrorFor({ service: 'glance', method: 'GET', path: `/v2/images/${id}/file`, status: 404 }),
      );
    if (!i.data) return Promise.reject(new ImageDataMissingError('no data'));
    const data = this.cutAt === undefined ? i.data : i.data.subarray(0, this.cutAt);
    async function* gen(): AsyncGenerator<Buffer> {
      for (let p = 0; p < data.length; p += 1000) {
        await new Promise((r) => setImmediate(r));
        yield data.subarray(p, p + 1000);
      }
    }
    return Promise.resolve({ stream: Readable.from(gen()), contentLength: i.data.length, contentMd5: undefined });
  }
}

function setup(opts: ImageServiceOptions = {}): { docker: FakeDocker; glance: FakeGlance; svc: ImageService } {
  const docker = new FakeDocker();
  const glance = new FakeGlance();
  return { docker, glance, svc: new ImageService({ docker, glance }, opts) };
}

const TAR = dockerSaveTar({ repoTags: ['busybox:latest'], layerKb: 40 });

describe('virt/docker/images ImageService', () => {
  describe('Glance path', () => {
    it('streams the tarball into docker load, strips RepoTags and tags a cache ref', async () => {
      const { docker, glance, svc } = setup();
      const rec = glance.add(ID, TAR);
      docker.images.push({ Id: `sha256:${'b'.repeat(64)}`, RepoTags: ['busybox:latest'] });
      const { dockerRef } = await svc.ensureImage({ authToken: 'tok', requestId: 'req-1' }, imageMetaFromGlance(rec));
      assert.equal(dockerRef, `nova-glance/${ID}:sha512-${sha512(TAR).slice(0, 24)}`);
      assert.equal(docker.find(dockerRef)?.Id, IMAGE_ID);
      // docker saw the same archive with the tags removed; the host's busybox:latest is untouched.
      const sent = untar(docker.received!);
      assert.deepEqual(
        (JSON.parse(sent.get('manifest.json')!.toString()) as { RepoTags: string[] }[])[0]!.RepoTags,
        [],
      );
      assert.equal(docker.find('busybox:latest')?.Id, `sha256:${'b'.repeat(64)}`);
      assert.deepEqual(glance.ctxs[0], { authToken: 'tok', requestId: 'req-1' });
    });

    it('recognises a cached image without any Glance call', async () => {
      const { docker, glance, svc } = setup();
      const meta = imageMetaFromGlance(glance.add(ID, TAR));
      const a = await svc.ensureImage({}, meta);
      const b = await svc.ensureImage({}, meta);
      assert.deepEqual(a, b);
      assert.equal(glance.downloads, 1);
      assert.equal(glance.shows, 1);
      assert.equal(docker.loads, 1);
    });

    it('shares one download between concurrent callers', async () => {
      const { docker, glance, svc } = setup();
      const meta = imageMetaFromGlance(glance.add(ID, TAR));
      const refs = await Promise.all(Array.from({ length: 10 }, () => svc.ensureImage({}, meta)));
      assert.equal(new Set(refs.map((r) => r.dockerRef)).size, 1);
      assert.equal(glance.downloads, 1);
      assert.equal(docker.loads, 1);
    });

    it('takes the hash from Glance when the meta has none, and caches by it', async () => {
      const { glance, svc } = setup();
      glance.add(ID, TAR);
      const a = await svc.ensureImage({}, { id: ID, properties: {} });
      assert.match(a.dockerRef, /:sha512-/);
      const b = await svc.ensureImage({}, { id: ID, properties: {} });
      assert.deepEqual(a, b);
      assert.equal(glance.downloads, 1);
    });

    it('verifies md5 when there is no os_hash', async () => {
      const { glance, svc } = setup();
      glance.add(ID, TAR, { os_hash_algo: null, os_hash_value: null });
      const r = await svc.ensureImage({}, { id: ID, properties: {} });
      assert.equal(r.dockerRef, `nova-glance/${ID}:md5-${md5(TAR).slice(0, 24)}`);
    });

    it('fails a hash mismatch as ImageUnacceptable and leaves nothing usable', async () => {
      const { docker, glance, svc } = setup();
      const meta = { ...imageMetaFromGlance(glance.add(ID, TAR)), os_hash_value: 'ab'.repeat(64) };
      const err = novaError(await failure(svc.ensureImage({}, meta)), 'ImageUnacceptable');
      assert.deepEqual(Object.keys(err.kwargs).sort(), ['image_id', 'reason']);
      assert.equal(err.kwargs.image_id, ID);
      assert.match(String(err.kwargs.reason), /checksum mismatch/);
      assert.equal(docker.received, undefined, 'docker never saw the end of the stream');
      assert.equal(docker.images.length, 0);
    });

    it('removes what a load reported when the hash fails afterwards', async () => {
      const { docker, glance, svc } = setup();
      docker.resolveEarly = `sha256:${'e'.repeat(64)}`;
      const meta = { ...imageMetaFromGlance(glance.add(ID, TAR)), os_hash_value: 'ab'.repeat(64) };
      novaError(await failure(svc.ensureImage({}, meta)), 'ImageUnacceptable');
      assert.deepEqual(docker.removed, [docker.resolveEarly]);
      assert.equal(docker.images.length, 0);
    });

    it('rejects other container formats before any download', async () => {
      const { glance, svc } = setup();
      const meta = { ...imageMetaFromGlance(glance.add(ID, TAR, { container_format: 'bare' })) };
      const e1 = novaError(await failure(svc.ensureImage({}, meta)), 'ImageUnacceptable');
      assert.match(String(e1.kwargs.reason), /container_format is bare/);
      assert.equal(glance.shows + glance.downloads, 0);
      const e2 = novaError(await failure(svc.ensureImage({}, { id: ID, properties: {} })), 'ImageUnacceptable');
      assert.match(String(e2.kwargs.reason), /container_format is bare/);
      assert.equal(glance.downloads, 0);
    });

    it('maps a missing image to ImageNotFound', async () => {
      const { svc } = setup();
      const err = novaError(await failure(svc.ensureImage({}, { id: ID, properties: {} })), 'ImageNotFound');
      assert.deepEqual(err.kwargs, { image_id: ID });
    });

    it('rejects an image that is not active or has no data', async () => {
      const { glance, svc } = setup();
      glance.add(ID, undefined);
      const err = novaError(await failure(svc.ensureImage({}, { id: ID, properties: {} })), 'ImageUnacceptable');
      assert.match(String(err.kwargs.reason), /status is queued/);
    });

    it('rejects data that is not a docker-save tarball', async () => {
      const { docker, glance, svc } = setup();
      const junk = Buffer.from('definitely not a tar archive\n'.repeat(200));
      glance.add(ID, junk);
      const err = novaError(await failure(svc.ensureImage({}, { id: ID, properties: {} })), 'ImageUnacceptable');
      assert.match(String(err.kwargs.reason), /not a tar archive/);
      assert.equal(docker.images.length, 0);
    });

    it("reports the engine's message when docker refuses the archive", async () => {
      const { docker, glance, svc } = setup();
      glance.add(ID, TAR);
      docker.loadError = new HttpError('docker POST /v1.41/images/load: Error processing tar file', {
        service: 'docker',
        method: 'POST',
        path: '/v1.41/images/load',
        body: 'Error processing tar file(exit status 1): unexpected EOF',
      });
      const err = novaError(await failure(svc.ensureImage({}, { id: ID, properties: {} })), 'ImageUnacceptable');
      assert.match(
        String(err.kwargs.reason),
        /docker load failed: Error processing tar file\(exit status 1\): unexpected EOF/,
      );
    });

    it('passes a dockerd that does not answer through as UnavailableError', async () => {
      const { docker, glance, svc } = setup();
      glance.add(ID, TAR);
      docker.loadError = new UnavailableError('docker POST /images/load: no answer', {
        service: 'docker',
        method: 'POST',
        path: '/images/load',
        cause: new Error('connect ENOENT /var/run/docker.sock'),
      });
      assert.ok((await failure(svc.ensureImage({}, { id: ID, properties: {} }))) instanceof UnavailableError);
    });

    it('treats a download that ends short as a retryable Glance failure', async () => {
      const { docker, glance, svc } = setup();
      glance.add(ID, TAR);
      glance.cutAt = 5000;
      const err = await failure(svc.ensureImage({}, { id: ID, properties: {} }));
      assert.ok(err instanceof UnavailableError, String(err));
      assert.equal(err.service, 'glance');
      assert.match(err.message, /truncated/);
      assert.equal(docker.images.length, 0);
      assert.equal(docker.received, undefined);
    });
  });

  describe('registry path', () => {
    const REF = '127.0.0.1:5042/lab/bb:t1';

    it('pulls docker_image_ref from the configured registry, once (if-not-present)', async () => {
      const { docker, glance, svc } = setup();
      docker.pullable.add(REF);
      const meta: ImageMeta = { id: ID, name: 'whatever', properties: { docker_image_ref: 'lab/bb:t1' }, size: 0 };
      const rs = await Promise.all(Array.from({ length: 5 }, () => svc.ensureImage({}, meta)));
      assert.deepEqual(new Set(rs.map((r) => r.dockerRef)), new Set([REF]));
      await svc.ensureImage({}, meta);
      assert.deepEqual(docker.pulls, [REF]);
      assert.equal(glance.shows + glance.downloads, 0);
    });

    it('takes a repo:tag Glance name as a registry reference', async () => {
      const { docker, svc } = setup();
      docker.pullable.add(REF);
      assert.equal((await svc.ensureImage({}, { id: ID, name: 'lab/bb:t1', properties: {}, size: 0 })).dockerRef, REF);
      const plain = setup({ nameAsRegistryRef: false });
      plain.glance.add(ID, TAR, { name: 'lab/bb:t1' });
      const r = await plain.svc.ensureImage({}, imageMetaFromGlance(plain.glance.images.get(ID)!.record));
      assert.match(r.dockerRef, /^nova-glance\//);
      assert.deepEqual(plain.docker.pulls, []);
    });

    it('pulls every time with always, and never pulls with never', async () => {
      const always = setup({ pullPolicy: 'always' });
      always.docker.pullable.add(REF);
      const meta: ImageMeta = { id: ID, properties: { docker_image_ref: '127.0.0.1:5042/lab/bb:t1' }, size: 0 };
      await always.svc.ensureImage({}, meta);
      await always.svc.ensureImage({}, meta);
      assert.equal(always.docker.pulls.length, 2);

      const never = setup({ pullPolicy: 'never' });
      const err = novaError(await failure(never.svc.ensureImage({}, meta)), 'InstanceDeployFailure');
      assert.match(String(err.kwargs.reason), /pull policy is never/);
      never.docker.images.push({ Id: 'sha256:x', RepoTags: [REF] });
      assert.equal((await never.svc.ensureImage({}, meta)).dockerRef, REF);
      assert.deepEqual(never.docker.pulls, []);
    });

    it('falls back to the Glance data when the pull fails and the image has data', async () => {
      const { docker, glance, svc } = setup({ registryAuth: { username: 'u', password: 'p' } });
      const meta = imageMetaFromGlance(glance.add(ID, TAR, { docker_image_ref: 'lab/bb:t1' }));
      assert.deepEqual(meta.properties, { docker_image_ref: 'lab/bb:t1' });
      const r = await svc.ensureImage({}, meta);
      assert.deepEqual(docker.pulls, [REF]);
      assert.match(r.dockerRef, /^nova-glance\//);
      assert.equal(glance.downloads, 1);
    });

    it('fails with InstanceDeployFailure (another host may pull it: rescheduled) when the pull fails and there is no data', async () => {
      const { glance, svc } = setup();
      glance.add(ID, undefined, { docker_image_ref: 'lab/bb:t1' });
      const err = novaError(
        await failure(svc.ensureImage({}, { id: ID, properties: { docker_image_ref: 'lab/bb:t1' } })),
        'InstanceDeployFailure',
      );
      assert.match(String(err.kwargs.reason), /pull of 127\.0\.0\.1:5042\/lab\/bb:t1 failed: .*manifest unknown/);
    });

    it('refuses references to other registries', async () => {
      const { docker, svc } = setup();
      const meta: ImageMeta = { id: ID, properties: { docker_image_ref: 'evil.example:443/x:y' }, size: 0 };
      const err = novaError(await failure(svc.ensureImage({}, meta)), 'ImageUnacceptable');
      assert.match(String(err.kwargs.reason), /only 127\.0\.0\.1:5042 is allowed/);
      assert.deepEqual(docker.pulls, []);
    });
  });

  describe('helpers', () => {
    it('parses docker references', () => {
      assert.deepEqual(parseDockerRef('busybox'), {
        domain: undefined,
        path: 'busybox',
        tag: undefined,
        digest: undefined,
      });
      assert.deepEqual(parseDockerRef('library/busybox:1.36'), {
        domain: undefined,
        path: 'library/busybox',
        tag: '1.36',
        digest: undefined,
      });
      assert.equal(parseDockerRef('127.0.0.1:5042/a/b:c')?.domain, '127.0.0.1:5042');
      assert.equal(parseDockerRef('localhost/a')?.domain, 'localhost');
      assert.equal(parseDockerRef(`a@sha256:${'f'.repeat(64)}`)?.digest, `sha256:${'f'.repeat(64)}`);
      assert.equal(parseDockerRef('Not A Ref'), undefined);
      assert.equal(parseDockerRef('my image.tar'), undefined);
    });

    it('prefers os_hash over md5 and ignores algorithms Node lacks', () => {
      assert.deepEqual(expectedDigest({ os_hash_algo: 'sha512', os_hash_value: 'AB', checksum: 'cd' }), {
        algo: 'sha512',
        value: 'ab',
      });
      assert.deepEqual(expectedDigest({ os_hash_algo: 'nosuch', os_hash_value: 'ab', checksum: 'cd' }), {
        algo: 'md5',
        value: 'cd',
      });
      assert.equal(expectedDigest({}), undefined);
    });
  });

  describe('with the real Glance client (nock)', () => {
    const GLANCE = 'http://127.0.0.1:65020';
    before(() => nock.disableNetConnect());
    afterEach(() => nock.cleanAll());
    after(() => nock.enableNetConnect());

    function withGlance(): { docker: FakeDocker; svc: ImageService } {
      const docker = new FakeDocker();
      const glance = new GlanceClient({ apiServers: [GLANCE] });
      return { docker, svc: new ImageService({ docker, glance }) };
    }
    const record = { id: ID, status: 'active', container_format: 'docker', size: TAR.length, os_hash_algo: 'sha512' };

    it('detects data that does not match os_hash_value', async () => {
      const tampered = Buffer.from(TAR);
      tampered[tampered.length - 2000] = 0x41; // inside the layer data: still a valid tar
      nock(GLANCE)
        .get(`/v2/images/${ID}`)
        .reply(200, { ...record, os_hash_value: sha512(TAR) });
      nock(GLANCE)
        .get(`/v2/images/${ID}/file`)
        .reply(200, tampered, { 'Content-Length': String(TAR.length) });
      const { docker, svc } = withGlance();
      const err = novaError(await failure(svc.ensureImage({}, { id: ID, properties: {} })), 'ImageUnacceptable');
      assert.match(String(err.kwargs.reason), /checksum mismatch/);
      assert.equal(docker.received, undefined);
      assert.equal(docker.images.length, 0);
    });

    it('fails a body that breaks off mid-way with a Glance error and loads nothing', async () => {
      nock(GLANCE)
        .get(`/v2/images/${ID}`)
        .reply(200, { ...record, os_hash_value: sha512(TAR) });
      nock(GLANCE)
        .get(`/v2/images/${ID}/file`)
        .reply(
          200,
          () => {
            let sent = false;
            return new Readable({
              read() {
                if (sent) {
                  this.destroy(new Error('connection reset by peer'));
                  return;
                }
                sent = true;
                this.push(TAR.subarray(0, 20_000));
              },
            });
          },
          { 'Content-Length': String(TAR.length) },
        );
      const { docker, svc } = withGlance();
      const err = await failure(svc.ensureImage({}, { id: ID, properties: {} }));
      assert.ok(err instanceof UnavailableError, String(err));
      assert.equal(err.service, 'glance');
      assert.equal(err.fields.image_id, ID);
      assert.equal(docker.received, undefined);
      assert.equal(docker.images.length, 0);
    });

    it('maps a 404 on show to ImageNotFound', async () => {
      nock(GLANCE).get(`/v2/images/${ID}`).reply(404, 'Image not found');
      const { svc } = withGlance();
      novaError(await failure(svc.ensureImage({}, { id: ID, properties: {} })), 'ImageNotFound');
    });
  });
});

describe('virt/docker/images ImageService cache observer', () => {
  function observed(): { counts: Map<string, number>; svc: ImageService; docker: FakeDocker; glance: FakeGlance } {
    const docker = new FakeDocker();
    const glance = new FakeGlance();
    const counts = new Map<string, number>();
    const observer = {
      lookup: (source: string, result: string): void => {
        counts.set(`${source} ${result}`, (counts.get(`${source} ${result}`) ?? 0) + 1);
      },
    };
    return { counts, docker, glance, svc: new ImageService({ docker, glance, observer }) };
  }

  it('counts one Glance miss per download and a hit per cached use', async () => {
    const { counts, glance, svc } = observed();
    const meta = imageMetaFromGlance(glance.add(ID, TAR));
    await Promise.all(Array.from({ length: 3 }, () => svc.ensureImage({}, meta)));
    await svc.ensureImage({}, meta);
    await svc.ensureImage({}, meta);
    assert.deepEqual(Object.fromEntries(counts), { 'glance miss': 1, 'glance hit': 2 });
  });

  it('counts one registry miss per pull and a hit per image found locally', async () => {
    const { counts, docker, svc } = observed();
    const ref = '127.0.0.1:5042/lab/bb:t1';
    docker.pullable.add(ref);
    const meta: ImageMeta = { id: ID, name: 'x', properties: { docker_image_ref: 'lab/bb:t1' }, size: 0 };
    await svc.ensureImage({}, meta);
    await svc.ensureImage({}, meta);
    assert.deepEqual(Object.fromEntries(counts), { 'registry miss': 1, 'registry hit': 1 });
  });
});
