/**
 * The shared lab's real Nova control plane (../shared/lab, loopback only):
 * the stock CLIs, nova-manage, and our agent as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from '../../src/common/poll.js';
import { execFileP, REPO_ROOT, SYSTEM_ENV } from './broker.js';

export const LAB = `${REPO_ROOT}../shared/lab`;

/** admin-openrc, as an environment. */
export const OS_ENV: NodeJS.ProcessEnv = {
  ...SYSTEM_ENV,
  OS_AUTH_URL: 'http://127.0.0.1:5000/v3',
  OS_IDENTITY_API_VERSION: '3',
  OS_USERNAME: 'admin',
  OS_PASSWORD: 'labadmin',
  OS_PROJECT_NAME: 'admin',
  OS_USER_DOMAIN_NAME: 'Default',
  OS_PROJECT_DOMAIN_NAME: 'Default',
  OS_REGION_NAME: 'RegionOne',
  OS_COMPUTE_API_VERSION: '2.37',
};

/** Runs the stock `openstack` CLI; `-f json` output parsed when asked. */
export async function openstack(args: string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await execFileP('openstack', args, { env: OS_ENV, timeout: timeoutMs, maxBuffer: 16 << 20 });
  return stdout;
}

export async function openstackJson<T>(args: string[], timeoutMs?: number): Promise<T> {
  return JSON.parse(await openstack([...args, '-f', 'json'], timeoutMs)) as T;
}

export async function nova(args: string[]): Promise<string> {
  const { stdout } = await execFileP('nova', args, { env: OS_ENV, timeout: 120_000 });
  return stdout;
}

export async function discoverHosts(): Promise<void> {
  await execFileP('su', ['-s', '/bin/sh', 'nova', '-c', 'nova-manage cell_v2 discover_hosts'], {
    env: SYSTEM_ENV,
    timeout: 120_000,
  });
}

/** Stops the lab's real nova-compute so only our agent serves. */
export async function stopFakeCompute(): Promise<void> {
  await execFileP('bash', [`${LAB}/fake-compute.sh`, 'stop'], { env: SYSTEM_ENV }).catch(() => undefined);
}

export function labNovaConf(host: string, extra = ''): string {
  return `[DEFAULT]
host = ${host}
transport_url = rabbit://openstack:labrabbit@127.0.0.1:5672/
my_ip = 127.0.0.1
debug = true

[placement]
auth_type = password
auth_url = http://127.0.0.1:5000/v3
project_domain_name = Default
user_domain_name = Default
project_name = service
username = placement
password = labservice
region_name = RegionOne

[glance]
api_servers = http://127.0.0.1:9292

[docker]
registry_url = 127.0.0.1:5042
${extra}`;
}

export interface AgentProcess {
  proc: ChildProcess;
  log: () => string;
  stop(): Promise<number | null>;
}

/** Starts `nova-docker compute` with a lab nova.conf; resolves once its compute node is reported. */
export async function startAgent(host: string, extraConf = ''): Promise<AgentProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'nd-e2e-'));
  const conf = join(dir, 'nova.conf');
  writeFileSync(conf, labNovaConf(host, extraConf));
  const proc = spawn(process.execPath, [join(REPO_ROOT, 'dist/src/cli.js'), 'compute', '--config-file', conf], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  // NOVA_DOCKER_E2E_LOG=FILE keeps the agent's log for a look after the run
  const keep = process.env.NOVA_DOCKER_E2E_LOG;
  if (keep) void exited.then(() => writeFileSync(keep, log));
  await pollUntil(
    () => {
      if (proc.exitCode !== null) throw new Error(`agent exited ${proc.exitCode}:\n${log}`);
      return log.includes('RPC server consuming') ? true : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200, what: 'the agent to start serving' },
  ).catch((err: unknown) => {
    proc.kill('SIGKILL');
    throw new Error(`${String(err)}\n${log}`);
  });
  return {
    proc,
    log: () => log,
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      return await exited;
    },
  };
}

/** `docker save IMAGE` into a temp file; returns its path. */
export async function dockerSave(image: string): Promise<string> {
  const file = join(mkdtempSync(join(tmpdir(), 'nd-img-')), 'image.tar');
  await execFileP('docker', ['save', '-o', file, image], { env: SYSTEM_ENV });
  return file;
}
