/**
 * Fault: the agent is killed with SIGKILL in the middle of a boot and started
 * again. At start it recovers as nova-compute's init_host does
 * (src/compute/recovery.ts): a build cut off ends in ERROR with a fault and its
 * half-made container is removed; the instances that were running stay ACTIVE.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { SYSTEM_ENV } from '../support/broker.js';
import { containersOf, Scenario, secondsSince, settled, showServer, waitServer, type ServerView } from './fault-lab.js';

/** Calls `onEvent(containerName)` for each Docker event `event` of a container labelled for `host`. */
function watchDocker(host: string, event: string, onEvent: (name: string) => void): ChildProcess {
  const p = spawn(
    'docker',
    [
      'events',
      '--filter',
      `label=org.openstack.nova.host=${host}`,
      '--filter',
      `event=${event}`,
      '--format',
      '{{.Actor.Attributes.name}}',
    ],
    { env: SYSTEM_ENV, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let buf = '';
  p.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      onEvent(buf.slice(0, i).trim());
      buf = buf.slice(i + 1);
    }
  });
  return p;
}

describe('faults: the agent killed -9 in the middle of a boot', function () {
  this.timeout(600_000);
  const s = new Scenario('nd-faults-kill');
  let watcher: ChildProcess | undefined;

  before(async () => await s.setUp());
  after(async () => {
    watcher?.kill();
    await s.tearDown();
  });

  /** Restarts the agent and waits for the instance to settle; returns it and the timings. */
  async function restartAndSettle(id: string, key: string): Promise<ServerView> {
    const t0 = performance.now();
    const agent = await s.startAgent();
    s.measured[`${key}AgentServingS`] = secondsSince(t0);
    const end = await waitServer(id, settled, 'settled after the restart', 120_000, 250);
    s.measured[`${key}SettledAfterRestartS`] = secondsSince(t0);
    s.measured[`${key}Outcome`] = end?.status ?? 'gone';
    s.measured[`${key}Fault`] = end?.fault?.message ?? '';
    assert.ok(end, 'the instance still exists');
    if (end.status === 'ERROR') {
      assert.match(agent.log(), new RegExp(`\\[instance: ${id}\\] Recovery at start: build-errored`));
    }
    return end;
  }

  it('killed right after the container started (before ACTIVE was saved): ERROR with a fault or ACTIVE, no orphan', async () => {
    const running = await s.bootActive('survivor');
    const agent = s.agent!;
    let killedAt = 0;
    watcher = watchDocker(s.host, 'start', () => {
      if (killedAt === 0) {
        agent.proc.kill('SIGKILL');
        killedAt = performance.now();
      }
    });
    // docker events needs a moment to subscribe
    await new Promise((r) => setTimeout(r, 1000));
    const id = await s.boot('killed-after-start');
    await new Promise<void>((resolve) => agent.proc.once('exit', () => resolve()));
    watcher.kill();
    assert.ok(killedAt > 0, 'killed on the container start');
    const atKill = await showServer(id);
    const c = (await containersOf(s.host)).find((x) => x.uuid === id);
    s.measured.startKillNovaState = `${atKill?.status}/${atKill?.['OS-EXT-STS:task_state'] ?? '-'}`;
    s.measured.startKillContainer = c?.state ?? 'none';

    const end = await restartAndSettle(id, 'startKill');
    assert.ok(['ACTIVE', 'ERROR'].includes(end.status), JSON.stringify(end));
    assert.equal((await showServer(running.id))?.status, 'ACTIVE', 'the instance running before the kill stays ACTIVE');
    const next = await s.bootActive('after-kill-1', 180_000);
    s.measured.startKillNextBootS = next.seconds;
    await s.consistent({ errorMeansNoContainer: true });
  });

  it('killed as soon as Nova shows it spawning (image fetch, container create in flight): settles, no orphan', async () => {
    // a fresh Glance image: the boot downloads and loads it first
    const agent = s.agent!;
    const from = agent.log().length;
    s.imageId = await s.freshImage();
    const id = await s.boot('killed-loading');
    // spawning is saved while the image is still loading (the saves run beside the image fetch)
    await waitServer(id, (x) => x?.['OS-EXT-STS:task_state'] === 'spawning', 'spawning', 60_000, 50);
    const loaded = /loaded \S+ from Glance/.test(agent.log().slice(from));
    agent.proc.kill('SIGKILL');
    await new Promise<void>((resolve) => agent.proc.once('exit', () => resolve()));
    s.measured.loadKillImageAlreadyLoaded = String(loaded);
    const end = await restartAndSettle(id, 'loadKill');
    assert.ok(['ACTIVE', 'ERROR'].includes(end.status), JSON.stringify(end));
    const next = await s.bootActive('after-kill-2', 180_000);
    s.measured.loadKillNextBootS = next.seconds;
    await s.consistent({ errorMeansNoContainer: true });
    await s.deleteAll();
    assert.equal((await s.consistent()).containers.length, 0);
  });
});
