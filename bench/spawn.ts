/**
 * Spawn latency: raw Engine API create+start of busybox (network none) vs
 * DockerDriver.spawn with the image already present (LocalImageResolver: one
 * inspect), with the early-exit watch off and at its default.
 *
 *   node dist/bench/spawn.js [N=20]
 *
 * Talks only to /var/run/docker.sock. Every container carries a bench label
 * and is removed at the end (also on failure).
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { DockerClient } from '../src/clients/docker/client.js';
import { DockerDriver } from '../src/virt/docker/driver.js';
import { LocalImageResolver } from '../src/virt/docker/image-resolver.js';
import type { InstanceSpec } from '../src/virt/types.js';

const N = Number(process.argv[2] ?? 20);
const RUN = randomUUID().slice(0, 8);
const LABEL = 'org.openstack.nova.bench-run';
const HOST = `bench-${RUN}`;
const docker = new DockerClient({ socketPath: '/var/run/docker.sock' });

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function cleanup(): Promise<void> {
  const list = await docker.listContainers({ all: true, filters: { label: [`${LABEL}=${RUN}`] } });
  await Promise.all(list.map((c) => docker.removeContainer(c.Id, { force: true, v: true })));
}

interface Variant {
  what: string;
  once: (i: number) => Promise<void>;
  ms: number[];
}

/** Round-robin over the variants (so load drift hits all alike), removing each container untimed. */
async function measure(variants: Variant[]): Promise<void> {
  for (let i = 0; i < N; i++) {
    for (const v of variants) {
      const t0 = performance.now();
      await v.once(i);
      v.ms.push(performance.now() - t0);
      await cleanup();
    }
  }
}

function report(v: Variant): { p50: number; p95: number } {
  const ms = [...v.ms].sort((a, b) => a - b);
  const r = { p50: pct(ms, 50), p95: pct(ms, 95) };
  console.log(`${v.what.padEnd(46)} p50 ${r.p50.toFixed(1).padStart(7)} ms   p95 ${r.p95.toFixed(1).padStart(7)} ms`);
  return r;
}

function instance(): InstanceSpec {
  return {
    uuid: randomUUID(),
    hostname: 'bench',
    host: HOST,
    metadata: {},
    flavor: {
      flavorid: '1',
      name: 'm1.tiny',
      memory_mb: 64,
      vcpus: 1,
      root_gb: 1,
      ephemeral_gb: 0,
      swap: 0,
      extra_specs: {},
    },
  };
}

async function main(): Promise<void> {
  console.log(`spawn bench: N=${N}, engine ${(await docker.version()).Version}, image busybox:latest (cached)`);
  const resolver = new LocalImageResolver(docker);
  const image = { id: randomUUID(), name: 'busybox:latest', properties: {} };
  const driver = (spawnCheckMs?: number) =>
    new DockerDriver(docker, resolver, {
      host: HOST,
      extraLabels: { [LABEL]: RUN },
      ...(spawnCheckMs === undefined ? {} : { spawnCheckMs }),
    });
  const noCheck = driver(0);
  const withCheck = driver();
  const raw: Variant = {
    what: 'raw Engine API create+start',
    ms: [],
    once: async (i) => {
      const c = await docker.createContainer(`bench-raw-${RUN}-${i}`, {
        Image: 'busybox:latest',
        Labels: { [LABEL]: RUN },
        HostConfig: { NetworkMode: 'none' },
      });
      await docker.startContainer(c.Id);
    },
  };
  const fast: Variant = {
    what: 'DockerDriver.spawn (spawnCheckMs=0)',
    ms: [],
    once: () => noCheck.spawn({}, instance(), image, [], undefined, undefined, []),
  };
  const dflt: Variant = {
    what: 'DockerDriver.spawn (default spawnCheckMs=100)',
    ms: [],
    once: () => withCheck.spawn({}, instance(), image, [], undefined, undefined, []),
  };
  try {
    await measure([raw, fast, dflt]);
    const r = report(raw);
    const f = report(fast);
    const d = report(dflt);
    console.log(
      `ratio driver/raw p50: ${(f.p50 / r.p50).toFixed(2)}x (check off), ${(d.p50 / r.p50).toFixed(2)}x (default)`,
    );
    console.log(
      `ratio driver/raw p95: ${(f.p95 / r.p95).toFixed(2)}x (check off), ${(d.p95 / r.p95).toFixed(2)}x (default)`,
    );
  } finally {
    await cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
