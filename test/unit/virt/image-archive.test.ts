import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ArchiveError, DockerArchiveFilter, imageIdFromConfig } from '../../../src/virt/docker/image-archive.js';
import { CONFIG_HEX, dockerSaveTar, tar, untar } from './images-tar-fixture.js';

async function filter(buf: Buffer, chunk = 1000): Promise<{ out: Buffer; f: DockerArchiveFilter; err?: unknown }> {
  const f = new DockerArchiveFilter();
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunk) parts.push(buf.subarray(i, i + chunk));
  const got: Buffer[] = [];
  const sink = new PassThrough();
  sink.on('data', (c: Buffer) => got.push(c));
  try {
    await pipeline(Readable.from(parts), f, sink);
    return { out: Buffer.concat(got), f };
  } catch (err) {
    return { out: Buffer.concat(got), f, err };
  }
}

describe('virt/docker/image-archive', () => {
  for (const chunk of [1, 100, 512, 4096, 1 << 20]) {
    it(`strips RepoTags and keeps every other byte (chunks of ${chunk})`, async () => {
      const input = dockerSaveTar({ repoTags: ['busybox:latest', 'nova-glance/victim:sha512-x'] });
      const { out, f, err } = await filter(input, chunk);
      assert.equal(err, undefined);
      assert.deepEqual(f.manifest, {
        config: `${CONFIG_HEX}.json`,
        imageId: `sha256:${CONFIG_HEX}`,
        repoTags: ['busybox:latest', 'nova-glance/victim:sha512-x'],
        layers: 1,
      });
      const a = untar(input);
      const b = untar(out);
      assert.deepEqual([...b.keys()], [...a.keys()]);
      for (const [name, data] of a) if (name !== 'manifest.json') assert.ok(b.get(name)?.equals(data), name);
      const m = JSON.parse(b.get('manifest.json')!.toString()) as { RepoTags: string[]; Config: string }[];
      assert.deepEqual(m[0]!.RepoTags, []);
      assert.equal(m[0]!.Config, `${CONFIG_HEX}.json`);
      assert.equal(out.length % 512, 0);
    });
  }

  it('drops a pax header that described manifest.json and keeps others', async () => {
    const long = `${'d'.repeat(120)}/layer.tar`;
    const input = tar([
      { name: 'x.json', data: '{}' },
      { name: 'short-name', data: 'layer', pax: { path: long } },
      {
        name: 'manifest.json',
        data: JSON.stringify([{ Config: 'x.json', RepoTags: ['a:b'], Layers: [] }]),
        pax: { mtime: '1' },
      },
    ]);
    const { out, f, err } = await filter(input, 300);
    assert.equal(err, undefined);
    assert.equal(f.manifest?.imageId, undefined);
    const b = untar(out);
    assert.equal(b.get(long)?.toString(), 'layer');
    assert.deepEqual((JSON.parse(b.get('manifest.json')!.toString()) as { RepoTags: string[] }[])[0]!.RepoTags, []);
  });

  it('rejects data that is not a tar archive', async () => {
    const { err, out } = await filter(Buffer.from('this is not a tar archive'.repeat(100)));
    assert.ok(err instanceof ArchiveError);
    assert.match(err.message, /not a tar archive/);
    assert.equal(out.length, 0);
  });

  it('rejects a truncated archive', async () => {
    const full = dockerSaveTar();
    const { err } = await filter(full.subarray(0, 3000));
    assert.ok(err instanceof ArchiveError);
    assert.match(err.message, /truncated/);
  });

  it('rejects an archive without manifest.json, or with several images', async () => {
    const r1 = await filter(dockerSaveTar({ manifest: false }));
    assert.match(String(r1.err), /no manifest\.json/);
    const r2 = await filter(dockerSaveTar({ images: 2 }));
    assert.match(String(r2.err), /holds 2 images/);
  });

  it('derives image ids from config paths', () => {
    assert.equal(imageIdFromConfig(`${CONFIG_HEX}.json`), `sha256:${CONFIG_HEX}`);
    assert.equal(imageIdFromConfig(`blobs/sha256/${CONFIG_HEX}`), `sha256:${CONFIG_HEX}`);
    assert.equal(imageIdFromConfig('config.json'), undefined);
  });
});
