/** Registry path against the real lab registry (127.0.0.1:5042) and dockerd. */
import assert from 'node:assert/strict';
import { NovaError } from '../../../src/common/errors.js';
import { ImageService } from '../../../src/virt/docker/images.js';
import { imageMetaFromGlance } from '../../../src/virt/image-meta.js';
import { CountingGlance, Lab, REGISTRY, registry, sh, unique } from './lab.js';

describe('integration: images from the registry (real lab)', function () {
  this.timeout(120_000);
  const lab = new Lab();
  afterEach(() => lab.cleanup());
  after(() => lab.dispose());

  /** Pushes busybox:latest as <registry>/<repo>:t1 and removes the local copy of that ref. */
  async function pushed(): Promise<{ repo: string; ref: string }> {
    const repo = unique('nd-it-reg');
    const ref = `${REGISTRY}/${repo}:t1`;
    await sh('docker', ['tag', 'busybox:latest', ref]);
    lab.registryRefs.push({ repo, tag: 't1' });
    try {
      await sh('docker', ['push', ref]);
    } finally {
      await sh('docker', ['rmi', ref]);
    }
    return { repo, ref };
  }

  it('lists the pushed repository, its tags and manifest digest', async () => {
    const { repo } = await pushed();
    const reg = registry();
    assert.ok((await reg.listRepositories({ pageSize: 1 })).includes(repo));
    assert.deepEqual(await reg.listTags(repo), ['t1']);
    assert.match((await reg.manifestDigest(repo, 't1')) ?? '', /^sha256:[0-9a-f]{64}$/);
    assert.equal(await reg.manifestDigest(repo, 'nope'), undefined);
  });

  it('pulls docker_image_ref from the registry (if-not-present: once)', async () => {
    const { repo, ref } = await pushed();
    const rec = await lab.glanceImage({ properties: { docker_image_ref: `${repo}:t1` } });
    const counting = new CountingGlance(lab.glance);
    const svc = new ImageService({ docker: lab.docker, glance: counting }, { pullPolicy: 'if-not-present' });
    const meta = imageMetaFromGlance(rec);
    const rs = await Promise.all([svc.ensureImage({}, meta), svc.ensureImage({}, meta)]);
    lab.dockerRefs.push(ref);
    assert.deepEqual(
      rs.map((r) => r.dockerRef),
      [ref, ref],
    );
    const busybox = await lab.docker.inspectImage('busybox:latest');
    assert.equal((await lab.docker.inspectImage(ref))?.Id, busybox?.Id);
    assert.equal(counting.downloads, 0);
  });

  it('falls back to the Glance data when the pull fails', async () => {
    const { file, imageId } = await lab.uniqueImageTar();
    const rec = await lab.glanceImage({ file, properties: { docker_image_ref: `${unique('nd-it-missing')}:t1` } });
    const counting = new CountingGlance(lab.glance);
    const svc = new ImageService({ docker: lab.docker, glance: counting }, { pullPolicy: 'always' });
    const { dockerRef } = await svc.ensureImage({}, imageMetaFromGlance(rec));
    lab.dockerRefs.push(dockerRef);
    assert.match(dockerRef, /^nova-glance\//);
    assert.equal((await lab.docker.inspectImage(dockerRef))?.Id, imageId);
    assert.equal(counting.downloads, 1);
  });

  it('fails with InstanceDeployFailure (rescheduled elsewhere) when the pull fails and Glance has no data', async () => {
    const rec = await lab.glanceImage({ properties: { docker_image_ref: `${unique('nd-it-missing')}:t1` } });
    const svc = new ImageService({ docker: lab.docker, glance: lab.glance });
    const err = await svc.ensureImage({}, imageMetaFromGlance(rec)).catch((e: unknown) => e);
    assert.ok(err instanceof NovaError && err.novaClass === 'InstanceDeployFailure', String(err));
    assert.match(
      err.message,
      /not available on this host: pull of 127\.0\.0\.1:5042\/nd-it-missing-[0-9a-f]+:t1 failed/,
    );
  });
});
