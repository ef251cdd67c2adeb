/**
 * End to end, registry → Glance: `nova-docker registry-sync` registers a tag
 * pushed to the lab registry (127.0.0.1:5042) as an empty ACTIVE Glance image
 * that the stock `nova boot` boots on our agent by pulling from the registry;
 * re-runs are idempotent, a moved tag updates the image, a deleted tag is
 * reported and the image kept; `--watch` stops cleanly on SIGTERM.
 *
 * Every run passes `--repo <this test's repository>`: the lab registry is
 * shared, and syncing other tests' repositories would give their Glance names
 * a second image (and their `nova boot --image eq:<name>` two matches).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient } from '../../src/clients/registry/index.js';
import { pollUntil } from '../../src/common/poll.js';
import { execFileP, REPO_ROOT, SYSTEM_ENV } from '../support/broker.js';
import { LAB_ENDPOINTS } from '../support/lab-env.js';
import {
  consumerAllocations,
  docker,
  hostContainers,
  labNovaConf,
  novaBoot,
  openstack,
  openstackJson,
  pushToRegistry,
  removeGlanceCacheTags,
  registryLogOffset,
  registryLogSince,
  useE2eLab,
  waitServer,
} from '../support/lab.js';

const HOST = 'nd-regsync-e2e';
const REGISTRY = LAB_ENDPOINTS.registry;
const CLI = join(REPO_ROOT, 'dist/src/cli.js');

interface GlanceShow {
  id: string;
  name: string;
  status: string;
  size: number | null;
  container_format: string;
  disk_format: string;
  visibility: string;
  properties: Record<string, unknown>;
}

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout lines without the summary. */
  actions: string[];
  summary: string;
}

describe('e2e: registry-sync (registry → Glance → nova boot)', function () {
  this.timeout(600_000);
  const repo = `nd-regsync-${randomUUID().slice(0, 8)}`;
  const name = `${repo}:v1`;
  const registry = new RegistryClient({ url: REGISTRY });
  const lab = useE2eLab(HOST);
  let conf: string;
  let imageId: string | undefined;
  let digest: string | undefined;

  async function sync(...extra: string[]): Promise<CliRun> {
    const { code, stdout, stderr } = await execFileP(
      process.execPath,
      [CLI, 'registry-sync', '--config-file', conf, '--repo', repo, ...extra],
      { env: SYSTEM_ENV, timeout: 120_000 },
    ).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({
        code: typeof e.code === 'number' ? e.code : -1,
        stdout: e.stdout ?? '',
        stderr: e.stderr ?? '',
      }),
    );
    const lines = stdout.split('\n').filter(Boolean);
    return {
      code,
      stdout,
      stderr,
      actions: lines.filter((l) => !l.startsWith('registry-sync:')),
      summary: lines.find((l) => l.startsWith('registry-sync:')) ?? '',
    };
  }

  /** Glance images named `name` (the stock CLI cannot filter on a name holding ':' without `eq:`). */
  async function imagesNamed(n: string): Promise<string[]> {
    const all = await openstackJson<Array<{ ID: string; Name: string }>>(['image', 'list']);
    return all.filter((i) => i.Name === n).map((i) => i.ID);
  }

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nd-regsync-'));
    lab.cleanup.defer(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    conf = join(dir, 'nova.conf');
    writeFileSync(conf, labNovaConf(HOST));
    lab.cleanup.defer(async () => {
      // pulled by digest, the local copy is known by repo@digest only; never by image id, which busybox:latest shares
      const local = await docker([
        'images',
        '--digests',
        '--format',
        '{{.Repository}}@{{.Digest}}',
        `${REGISTRY}/${repo}`,
      ]).catch(() => '');
      for (const ref of new Set(local.split('\n').filter((l) => /@sha256:[0-9a-f]{64}$/.test(l)))) {
        await docker(['rmi', ref]).catch(() => undefined);
      }
      for (const tag of await registry.listTags(repo).catch(() => [])) {
        const d = await registry.manifestDigest(repo, tag).catch(() => undefined);
        if (d) await registry.deleteManifest(repo, d).catch(() => undefined);
      }
    });
    // the images registry-sync creates are found by name (a failed test may not have read their id)
    lab.cleanup.defer(async () => {
      for (const id of await imagesNamed(name)) {
        await openstack(['image', 'delete', id]).catch(() => undefined);
        await removeGlanceCacheTags(id);
      }
    });
    await pushToRegistry('busybox:latest', repo, 'v1');
    digest = await registry.manifestDigest(repo, 'v1');
    assert.ok(digest, `${REGISTRY}/${repo}:v1 is in the registry`);
  });

  it('creates an empty ACTIVE Glance image named repo:tag that carries the pinned registry reference', async () => {
    const started = Date.now();
    const run = await sync();
    const secs = (Date.now() - started) / 1000;
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.actions.length, 1, run.stdout);
    const m = new RegExp(`^created\\s+${name} sha256:[0-9a-f]{12} image ([0-9a-f-]{36})$`).exec(run.actions[0] ?? '');
    assert.ok(m?.[1], run.stdout);
    imageId = m[1];
    assert.equal(
      run.summary,
      'registry-sync: 1 created, 0 unchanged, 0 updated, 0 removed-upstream, 0 skipped, 0 failed',
    );
    const img = await openstackJson<GlanceShow>(['image', 'show', imageId]);
    assert.equal(img.name, name);
    assert.equal(img.status, 'active');
    assert.equal(img.size, 0, 'no data uploaded');
    assert.equal(img.container_format, 'docker');
    assert.equal(img.disk_format, 'raw');
    assert.equal(img.visibility, 'public');
    assert.equal(img.properties.docker_image_ref, `${REGISTRY}/${repo}:v1@${digest}`);
    assert.equal(img.properties.docker_image_digest, digest);
    assert.deepEqual(await imagesNamed(name), [imageId]);
    console.log(`      registry-sync one-shot (create): ${secs.toFixed(2)} s`);
  });

  it('re-running changes nothing', async () => {
    const started = Date.now();
    const run = await sync();
    const secs = (Date.now() - started) / 1000;
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.actions, [`${'unchanged'.padEnd(16)} ${name} ${digest?.slice(0, 19)} image ${imageId}`]);
    assert.match(run.summary, /: 0 created, 1 unchanged, 0 updated/);
    assert.deepEqual(await imagesNamed(name), [imageId], 'no second image');
    console.log(`      registry-sync one-shot (unchanged): ${secs.toFixed(2)} s`);
  });

  it('nova boot --image eq:<repo>:<tag> pulls it from the registry and goes ACTIVE on our agent', async () => {
    assert.ok(imageId && digest);
    const logFrom = registryLogOffset();
    // novaclient looks names up with GET /v2/images?name=<name>, and Glance reads `a:b` as operator `a`:
    // the plain name is refused (HTTP 400), `eq:` is Glance's explicit equality.
    await assert.rejects(novaBoot(name, HOST, 'x'), /unknown operator|HTTP 400/);
    const id = lab.cleanup.server(await novaBoot(`eq:${name}`, HOST, `nd-regsync-${randomUUID().slice(0, 6)}`));
    const s = await waitServer(id, (x) => ['ACTIVE', 'ERROR'].includes(x.status), 'ACTIVE or ERROR');
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
    assert.equal(s['OS-EXT-SRV-ATTR:host'], HOST);

    const [image, state, cmd] = (
      await docker(['inspect', '--format', '{{.Config.Image}}|{{.State.Status}}|{{json .Config.Cmd}}', `nova-${id}`])
    ).split('|');
    assert.equal(image, `${REGISTRY}/${repo}@${digest}`, 'the container runs the synced manifest, pinned');
    assert.equal(state, 'running');
    assert.match(cmd ?? '', /sleep.*3600/);
    assert.equal(
      await docker(['images', '--format', '{{.Repository}}:{{.Tag}}', `nova-glance/${imageId}`]),
      '',
      'nothing was loaded from Glance',
    );
    const log = registryLogSince(logFrom)?.join('\n');
    if (log !== undefined) {
      assert.match(log, new RegExp(`"(GET|HEAD) /v2/${repo}/manifests/${digest} HTTP/[0-9.]+" 200 `), log);
    }
    assert.equal((await consumerAllocations(id)).length, 1);

    await lab.deleteServer(id);
    assert.deepEqual(await hostContainers(HOST), [], 'container removed');
  });

  it('a tag pushed again with other content updates the same image', async () => {
    await pushToRegistry('lab/httpd:latest', repo, 'v1');
    const moved = await registry.manifestDigest(repo, 'v1');
    assert.ok(moved && moved !== digest, 'the tag moved');
    const run = await sync();
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.actions, [
      `${'updated'.padEnd(16)} ${name} ${digest?.slice(0, 19)} -> ${moved.slice(0, 19)} image ${imageId}`,
    ]);
    const img = await openstackJson<GlanceShow>(['image', 'show', imageId ?? '']);
    assert.equal(img.properties.docker_image_ref, `${REGISTRY}/${repo}:v1@${moved}`);
    assert.equal(img.properties.docker_image_digest, moved);
    assert.equal(img.status, 'active');
    assert.deepEqual(await imagesNamed(name), [imageId]);
    digest = moved;
  });

  it('a tag deleted from the registry is reported removed upstream; its Glance image is kept', async () => {
    assert.ok(digest);
    assert.equal(await registry.deleteManifest(repo, digest), true, 'the lab registry allows deletes');
    assert.deepEqual(await registry.listTags(repo), []);
    const run = await sync();
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(run.actions, [
      `${'removed-upstream'.padEnd(16)} ${name} ${digest.slice(0, 19)} image ${imageId} (kept in Glance)`,
    ]);
    assert.match(run.summary, /0 created, 0 unchanged, 0 updated, 1 removed-upstream, 0 skipped, 0 failed$/);
    assert.match(run.stderr, /WARNING nova_docker\.registry_sync .*removed-upstream/, 'logged too');
    const img = await openstackJson<GlanceShow>(['image', 'show', imageId ?? '']);
    assert.equal(img.status, 'active');
  });

  it('--watch repeats every interval and exits 0 on SIGTERM', async () => {
    const proc = spawn(
      process.execPath,
      [CLI, 'registry-sync', '--config-file', conf, '--repo', repo, '--watch', '--interval', '1'],
      { stdio: ['ignore', 'pipe', 'pipe'], env: SYSTEM_ENV },
    );
    let out = '';
    let err = '';
    proc.stdout.on('data', (b: Buffer) => (out += b.toString()));
    proc.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    try {
      await pollUntil(() => ((out.match(/^registry-sync: /gm) ?? []).length >= 2 ? true : undefined), {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: 'two watch passes',
      });
    } finally {
      proc.kill('SIGTERM');
    }
    const t0 = Date.now();
    assert.equal(await exited, 0, err);
    assert.ok(Date.now() - t0 < 15_000, 'stops promptly');
    // the removal is printed once, not on every pass
    assert.equal((out.match(/^removed-upstream /gm) ?? []).length, 1, out);
    assert.match(err, /Caught SIGTERM/);
  });
});
