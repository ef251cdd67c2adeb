/**
 * The lab's dockerd stopped and started the way the lab runs it (SIGTERM to
 * the daemon, then ../shared/lab/docker-up.sh), for the tests of what an
 * Engine restart does to the instances (test/faults, the Neutron e2e), and
 * the process helpers the fault suite's other lab services use too.
 * Without live-restore a stopping dockerd stops every container it runs, the
 * other users' of this machine included: only files that may do that use it.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { pollUntil } from '../../src/common/poll.js';
import { execFileP, SYSTEM_ENV } from './broker.js';
import { docker, LAB } from './lab.js';

/** Polls `test()` until it resolves true. */
export async function until(test: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  await pollUntil(async () => ((await test()) ? true : undefined), { timeoutMs, intervalMs: 200, what });
}

/** Whether `p` resolves. */
export const succeeds = (p: Promise<unknown>): Promise<boolean> =>
  p.then(
    () => true,
    () => false,
  );

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The live pid a pid file names, if any. */
export function pidFile(path: string): number | undefined {
  if (!existsSync(path)) return undefined;
  const pid = Number(readFileSync(path, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined;
}

/** SIGTERM to `pid`, then waits for it to go (SIGKILL after `graceMs`). */
export async function terminate(pid: number, graceMs: number): Promise<void> {
  process.kill(pid, 'SIGTERM');
  try {
    await until(() => Promise.resolve(!pidAlive(pid)), `pid ${pid} to exit`, graceMs);
  } catch {
    process.kill(pid, 'SIGKILL');
    await until(() => Promise.resolve(!pidAlive(pid)), `pid ${pid} to die`, 10_000);
  }
}

const DOCKERD_PID = '/run/lab/dockerd.pid';

async function dockerdPid(): Promise<number | undefined> {
  const fromFile = pidFile(DOCKERD_PID);
  if (fromFile) return fromFile;
  const { stdout } = await execFileP('pidof', ['dockerd'], { env: SYSTEM_ENV }).catch(() => ({ stdout: '' }));
  const pid = Number(stdout.trim().split(/\s+/)[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

const dockerAnswers = (): Promise<boolean> => succeeds(docker(['version'], 5000));

export const dockerd = {
  /** SIGTERM to the lab's dockerd (it stops the containers it runs); resolves once it is gone. */
  async stop(): Promise<void> {
    const pid = await dockerdPid();
    assert.ok(pid, 'no dockerd to stop');
    await terminate(pid, 60_000);
    await until(async () => !(await dockerAnswers()), 'dockerd to stop answering', 10_000);
  },
  /** ../shared/lab/docker-up.sh: starts dockerd unless one answers (idempotent). */
  async start(): Promise<void> {
    await execFileP('bash', [`${LAB}/docker-up.sh`], { env: SYSTEM_ENV, timeout: 120_000 });
    await until(dockerAnswers, 'dockerd to answer', 30_000);
  },
  /** Starts dockerd unless it answers (after hooks: a test may have failed with it stopped). */
  async ensureUp(): Promise<void> {
    if (!(await dockerAnswers())) await dockerd.start();
  },
};
