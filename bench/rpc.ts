/**
 * bench/rpc: oslo.messaging call round trip p50/p99, TS→TS (our client and
 * server) and Python→Python (oslo.messaging both ends) on the same broker, in
 * one run. Usage: node dist/bench/rpc.js [N=2000]
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import { nullLogger } from '../src/common/log.js';
import { adminContext } from '../src/rpc/context.js';
import { DEFAULT_QUEUE_FLAGS } from '../src/rpc/flags.js';
import { Messaging, type MessagingOptions } from '../src/rpc/messaging.js';

const N = Number(process.argv[2] ?? 2000);
const USER = process.env.NOVA_DOCKER_TEST_RABBIT_USER ?? 'openstack';
const PASS = process.env.NOVA_DOCKER_TEST_RABBIT_PASS ?? 'labrabbit';
const TRANSPORT_URL = `rabbit://${USER}:${PASS}@127.0.0.1:5672/`;

function options(): MessagingOptions {
  return {
    hosts: [{ host: '127.0.0.1', port: 5672, username: USER, password: PASS }],
    virtualHost: '/',
    heartbeatS: 60,
    retryIntervalS: 1,
    retryBackoffS: 2,
    retryMaxS: 30,
    connectionName: 'nova-docker-bench',
    logger: nullLogger(),
    exchange: 'nova',
    flags: DEFAULT_QUEUE_FLAGS,
    rpcResponseTimeoutS: 60,
    maxMessageBytes: 16 * 1024 * 1024,
  };
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function tsToTs(n: number): Promise<{ p50: number; p99: number }> {
  const topic = `ndbench_ts_${randomUUID().slice(0, 8)}`;
  const server = new Messaging(options());
  await server.start();
  await server.server(topic, 'bench', [{ namespace: null, version: '6.1', methods: { echo: (_c, a) => a } }]);
  const client = new Messaging(options());
  await client.start();
  const rpc = client.client(topic);
  const ctx = adminContext();
  const payload = { instance_uuid: randomUUID(), data: 'x'.repeat(512) };
  for (let i = 0; i < 20; i++) await rpc.call(ctx, 'echo', payload, { server: 'bench', version: '6.0' });
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await rpc.call(ctx, 'echo', payload, { server: 'bench', version: '6.0' });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  await server.transport.deleteQueue(topic);
  await server.transport.deleteQueue(`${topic}.bench`);
  await client.close();
  await server.close();
  return { p50: pct(times, 50), p99: pct(times, 99) };
}

function pyToPy(n: number): { p50: number; p99: number; topic: string } {
  const script = fileURLToPath(new URL('../../bench/oslo_rpc_bench.py', import.meta.url));
  const out = execFileSync('/usr/bin/python3', [script, String(n), TRANSPORT_URL], {
    env: { ...process.env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    encoding: 'utf8',
  });
  const r = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { p50_ms: number; p99_ms: number; topic: string };
  return { p50: r.p50_ms, p99: r.p99_ms, topic: r.topic };
}

async function main(): Promise<void> {
  const ts = await tsToTs(N);
  const py = pyToPy(N);
  // the Python side leaves its topic queues behind, as nova does: remove them
  const cleaner = new Messaging(options());
  await cleaner.start();
  await cleaner.transport.deleteQueue(py.topic);
  await cleaner.transport.deleteQueue(`${py.topic}.bench`);
  await cleaner.close();
  const f = (x: number): string => x.toFixed(2).padStart(8);
  console.log(`rpc call round trip, ${N} sequential calls, 512-byte payload, one broker (127.0.0.1)`);
  console.log(`                     p50 ms   p99 ms`);
  console.log(`TS → TS (ours)     ${f(ts.p50)} ${f(ts.p99)}`);
  console.log(`Python → Python    ${f(py.p50)} ${f(py.p99)}`);
  console.log(`ratio TS/Python    ${f(ts.p50 / py.p50)} ${f(ts.p99 / py.p99)}`);
}

await main();
