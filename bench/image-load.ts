/**
 * Image load from Glance: a ~200 MB docker-save tarball streamed
 * Glance → hash verify → archive filter → `docker load`, with the agent
 * process's peak RSS growth while it runs (sampled every 50 ms).
 *
 *   node dist/bench/image-load.js [N=3] [MB=200]
 *
 * Builds the image locally (busybox + one layer holding MB of random data;
 * no network), saves it, uploads it to Glance once, then runs N fresh loads
 * (the docker image removed before each), one cached call, and for reference
 * a plain `docker load -i` of the same file. Deletes the Glance image, the
 * docker images and the temp files at the end (also on failure).
 * Talks only to 127.0.0.1 (Keystone, Glance) and /var/run/docker.sock.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { DockerClient } from '../src/clients/docker/client.js';
import { GlanceClient } from '../src/clients/glance/client.js';
import { ImageService } from '../src/virt/docker/images.js';
import { imageMetaFromGlance } from '../src/virt/image-meta.js';
import { labServiceKeystone } from '../test/support/lab-env.js';
import { buildBigImage } from './support.js';

const N = Number(process.argv[2] ?? 3);
const MB = Number(process.argv[3] ?? 200);
const RUN = randomUUID().slice(0, 8);
const run = promisify(execFile);
const ENV = { ...process.env, PATH: '/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

async function sh(cmd: string, args: string[]): Promise<string> {
  const { stdout } = await run(cmd, args, { env: ENV, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

interface Sample {
  ms: number;
  peakRssGrowthMb: number;
}

/** Runs fn while sampling RSS every 50 ms; growth is against the RSS right before. */
async function withRss(fn: () => Promise<unknown>): Promise<Sample> {
  (globalThis as { gc?: () => void }).gc?.();
  const base = process.memoryUsage().rss;
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  const t0 = performance.now();
  try {
    await fn();
  } finally {
    clearInterval(timer);
  }
  const ms = performance.now() - t0;
  peak = Math.max(peak, process.memoryUsage().rss);
  return { ms, peakRssGrowthMb: (peak - base) / 2 ** 20 };
}

async function main(): Promise<void> {
  const docker = new DockerClient({ socketPath: '/var/run/docker.sock' });
  const ks = labServiceKeystone();
  const glance = new GlanceClient({ keystone: ks });
  const svc = new ImageService({ docker, glance });
  const dir = await mkdtemp(join(tmpdir(), 'nd-bench-image-'));
  const srcTag = `nd-bench/big-${RUN}:src`;
  let glanceId: string | undefined;
  let cacheRef: string | undefined;
  let smallId: string | undefined;
  let smallRef: string | undefined;
  try {
    // 1. build: busybox + MB of random data in a layer of its own.
    const t0 = performance.now();
    await buildBigImage(srcTag, MB, [`LABEL nd.bench=${RUN}`]);
    const tarFile = join(dir, 'big.tar');
    await sh('docker', ['save', '-o', tarFile, srcTag]);
    const imageId = await sh('docker', ['image', 'inspect', '--format', '{{.Id}}', srcTag]);
    await sh('docker', ['rmi', srcTag]);
    const { size } = await stat(tarFile);
    const sizeMb = size / 1e6;
    console.log(
      `built ${srcTag} (${imageId.slice(7, 19)}), tarball ${sizeMb.toFixed(1)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );

    // 2. upload once.
    const t1 = performance.now();
    const rec = await glance.createImage(undefined, {
      name: `nd-bench-image-${RUN}`,
      container_format: 'docker',
      disk_format: 'raw',
    });
    glanceId = rec.id;
    await glance.uploadImage(undefined, rec.id, createReadStream(tarFile), { size });
    const meta = imageMetaFromGlance(await glance.showImage(undefined, rec.id));
    const upSecs = (performance.now() - t1) / 1000;
    console.log(`uploaded to Glance ${rec.id}: ${upSecs.toFixed(1)} s, ${(sizeMb / upSecs).toFixed(0)} MB/s`);

    // Reference: plain `docker load` of the file from local disk.
    const tRef = performance.now();
    await sh('docker', ['load', '-q', '-i', tarFile]);
    const refSecs = (performance.now() - tRef) / 1000;
    await sh('docker', ['rmi', srcTag]);
    console.log(
      `reference: docker load -i (local file, CLI): ${refSecs.toFixed(2)} s, ${(sizeMb / refSecs).toFixed(0)} MB/s`,
    );

    // Warm-up (module code paths, JIT, connections) on a small image, so the first
    // measured load is not charged for one-time costs.
    const small = join(dir, 'small.tar');
    const smallTag = `nd-bench/small-${RUN}:src`;
    const scid = await sh('docker', ['create', 'busybox:latest']);
    try {
      await sh('docker', ['commit', '--change', `LABEL nd.bench=${RUN}-small`, scid, smallTag]);
    } finally {
      await sh('docker', ['rm', scid]);
    }
    await sh('docker', ['save', '-o', small, smallTag]);
    await sh('docker', ['rmi', smallTag]);
    const srec = await glance.createImage(undefined, {
      name: `nd-bench-small-${RUN}`,
      container_format: 'docker',
      disk_format: 'raw',
    });
    smallId = srec.id;
    await glance.uploadImage(undefined, srec.id, createReadStream(small), { size: (await stat(small)).size });
    smallRef = (await svc.ensureImage({}, imageMetaFromGlance(await glance.showImage(undefined, srec.id)))).dockerRef;

    // 3. fresh loads from Glance.
    const samples: Sample[] = [];
    for (let i = 0; i < N; i++) {
      if (cacheRef) await docker.removeImage(cacheRef);
      if (await docker.inspectImage(imageId)) throw new Error(`${imageId} still present before load ${i + 1}`);
      let ref = '';
      const s = await withRss(async () => {
        ref = (await svc.ensureImage({}, meta)).dockerRef;
      });
      cacheRef = ref;
      samples.push(s);
      console.log(
        `ensureImage from Glance #${i + 1}: ${(s.ms / 1000).toFixed(2)} s, ${(sizeMb / (s.ms / 1000)).toFixed(0)} MB/s, ` +
          `peak RSS growth ${s.peakRssGrowthMb.toFixed(1)} MB (rss now ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB)`,
      );
    }
    const cached = await withRss(() => svc.ensureImage({}, meta));
    console.log(`ensureImage cached: ${cached.ms.toFixed(1)} ms`);
    const secs = samples.map((s) => s.ms / 1000).sort((a, b) => a - b);
    const med = secs[Math.floor(secs.length / 2)] ?? NaN;
    const peak = Math.max(...samples.map((s) => s.peakRssGrowthMb));
    const growths = samples.map((s) => s.peakRssGrowthMb).sort((a, b) => a - b);
    const medGrowth = growths[Math.floor(growths.length / 2)] ?? NaN;
    console.log(
      `SUMMARY image-load: ${sizeMb.toFixed(0)} MB tarball, median ${med.toFixed(2)} s (${(sizeMb / med).toFixed(0)} MB/s), ` +
        `peak RSS growth median ${medGrowth.toFixed(1)} MB / max ${peak.toFixed(1)} MB, cached ${cached.ms.toFixed(1)} ms, docker load -i ${refSecs.toFixed(2)} s`,
    );
  } finally {
    if (cacheRef) await docker.removeImage(cacheRef).catch(() => undefined);
    if (smallRef) await docker.removeImage(smallRef).catch(() => undefined);
    if (smallId) await glance.deleteImage(undefined, smallId).catch(() => undefined);
    await docker.removeImage(srcTag).catch(() => undefined);
    if (glanceId) await glance.deleteImage(undefined, glanceId).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
