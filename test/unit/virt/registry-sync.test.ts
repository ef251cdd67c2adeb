import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { UnavailableError } from '../../../src/clients/errors.js';
import type { GlanceImage, ImageCreate, ImagePatchOp } from '../../../src/clients/glance/client.js';
import type { ManifestInfo } from '../../../src/clients/registry/client.js';
import { nullLogger } from '../../../src/common/log.js';
import { parseSyncArgs, runSyncLoop } from '../../../src/registry-sync.js';
import {
  formatReport,
  repoMatcher,
  syncRegistry,
  type SyncGlance,
  type SyncRegistry,
  type SyncReport,
} from '../../../src/virt/docker/registry-sync.js';

const HOST = '127.0.0.1:5042';
const d = (c: string): string => `sha256:${c.repeat(64)}`;

/** A registry: repo -> tag -> digest; `fail` makes calls for a key throw. */
class FakeRegistry implements SyncRegistry {
  readonly host = HOST;
  repos = new Map<string, Map<string, string>>();
  failCatalog = false;
  failTags = new Set<string>();
  failManifest = new Set<string>();

  set(repo: string, tag: string, digest: string): void {
    const tags = this.repos.get(repo) ?? new Map<string, string>();
    tags.set(tag, digest);
    this.repos.set(repo, tags);
  }

  listRepositories(): Promise<string[]> {
    if (this.failCatalog) return Promise.reject(new UnavailableError('registry down', fakeHttp()));
    return Promise.resolve([...this.repos.keys()]);
  }

  listTags(repo: string): Promise<string[]> {
    if (this.failTags.has(repo)) return Promise.reject(new UnavailableError('tags boom', fakeHttp()));
    return Promise.resolve([...(this.repos.get(repo)?.keys() ?? [])]);
  }

  manifestInfo(repo: string, tag: string): Promise<ManifestInfo | undefined> {
    if (this.failManifest.has(`${repo}:${tag}`)) return Promise.reject(new Error('manifest boom'));
    const digest = this.repos.get(repo)?.get(tag);
    return Promise.resolve(digest ? { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json' } : undefined);
  }
}

function fakeHttp(): ConstructorParameters<typeof UnavailableError>[1] {
  return { service: 'registry', method: 'GET', path: '/v2/' };
}

class FakeGlance implements SyncGlance {
  images = new Map<string, GlanceImage>();
  calls: string[] = [];
  uploads: Array<{ id: string; size: number | undefined; bytes: number }> = [];
  failCreate = new Set<string>();
  #n = 0;

  add(img: Partial<GlanceImage> & { id: string }): void {
    this.images.set(img.id, { status: 'active', created_at: `2026-01-01T00:00:0${this.#n++}Z`, ...img });
  }

  listImages(): Promise<GlanceImage[]> {
    this.calls.push('list');
    return Promise.resolve([...this.images.values()].map((i) => ({ ...i })));
  }

  createImage(_ctx: undefined, req: ImageCreate): Promise<GlanceImage> {
    this.calls.push(`create ${req.name}`);
    if (this.failCreate.has(req.name)) return Promise.reject(new Error('glance says no'));
    const { properties, ...core } = req;
    const id = `img-${++this.#n}`;
    const img: GlanceImage = { ...properties, ...core, id, status: 'queued', created_at: new Date().toISOString() };
    this.images.set(id, img);
    return Promise.resolve({ ...img });
  }

  async uploadImage(_ctx: undefined, id: string, data: Readable, opts?: { size?: number }): Promise<void> {
    let bytes = 0;
    for await (const c of data) bytes += (c as Buffer).length;
    this.calls.push(`upload ${id}`);
    this.uploads.push({ id, size: opts?.size, bytes });
    const img = this.images.get(id);
    if (img) Object.assign(img, { status: 'active', size: bytes });
  }

  updateImage(_ctx: undefined, id: string, ops: readonly ImagePatchOp[]): Promise<GlanceImage> {
    this.calls.push(`update ${id}`);
    const img = this.images.get(id);
    if (!img) return Promise.reject(new Error('no such image'));
    for (const op of ops) {
      if (op.op === 'remove') delete img[op.path.slice(1)];
      else img[op.path.slice(1)] = op.value;
    }
    return Promise.resolve({ ...img });
  }
}

/** The usage error parseSyncArgs answers (fails the test when it parsed). */
function usageError(args: string[]): string {
  const r = parseSyncArgs(args);
  assert.equal(typeof r, 'string', `${args.join(' ')} is refused`);
  return r as string;
}

function actions(reports: SyncReport[]): string[] {
  return reports.map((r) => `${r.action} ${r.name}`);
}

describe('virt/docker/registry-sync', () => {
  let registry: FakeRegistry;
  let glance: FakeGlance;
  const sync = (opts = {}): Promise<SyncReport[]> => syncRegistry({ registry, glance }, opts);

  beforeEach(() => {
    registry = new FakeRegistry();
    glance = new FakeGlance();
  });

  it('creates one empty ACTIVE image per repo:tag, with the pinned reference and the digest', async () => {
    registry.set('hipache', 'latest', d('a'));
    registry.set('lab/app', 'v1', d('b'));
    const reports = await sync();
    assert.deepEqual(actions(reports), ['created hipache:latest', 'created lab/app:v1']);
    const img = [...glance.images.values()].find((i) => i.name === 'hipache:latest');
    assert.ok(img);
    assert.equal(img.container_format, 'docker');
    assert.equal(img.disk_format, 'raw');
    assert.equal(img.visibility, 'public');
    assert.equal(img.status, 'active');
    assert.equal(img.docker_image_ref, `${HOST}/hipache:latest@${d('a')}`);
    assert.equal(img.docker_image_digest, d('a'));
    // the upload that activates it carries no data
    assert.deepEqual(
      glance.uploads.map((u) => [u.size, u.bytes]),
      [
        [0, 0],
        [0, 0],
      ],
    );
    assert.equal(reports[0]?.imageId, img.id);
  });

  it('re-running creates nothing when nothing changed', async () => {
    registry.set('hipache', 'latest', d('a'));
    await sync();
    glance.calls = [];
    const reports = await sync();
    assert.deepEqual(actions(reports), ['unchanged hipache:latest']);
    assert.deepEqual(glance.calls, ['list'], 'only the listing: no create, update or upload');
  });

  it('a tag whose digest moved updates its image in place', async () => {
    registry.set('hipache', 'latest', d('a'));
    const [first] = await sync();
    registry.set('hipache', 'latest', d('c'));
    const reports = await sync();
    assert.deepEqual(actions(reports), ['updated hipache:latest']);
    assert.equal(reports[0]?.imageId, first?.imageId);
    assert.equal(reports[0]?.previousDigest, d('a'));
    assert.equal(reports[0]?.digest, d('c'));
    const img = glance.images.get(first?.imageId ?? '');
    assert.equal(img?.docker_image_ref, `${HOST}/hipache:latest@${d('c')}`);
    assert.equal(img?.docker_image_digest, d('c'));
    assert.equal(glance.images.size, 1);
    assert.match(
      formatReport(reports[0]),
      /^updated\s+hipache:latest sha256:aaaaaaaaaaaa -> sha256:cccccccccccc image /,
    );
  });

  it('reports removed tags and removed repositories, and deletes nothing', async () => {
    registry.set('app', 'v1', d('a'));
    registry.set('app', 'v2', d('b'));
    registry.set('old', 'v1', d('c'));
    await sync();
    registry.repos.get('app')?.delete('v1');
    registry.repos.delete('old');
    glance.calls = [];
    const reports = await sync();
    assert.deepEqual(actions(reports), ['unchanged app:v2', 'removed-upstream app:v1', 'removed-upstream old:v1']);
    assert.equal(glance.images.size, 3, 'kept in Glance');
    assert.deepEqual(glance.calls, ['list']);
    assert.match(
      formatReport(reports[1]!),
      /^removed-upstream app:v1 sha256:aaaaaaaaaaaa image img-\d+ \(kept in Glance\)$/,
    );
  });

  it('a repository whose tags cannot be listed is a failure, and its images are not taken for removed', async () => {
    registry.set('app', 'v1', d('a'));
    registry.set('other', 'v1', d('b'));
    await sync();
    registry.failTags.add('app');
    registry.set('other', 'v2', d('c'));
    const reports = await sync();
    assert.deepEqual(actions(reports), ['failed app', 'unchanged other:v1', 'created other:v2']);
    assert.match(reports[0]?.detail ?? '', /listing its tags: tags boom/);
  });

  it('a manifest that cannot be read fails that tag only; the repository is not swept for removals', async () => {
    registry.set('app', 'v1', d('a'));
    registry.set('app', 'v2', d('b'));
    await sync();
    registry.failManifest.add('app:v1');
    registry.repos.get('app')?.delete('v2');
    registry.set('app', 'v3', d('c'));
    const reports = await sync();
    // v2 is gone, but with v1 unknown the listing of app is incomplete: v2 waits for a clean pass
    assert.deepEqual(actions(reports), ['failed app:v1', 'created app:v3']);
  });

  it('leaves alone a same-named image it did not create', async () => {
    registry.set('hipache', 'latest', d('a'));
    glance.add({ id: 'hand-made', name: 'hipache:latest', container_format: 'docker' });
    const reports = await sync();
    assert.deepEqual(actions(reports), ['skipped hipache:latest']);
    assert.equal(reports[0]?.imageId, 'hand-made');
    assert.equal(glance.images.size, 1);
  });

  it('ignores synced images of another registry and of repositories outside --repo', async () => {
    registry.set('mine-1', 'v1', d('a'));
    registry.set('theirs', 'v1', d('b'));
    glance.add({
      id: 'elsewhere',
      name: 'x:v1',
      docker_image_ref: `registry.example:5000/x:v1@${d('e')}`,
      docker_image_digest: d('e'),
    });
    glance.add({
      id: 'theirs-old',
      name: 'gone:v1',
      docker_image_ref: `${HOST}/gone:v1@${d('f')}`,
      docker_image_digest: d('f'),
    });
    const reports = await sync({ repositories: ['mine-*'] });
    assert.deepEqual(actions(reports), ['created mine-1:v1']);
    assert.deepEqual(repoMatcher(['lab/*'])('lab/a/b'), true);
    assert.deepEqual(repoMatcher(['lab/*'])('labx'), false);
    assert.deepEqual(repoMatcher(['a.b'])('aXb'), false);
  });

  it('activates a synced record that an earlier pass left queued', async () => {
    registry.set('app', 'v1', d('a'));
    glance.add({
      id: 'q',
      name: 'app:v1',
      status: 'queued',
      docker_image_ref: `${HOST}/app:v1@${d('a')}`,
      docker_image_digest: d('a'),
    });
    const reports = await sync();
    assert.deepEqual(actions(reports), ['created app:v1']);
    assert.equal(glance.images.get('q')?.status, 'active');
    assert.match(reports[0]?.detail ?? '', /queued/);
  });

  it('a create Glance refuses is a failure of that tag; the others go on', async () => {
    registry.set('a', 'v1', d('a'));
    registry.set('b', 'v1', d('b'));
    glance.failCreate.add('a:v1');
    const reports = await sync();
    assert.deepEqual(actions(reports), ['failed a:v1', 'created b:v1']);
    assert.match(reports[0]?.detail ?? '', /glance says no/);
  });

  it('throws when the catalog cannot be read (nothing can be decided)', async () => {
    registry.failCatalog = true;
    await assert.rejects(sync(), UnavailableError);
    assert.deepEqual(glance.calls, []);
  });

  it('stops between steps once aborted', async () => {
    registry.set('a', 'v1', d('a'));
    const ac = new AbortController();
    ac.abort();
    assert.deepEqual(await sync({ signal: ac.signal }), []);
    assert.deepEqual(glance.calls, []);
  });

  describe('the run loop', () => {
    it('one-shot: a line per action, a summary, exit 0; 1 when an action failed or the pass failed', async () => {
      registry.set('a', 'v1', d('a'));
      const lines: string[] = [];
      const ac = new AbortController();
      const args = { watch: false, intervalS: 60, repositories: [], visibility: 'public' as const };
      assert.equal(await runSyncLoop({ registry, glance }, args, (l) => lines.push(l), nullLogger(), ac.signal), 0);
      assert.match(lines[0] ?? '', /^created\s+a:v1 /);
      assert.equal(
        lines[1],
        'registry-sync: 1 created, 0 unchanged, 0 updated, 0 removed-upstream, 0 skipped, 0 failed',
      );
      registry.failManifest.add('a:v1');
      assert.equal(await runSyncLoop({ registry, glance }, args, () => undefined, nullLogger(), ac.signal), 1);
      registry.failCatalog = true;
      lines.length = 0;
      assert.equal(await runSyncLoop({ registry, glance }, args, (l) => lines.push(l), nullLogger(), ac.signal), 1);
      assert.match(lines[0] ?? '', /^registry-sync: failed: registry down/);
    });

    it('watch: passes until aborted, exit 0; unchanged lines hidden, a removal printed once', async () => {
      registry.set('a', 'v1', d('a'));
      registry.set('a', 'v2', d('b'));
      const lines: string[] = [];
      const ac = new AbortController();
      let passes = 0;
      const counting: SyncRegistry = {
        host: HOST,
        listRepositories: () => {
          passes++;
          if (passes === 2) registry.repos.get('a')?.delete('v1');
          if (passes === 4) ac.abort();
          return registry.listRepositories();
        },
        listTags: (r) => registry.listTags(r),
        manifestInfo: (r, t) => registry.manifestInfo(r, t),
      };
      const args = { watch: true, intervalS: 0.01, repositories: [], visibility: 'public' as const };
      const code = await runSyncLoop(
        { registry: counting, glance },
        args,
        (l) => lines.push(l),
        nullLogger(),
        ac.signal,
      );
      assert.equal(code, 0);
      assert.equal(passes, 4);
      const body = lines.filter((l) => !l.startsWith('registry-sync:'));
      assert.deepEqual(
        body.map((l) => l.split(/\s+/).slice(0, 2).join(' ')),
        ['created a:v1', 'created a:v2', 'removed-upstream a:v1'],
      );
      assert.equal(lines.filter((l) => l.startsWith('registry-sync:')).length, 3, 'a summary per finished pass');
    });

    it('watch: a failed pass is reported and the loop goes on', async () => {
      registry.set('a', 'v1', d('a'));
      registry.failCatalog = true;
      const lines: string[] = [];
      const ac = new AbortController();
      const args = { watch: true, intervalS: 0.01, repositories: [], visibility: 'public' as const };
      const run = runSyncLoop({ registry, glance }, args, (l) => lines.push(l), nullLogger(), ac.signal);
      await new Promise((r) => setTimeout(r, 50));
      registry.failCatalog = false;
      await new Promise((r) => setTimeout(r, 50));
      ac.abort();
      assert.equal(await run, 0);
      assert.match(lines[0] ?? '', /pass failed: registry down/);
      assert.ok(lines.some((l) => /^created\s+a:v1/.test(l)));
    });
  });

  it('parses its command line', () => {
    assert.deepEqual(parseSyncArgs([]), { watch: false, intervalS: 60, repositories: [], visibility: 'public' });
    assert.deepEqual(
      parseSyncArgs(['--watch', '--interval', '5', '--repo', 'a*', '--repo=b', '--visibility=private']),
      {
        watch: true,
        intervalS: 5,
        repositories: ['a*', 'b'],
        visibility: 'private',
      },
    );
    assert.match(usageError(['--interval', '5']), /needs --watch/);
    assert.match(usageError(['--watch', '--interval', '0']), /positive number/);
    assert.match(usageError(['--watch', '--interval']), /positive number/);
    assert.match(usageError(['--visibility', 'everyone']), /must be one of/);
    assert.match(usageError(['--repo']), /needs a repository/);
    assert.match(usageError(['stray']), /unexpected argument stray/);
  });
});
