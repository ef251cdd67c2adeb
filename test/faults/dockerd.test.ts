/**
 * Fault: dockerd restarts with instances running, the way the lab runs it
 * (SIGTERM to the daemon, then ../shared/lab/docker-up.sh). Without
 * live-restore dockerd stops every container when it stops, and the agent
 * sets no restart policy (Nova decides about restarts), so the instances'
 * containers stay exited: Nova must show them SHUTOFF, not ACTIVE.
 */
import assert from 'node:assert/strict';
import { dockerd } from '../support/dockerd.js';
import { containersOf, Scenario, secondsSince, settled, waitServer } from './fault-lab.js';

describe('faults: dockerd restart with instances running', function () {
  this.timeout(600_000);
  const s = new Scenario('nd-faults-docker');

  before(async () => await s.setUp());
  after(async () => await s.tearDown());

  it('the running instances end SHUTOFF (their containers exited), the agent keeps serving', async () => {
    const booted = await Promise.all([s.bootActive('run-1'), s.bootActive('run-2')]);
    const ids = booted.map((b) => b.id);
    const agent = s.agent!;
    const from = agent.log().length;

    const t0 = performance.now();
    await dockerd.stop();
    s.measured.dockerdStopS = secondsSince(t0);
    const t1 = performance.now();
    await dockerd.start();
    s.measured.dockerdStartS = secondsSince(t1);
    const up = performance.now();

    // what dockerd did to the containers: present, not running
    const after = await containersOf(s.host);
    s.measured.containersAfterRestart = after.map((c) => c.state).join(',');
    for (const id of ids) {
      const c = after.find((x) => x.uuid === id);
      assert.ok(c, `container of ${id} is still there after the restart`);
      assert.notEqual(c.state, 'running', `container of ${id} after the restart`);
    }

    for (const id of ids) {
      const end = await waitServer(id, (x) => x?.status === 'SHUTOFF' && settled(x), 'SHUTOFF', 60_000, 250);
      assert.equal(end?.['OS-EXT-STS:power_state'], 4, 'power_state SHUTDOWN');
    }
    s.measured.shutoffAfterDockerdUpS = secondsSince(up);
    s.measured.shutoffAfterStopBeganS = secondsSince(t0);
    assert.doesNotMatch(agent.log().slice(from), /unhandled|uncaught/i);

    // the Docker client works on the new daemon: a new boot
    const next = await s.bootActive('after-restart', 180_000);
    s.measured.bootAfterRestartS = next.seconds;
    await s.consistent({ errorMeansNoContainer: true });
    await s.deleteAll();
    const report = await s.consistent();
    assert.equal(report.containers.length, 0);
  });
});
