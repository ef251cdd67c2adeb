/**
 * The snapshot pipeline's pure parts (the commit's config, the Glance
 * record's patch, the repository name) and the pipeline's failure paths
 * that a real dockerd cannot be made to produce (a save that breaks off),
 * over a stub Engine and Glance.
 */
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import type { CommitContainerOptions, DockerContainerInspect } from '../../../src/clients/docker/types.js';
import { httpErrorFor } from '../../../src/clients/errors.js';
import type { GlanceImage, ImagePatchOp } from '../../../src/clients/glance/client.js';
import { AgentError, NovaError } from '../../../src/common/errors.js';
import { nullLogger } from '../../../src/common/log.js';
import { LABELS } from '../../../src/virt/docker/labels.js';
import { LifecycleJournal } from '../../../src/virt/docker/lifecycle-journal.js';
import {
  SNAPSHOT_REPO,
  SnapshotPipeline,
  dockerPathComponent,
  snapshotConfig,
  snapshotPatch,
  type SnapshotDocker,
  type SnapshotGlance,
} from '../../../src/virt/docker/snapshot.js';
import { ctx, makeInstance } from '../../contract/driver.contract.js';
import { runningContainer } from '../../support/docker-inspect.js';

const HOST = 'snapshot-unit';

function container(labels: Record<string, string>, env: string[] | null): DockerContainerInspect {
  return runningContainer({ Id: 'c0ffee', Name: '/nova-x', Config: { Labels: labels, Env: env } });
}

describe('virt/docker snapshot', () => {
  it("snapshotConfig blanks the driver's labels, the extra labels and the metadata env, nothing else", () => {
    const c = container(
      { [LABELS.instanceUuid]: 'u1', [LABELS.host]: 'h', 'test-run': 'r1', 'org.example.app': 'web' },
      ['PATH=/bin', 'NOVA_META_role=db', 'NOVA_META_EMPTY'],
    );
    assert.deepEqual(snapshotConfig(c, { 'test-run': 'r1' }), {
      labels: { [LABELS.instanceUuid]: '', [LABELS.host]: '', 'test-run': '' },
      env: ['NOVA_META_role=', 'NOVA_META_EMPTY='],
    });
    assert.deepEqual(snapshotConfig(container({}, null), {}), { labels: {} }, 'no env override without metadata env');
  });

  it('snapshotPatch: docker/raw, snapshot properties, owner, and drops an inherited docker_image_ref', () => {
    const instance = makeInstance(HOST, { project_id: 'p1' });
    const base: GlanceImage = { id: 'i1' };
    assert.deepEqual(snapshotPatch(base, instance), [
      { op: 'add', path: '/container_format', value: 'docker' },
      { op: 'add', path: '/disk_format', value: 'raw' },
      { op: 'add', path: '/image_location', value: 'snapshot' },
      { op: 'add', path: '/image_state', value: 'available' },
      { op: 'add', path: '/owner_id', value: 'p1' },
    ]);
    const inherited = snapshotPatch({ id: 'i1', docker_image_ref: 'busybox:latest' }, { ...instance, project_id: '' });
    assert.deepEqual(inherited.at(-1), { op: 'remove', path: '/docker_image_ref' });
    assert.ok(!inherited.some((o) => o.path === '/owner_id'));
  });

  it('dockerPathComponent makes any Glance id a repository path component', () => {
    assert.equal(dockerPathComponent('6B0E-aa'), '6b0e-aa');
    assert.equal(dockerPathComponent('__a..b//c__'), 'a-b-c');
    assert.equal(dockerPathComponent('***'), 'image');
  });

  describe('SnapshotPipeline', () => {
    const imageId = 'img-1';
    let removed: string[];
    let commits: CommitContainerOptions[];
    let states: string[];

    function pipelineWith(save: () => Promise<Readable>, glance: Partial<SnapshotGlance> = {}): SnapshotPipeline {
      const docker: SnapshotDocker = {
        commitContainer: (_id, opts = {}) => {
          commits.push(opts);
          return Promise.resolve('sha256:1');
        },
        saveImage: save,
        removeImage: (ref) => {
          removed.push(ref);
          return Promise.resolve(true);
        },
      };
      const g: SnapshotGlance = {
        showImage: (_c, id) => Promise.resolve({ id }),
        updateImage: (_c, id, _ops: readonly ImagePatchOp[]) => Promise.resolve({ id }),
        uploadImage: async (_c, _id, data) => {
          for await (const _chunk of data) void _chunk;
        },
        ...glance,
      };
      return new SnapshotPipeline(
        docker,
        g,
        new LifecycleJournal(undefined, nullLogger()),
        { host: HOST, extraLabels: {} },
        nullLogger(),
      );
    }
    const take = (p: SnapshotPipeline): Promise<void> =>
      p.take(ctx, makeInstance(HOST), container({}, null), imageId, (s) => {
        states.push(s);
      });

    beforeEach(() => {
      removed = [];
      commits = [];
      states = [];
    });

    it('commits, uploads and removes the intermediate image', async () => {
      await take(pipelineWith(() => Promise.resolve(Readable.from([Buffer.from('tar')]))));
      assert.deepEqual(states, ['image_pending_upload', 'image_uploading']);
      assert.equal(commits[0]?.repo, `${SNAPSHOT_REPO}/${imageId}`);
      assert.deepEqual(removed, [`${SNAPSHOT_REPO}/${imageId}:upload`]);
    });

    it('a save that breaks off fails the snapshot as such, and the committed image is removed', async () => {
      const save = (): Promise<Readable> => {
        const s = new PassThrough();
        s.write(Buffer.alloc(10));
        setImmediate(() => s.destroy(new Error('unexpected EOF')));
        return Promise.resolve(s);
      };
      await assert.rejects(take(pipelineWith(save)), (err: unknown) => {
        assert.ok(err instanceof AgentError, String(err));
        assert.match(
          err.message,
          /docker save of nova-snapshot\/img-1:upload broke off after 10 bytes: unexpected EOF/,
        );
        return true;
      });
      assert.deepEqual(removed, [`${SNAPSHOT_REPO}/${imageId}:upload`]);
    });

    it('the Glance image deleted meanwhile is ImageNotFound, before anything is committed', async () => {
      const gone = httpErrorFor({ service: 'glance', method: 'GET', path: `/v2/images/${imageId}`, status: 404 });
      const p = pipelineWith(() => Promise.reject(new Error('not reached')), { showImage: () => Promise.reject(gone) });
      await assert.rejects(take(p), (err: unknown) => err instanceof NovaError && err.novaClass === 'ImageNotFound');
      assert.deepEqual(commits, []);
      assert.deepEqual(removed, []);
    });
  });
});
