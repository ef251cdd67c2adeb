/**
 * ImageService against the real lab: Glance (via the Keystone catalog) and dockerd.
 * Each test uploads its own images under unique names and removes them afterwards.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { HttpError, NotFoundError } from '../../../src/clients/errors.js';
import { readFile } from 'node:fs/promises';
import { ImageService } from '../../../src/virt/docker/images.js';
import { imageMetaFromGlance } from '../../../src/virt/image-meta.js';
import { CountingGlance, Lab, adminKeystone, sh, tarEntries } from './lab.js';
import { failure, novaError } from '../../support/nova-error.js';

describe('integration: images from Glance (real lab)', function () {
  this.timeout(120_000);
  const lab = new Lab();
  let counting: CountingGlance;
  let svc: ImageService;

  beforeEach(() => {
    counting = new CountingGlance(lab.glance);
    svc = new ImageService({ docker: lab.docker, glance: counting }, { registryUrl: '127.0.0.1:5042' });
  });
  afterEach(() => lab.cleanup());
  after(() => lab.dispose());

  it('loads a docker-save tarball whose Glance name is not its tag, runnable, and caches it', async () => {
    const { file, imageId, tag } = await lab.uniqueImageTar();
    const rec = await lab.glanceImage({ file });
    assert.equal(rec.status, 'active');
    assert.notEqual(rec.name, tag);
    const meta = imageMetaFromGlance(rec);

    const { dockerRef } = await svc.ensureImage({ requestId: `req-${randomUUID()}` }, meta);
    lab.dockerRefs.push(dockerRef);
    assert.match(dockerRef, new RegExp(`^nova-glance/${rec.id}:sha512-[0-9a-f]{24}$`));
    const inspected = await lab.docker.inspectImage(dockerRef);
    assert.equal(inspected?.Id, imageId);
    // The archive's own tag was not applied to the host.
    assert.equal(await lab.docker.inspectImage(tag), undefined);
    assert.equal(await sh('docker', ['run', '--rm', '--network', 'none', dockerRef, 'echo', 'ran-ok']), 'ran-ok');
    assert.equal(counting.downloads, 1);

    // Cached: same Glance id and hash -> no Glance traffic at all.
    const again = await svc.ensureImage({}, meta);
    assert.equal(again.dockerRef, dockerRef);
    assert.equal(counting.downloads, 1);
    assert.equal(counting.shows, 1);

    // A fresh service (agent restart) also recognises it from the tag.
    const fresh = new CountingGlance(lab.glance);
    const svc2 = new ImageService({ docker: lab.docker, glance: fresh });
    assert.equal((await svc2.ensureImage({}, meta)).dockerRef, dockerRef);
    assert.equal(fresh.downloads + fresh.shows, 0);
  });

  it('shares one download between 10 concurrent calls for a fresh image', async () => {
    const { file, imageId } = await lab.uniqueImageTar();
    const meta = imageMetaFromGlance(await lab.glanceImage({ file }));
    const results = await Promise.all(Array.from({ length: 10 }, () => svc.ensureImage({}, meta)));
    const refs = new Set(results.map((r) => r.dockerRef));
    assert.equal(refs.size, 1);
    lab.dockerRefs.push(...refs);
    assert.equal(counting.downloads, 1);
    assert.equal((await lab.docker.inspectImage([...refs][0]!))?.Id, imageId);
  });

  it("works with the request's own token (the user's auth_token)", async () => {
    const { file } = await lab.uniqueImageTar();
    const rec = await lab.glanceImage({ file });
    // admin sees every image; the service token is not used for this call.
    const userToken = await adminKeystone().getToken();
    const { dockerRef } = await svc.ensureImage({ authToken: userToken }, { id: rec.id, properties: {} });
    lab.dockerRefs.push(dockerRef);
    assert.ok(await lab.docker.inspectImage(dockerRef));
  });

  it('rejects data that is not a tar archive', async () => {
    const file = await lab.writeTmp('junk.bin', Buffer.from('not a tar archive at all\n'.repeat(4000)));
    const rec = await lab.glanceImage({ file });
    const err = novaError(await failure(svc.ensureImage({}, imageMetaFromGlance(rec))), 'ImageUnacceptable');
    assert.equal(err.kwargs.image_id, rec.id);
    assert.match(String(err.kwargs.reason), /not a tar archive/);
  });

  it('rejects a truncated tarball', async () => {
    const { file, imageId } = await lab.uniqueImageTar();
    const full = await readFile(file);
    const cut = await lab.writeTmp('cut.tar', full.subarray(0, Math.floor(full.length / 2)));
    const rec = await lab.glanceImage({ file: cut });
    const err = novaError(await failure(svc.ensureImage({}, imageMetaFromGlance(rec))), 'ImageUnacceptable');
    assert.match(String(err.kwargs.reason), /truncated/);
    assert.equal(await lab.docker.inspectImage(imageId), undefined);
  });

  it("rejects a corrupt layer with the engine's message", async () => {
    const { file, imageId, name } = await lab.uniqueImageTar({ layerBytes: 256 * 1024 });
    const bad = await readFile(file);
    // Flip bytes inside the image's own layer (the one holding /<name>.bin): the outer archive stays valid.
    const layer = tarEntries(bad).find(
      (e) => e.name.endsWith('layer.tar') && bad.subarray(e.offset, e.offset + e.size).includes(`${name}.bin`),
    );
    assert.ok(layer, 'own layer found');
    for (let i = 0; i < 64; i++) bad[layer.offset + 4096 + i * 97]! ^= 0xff;
    const rec = await lab.glanceImage({ file: await lab.writeTmp('corrupt.tar', bad) });
    const err = novaError(await failure(svc.ensureImage({}, imageMetaFromGlance(rec))), 'ImageUnacceptable');
    assert.match(String(err.kwargs.reason), /^docker load failed: /);
    assert.equal(await lab.docker.inspectImage(imageId), undefined);
  });

  it('rejects container_format bare', async () => {
    const { file } = await lab.uniqueImageTar();
    const rec = await lab.glanceImage({ file, containerFormat: 'bare' });
    const err = novaError(await failure(svc.ensureImage({}, { id: rec.id, properties: {} })), 'ImageUnacceptable');
    assert.match(String(err.kwargs.reason), /container_format is bare/);
    assert.equal(counting.downloads, 0);
  });

  it('fails a hash mismatch and leaves no image behind', async () => {
    const { file, imageId } = await lab.uniqueImageTar();
    const rec = await lab.glanceImage({ file });
    const meta = { ...imageMetaFromGlance(rec), os_hash_value: '0'.repeat(128) };
    const err = novaError(await failure(svc.ensureImage({}, meta)), 'ImageUnacceptable');
    assert.match(String(err.kwargs.reason), /checksum mismatch/);
    assert.equal(counting.downloads, 1);
    assert.equal(await lab.docker.inspectImage(imageId), undefined);
    const tags = await sh('docker', ['images', '--format', '{{.Repository}}', `nova-glance/${rec.id}`]);
    assert.equal(tags, '');
  });

  it('maps a missing image id to ImageNotFound', async () => {
    const id = randomUUID();
    const err = novaError(await failure(svc.ensureImage({}, { id, properties: {} })), 'ImageNotFound');
    assert.deepEqual(err.kwargs, { image_id: id });
  });
});

describe('integration: the snapshot upload path against the real Glance', function () {
  this.timeout(120_000);
  const lab = new Lab();
  after(() => lab.dispose());

  it('a format-less record (as Nova creates it) refuses data; patched to docker/raw it takes a chunked docker save and boots', async () => {
    const name = `nd-it-snap-${randomUUID().slice(0, 8)}`;
    const rec = await lab.glance.createImage(undefined, {
      name,
      properties: { image_type: 'snapshot', docker_image_ref: 'busybox:latest', nd_it: name },
    });
    lab.glanceImages.push(rec.id);
    assert.equal(rec.status, 'queued');
    assert.equal(rec.container_format, null);
    const refused = await failure(lab.glance.uploadImage(undefined, rec.id, Readable.from([Buffer.from('x')])));
    assert.ok(refused instanceof HttpError && refused.status === 400, String(refused));

    const patched = await lab.glance.updateImage(undefined, rec.id, [
      { op: 'add', path: '/container_format', value: 'docker' },
      { op: 'add', path: '/disk_format', value: 'raw' },
      { op: 'add', path: '/image_location', value: 'snapshot' },
      { op: 'remove', path: '/docker_image_ref' },
    ]);
    assert.equal(patched.container_format, 'docker');
    assert.equal(patched.image_location, 'snapshot');
    assert.equal(patched.docker_image_ref, undefined);

    // docker save straight into Glance, no size given: chunked
    const hash = createHash('sha512');
    let bytes = 0;
    const tar = await lab.docker.saveImage('busybox:latest');
    const tap = new Transform({
      transform(chunk: Buffer, _e, cb) {
        hash.update(chunk);
        bytes += chunk.length;
        cb(null, chunk);
      },
    });
    tar.pipe(tap);
    await lab.glance.uploadImage(undefined, rec.id, tap);
    const done = await lab.glance.showImage(undefined, rec.id);
    assert.equal(done.status, 'active');
    assert.equal(done.size, bytes);
    assert.equal(done.os_hash_value, hash.digest('hex'));

    const listed = await lab.glance.listImages(undefined, { filters: { nd_it: name } });
    assert.deepEqual(
      listed.map((i) => i.id),
      [rec.id],
    );

    const svc = new ImageService({ docker: lab.docker, glance: lab.glance }, { registryUrl: null });
    const { dockerRef } = await svc.ensureImage({}, imageMetaFromGlance(done));
    lab.dockerRefs.push(dockerRef);
    assert.equal(await sh('docker', ['run', '--rm', '--network', 'none', dockerRef, 'echo', 'snap-ok']), 'snap-ok');

    await lab.glance.deleteImage(undefined, rec.id);
    const gone = await failure(lab.glance.uploadImage(undefined, rec.id, Readable.from([Buffer.from('x')])));
    assert.ok(gone instanceof NotFoundError, String(gone));
  });
});
