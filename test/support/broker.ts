/** Test helpers for the real RabbitMQ (loopback only). */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createLogger, nullLogger, type Logger } from '../../src/common/log.js';
import { DEFAULT_QUEUE_FLAGS } from '../../src/rpc/flags.js';
import { Messaging, type MessagingOptions } from '../../src/rpc/messaging.js';

export const execFileP = promisify(execFile);

/** The lab broker (scripts/rabbitmq-up.sh and ../shared/lab use the same credentials). */
export const BROKER = {
  host: '127.0.0.1',
  port: 5672,
  username: process.env.NOVA_DOCKER_TEST_RABBIT_USER ?? 'openstack',
  password: process.env.NOVA_DOCKER_TEST_RABBIT_PASS ?? 'labrabbit',
};
export const RABBIT_NODE = process.env.RABBITMQ_NODENAME ?? 'rabbit@localhost';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const OSLO_PEER = `${REPO_ROOT}../shared/lab/oslo-rpc-peer.py`;
/** Debian's python: pyenv's has no oslo modules. */
export const SYSTEM_ENV = { ...process.env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

export function uniqueTopic(prefix = 'ndtest'): string {
  return `${prefix}_${randomUUID().slice(0, 8)}`;
}

export function testLogger(): Logger {
  return process.env.NOVA_DOCKER_TEST_LOG ? createLogger({ debug: true }) : nullLogger();
}

export function messagingOptions(over: Partial<MessagingOptions> = {}): MessagingOptions {
  return {
    hosts: [BROKER],
    virtualHost: '/',
    heartbeatS: 10,
    retryIntervalS: 0.2,
    retryBackoffS: 0.2,
    retryMaxS: 1,
    connectionName: 'nova-docker-test',
    logger: testLogger(),
    exchange: 'nova',
    flags: DEFAULT_QUEUE_FLAGS,
    rpcResponseTimeoutS: 10,
    maxMessageBytes: 1024 * 1024,
    ...over,
  };
}

export async function startMessaging(over: Partial<MessagingOptions> = {}): Promise<Messaging> {
  const m = new Messaging(messagingOptions(over));
  await m.start();
  return m;
}

export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await execFileP('rabbitmqctl', ['-n', RABBIT_NODE, ...args], { env: SYSTEM_ENV });
  return stdout;
}

/** Runs oslo-rpc-peer.py `call`; resolves with its stdout and exit code. */
export async function osloCall(
  topic: string,
  method: string,
  kwargs: unknown,
  extra: string[] = [],
): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await execFileP(
      '/usr/bin/python3',
      [OSLO_PEER, 'call', topic, method, JSON.stringify(kwargs), ...extra],
      { env: SYSTEM_ENV, timeout: 60_000 },
    );
    return { code: 0, out: stdout.trim() };
  } catch (err) {
    const e = err as { code?: number; stdout?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: (e.stdout ?? '').trim() };
  }
}

/** A running oslo-rpc-peer.py server; `lines` collects what it prints. */
export interface OsloServer {
  proc: ChildProcess;
  lines: string[];
  stop(): Promise<void>;
}

export async function startOsloServer(topic: string, server: string, version = '1.0'): Promise<OsloServer> {
  const proc = spawn('/usr/bin/python3', [OSLO_PEER, 'server', topic, '--server', server, '--version', version], {
    env: SYSTEM_ENV,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let buf = '';
  proc.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts);
  });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const deadline = Date.now() + 30_000;
  while (!lines.some((l) => l.startsWith('listening:'))) {
    if (proc.exitCode !== null) throw new Error(`oslo peer server exited: ${stderr}`);
    if (Date.now() > deadline) throw new Error(`oslo peer server did not start: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    lines,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}
