/**
 * End to end, the registry flow: an image pushed to the lab registry
 * (127.0.0.1:5042) and registered in Glance under the name `<repo>:tag` (or
 * with the property `docker_image_ref`) is pulled from the registry, not
 * loaded from the Glance data, when the stock `nova boot` boots it.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { RegistryClient } from '../../src/clients/registry/index.js';
import { pollUntil } from '../../src/common/poll.js';
import { LAB_ENDPOINTS } from '../support/lab-env.js';
import {
  consumerAllocations,
  createGlanceImage,
  docker,
  hostContainers,
  novaBoot,
  openstackJson,
  pushToRegistry,
  registryLogOffset,
  registryLogSince,
  useE2eLab,
  waitServer,
} from '../support/lab.js';

const HOST = 'nova-docker-e2e-reg';
const REGISTRY = LAB_ENDPOINTS.registry;

/** An ACTIVE Glance image (container_format docker) whose data is empty: only a registry can provide it. */
async function emptyImage(name: string, extra: string[] = []): Promise<string> {
  const id = await createGlanceImage(name, '/dev/null', extra);
  // the CLI prints the record before its (empty) upload finishes
  const img = await pollUntil(
    async () => {
      const i = await openstackJson<{ status: string; size: number | null }>(['image', 'show', id]);
      return i.status === 'active' ? i : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: `image ${id} active` },
  );
  assert.equal(img.size, 0);
  return id;
}

async function localImageId(ref: string): Promise<string | undefined> {
  return await docker(['image', 'inspect', '--format', '{{.Id}}', ref]).catch(() => undefined);
}

describe('e2e: registry images through Glance names and docker_image_ref', function () {
  this.timeout(600_000);
  const lab = useE2eLab(HOST);
  const registry = new RegistryClient({ url: REGISTRY });

  /** Pushes busybox:latest as REGISTRY/repo:tag, then drops the local tag so only a pull can bring it back. */
  async function push(repo: string, tag: string): Promise<void> {
    const ref = `${REGISTRY}/${repo}:${tag}`;
    lab.cleanup.defer(async () => {
      await docker(['rmi', ref]).catch(() => undefined);
      const digest = await registry.manifestDigest(repo, tag);
      if (digest) await registry.deleteManifest(repo, digest);
    });
    await pushToRegistry('busybox:latest', repo, tag);
    assert.equal(await localImageId(ref), undefined, `${ref} is not present locally before the boot`);
    assert.ok(await registry.manifestDigest(repo, tag), `${repo}:${tag} is in the registry`);
  }

  /** Boots `nova boot --image IMAGE_ARG`; checks it runs REGISTRY/repo:tag, pulled from the registry; deletes it. */
  async function bootAndCheck(imageArg: string, glanceId: string, repo: string, tag: string): Promise<void> {
    const ref = `${REGISTRY}/${repo}:${tag}`;
    const logFrom = registryLogOffset();
    const id = lab.cleanup.server(await novaBoot(imageArg, HOST, `nd-e2e-reg-${randomUUID().slice(0, 6)}`));
    const s = await waitServer(id, (x) => ['ACTIVE', 'ERROR'].includes(x.status), 'ACTIVE or ERROR');
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
    assert.equal(s['OS-EXT-SRV-ATTR:host'], HOST);

    // the container runs the registry reference, with the image's command
    const [image, state, cmd] = (
      await docker(['inspect', '--format', '{{.Config.Image}}|{{.State.Status}}|{{json .Config.Cmd}}', `nova-${id}`])
    ).split('|');
    assert.equal(image, ref, 'the container runs the registry reference');
    assert.equal(state, 'running');
    assert.match(cmd ?? '', /sleep.*3600/);
    // the pull brought the reference back, and the Glance data was not loaded
    assert.ok(await localImageId(ref), `${ref} was pulled`);
    assert.equal(
      await docker(['images', '--format', '{{.Repository}}:{{.Tag}}', `nova-glance/${glanceId}`]),
      '',
      'no Glance cache tag: the data was not downloaded',
    );
    const log = registryLogSince(logFrom);
    if (log) {
      const hits = log.filter((l) => new RegExp(`"(GET|HEAD) /v2/${repo}/manifests/${tag} HTTP/[0-9.]+" 200 `).test(l));
      assert.ok(hits.length >= 1, `the registry served the manifest of ${repo}:${tag}:\n${log.join('\n')}`);
    }
    assert.equal((await consumerAllocations(id)).length, 1);

    await lab.deleteAndCheck(id);
  }

  it('a Glance image named `<repo>:latest` boots by pulling REGISTRY/<repo>:latest (nova boot, by name)', async () => {
    const repo = `docker-busybox-${randomUUID().slice(0, 8)}`;
    await push(repo, 'latest');
    // Nova boots only ACTIVE images: the record carries the same image's `docker save` as data (a fallback
    // the agent must not need here)
    const name = `${repo}:latest`;
    const glanceId = await lab.uploadImage(name, 'busybox:latest');
    // Glance v2 reads `name=a:b` as operator `a` (HTTP 400 "Unable to filter by unknown operator"),
    // so the stock CLIs cannot look `<repo>:latest` up by its bare name; `eq:` is Glance's explicit equality.
    await bootAndCheck(`eq:${name}`, glanceId, repo, 'latest');
  });

  it('docker_image_ref names the registry image; an ACTIVE Glance image without data boots from the registry alone', async () => {
    const repo = `docker-busybox-${randomUUID().slice(0, 8)}`;
    await push(repo, 'v1');
    const glanceId = await emptyImage(`nd-ref-${randomUUID().slice(0, 8)}`, [
      '--property',
      `docker_image_ref=${repo}:v1`,
    ]);
    lab.cleanup.image(glanceId);
    await bootAndCheck(glanceId, glanceId, repo, 'v1');
  });

  it('a registry reference that cannot be pulled, with no Glance data, ends in ERROR with a fault naming the pull', async () => {
    const repo = `docker-missing-${randomUUID().slice(0, 8)}`;
    const name = `${repo}:latest`;
    const glanceId = await emptyImage(name);
    lab.cleanup.image(glanceId);
    const id = lab.cleanup.server(await novaBoot(`eq:${name}`, HOST, `nd-e2e-reg-bad-${randomUUID().slice(0, 6)}`));
    const s = await waitServer(id, (x) => ['ACTIVE', 'ERROR'].includes(x.status), 'ACTIVE or ERROR');
    assert.equal(s.status, 'ERROR', JSON.stringify(s));
    assert.match(
      String(s.fault?.message),
      new RegExp(`pull of ${REGISTRY}/${repo}:latest failed`),
      String(s.fault?.message),
    );
    assert.deepEqual(await hostContainers(HOST), [], 'no container');
    assert.deepEqual(await consumerAllocations(id), [], 'allocations removed');
    await lab.deleteServer(id);
  });
});
