/**
 * Fault: Glance (the lab's glance-api process) goes down while a boot is on
 * its way to the agent, so the agent cannot fetch the image. The instance
 * must end in ERROR with a fault that names the image service, nothing may
 * be left on the host (no container, no allocation), and once Glance is back
 * the same image boots.
 */
import assert from 'node:assert/strict';
import { labRabbitmqctl } from '../support/lab-env.js';
import { pollUntil } from '../../src/common/poll.js';
import { consumerAllocations, glance, Scenario, secondsSince, settled, waitServer } from './fault-lab.js';

/** Messages (ready + delivered, unacked) in a queue; 0 when it does not exist. */
async function queueDepth(name: string): Promise<number> {
  const out = await labRabbitmqctl('-q', 'list_queues', 'name', 'messages');
  for (const line of out.split('\n')) {
    const [q, n] = line.trim().split(/\s+/);
    if (q === name) return Number(n);
  }
  return 0;
}

describe('faults: Glance down during a boot', function () {
  this.timeout(600_000);
  const s = new Scenario('nd-faults-glance');

  before(async () => await s.setUp());
  after(async () => await s.tearDown());

  it('the instance ends ERROR with a fault naming the image service, nothing is left; with Glance back it boots', async () => {
    const agent = s.agent!;
    // nova-api needs Glance to accept the boot; the agent must not fetch the image before Glance is down.
    // So the agent is frozen (SIGSTOP) while the boot is accepted and its cast queued for the host.
    agent.proc.kill('SIGSTOP');
    let id: string;
    try {
      id = await s.boot('glance-down');
      await pollUntil(async () => ((await queueDepth(`compute.${s.host}`)) > 0 ? true : undefined), {
        timeoutMs: 60_000,
        intervalMs: 200,
        what: `the build cast in compute.${s.host}`,
      });
      const t0 = performance.now();
      await glance.stop();
      s.measured.glanceStopS = secondsSince(t0);
    } finally {
      agent.proc.kill('SIGCONT');
    }
    const t1 = performance.now();
    const end = await waitServer(id, settled, 'settled with Glance down', 120_000, 250);
    s.measured.errorAfterResumeS = secondsSince(t1);
    s.measured.fault = end?.fault?.message ?? '';
    assert.equal(end?.status, 'ERROR', JSON.stringify(end));
    assert.match(end.fault?.message ?? '', /image service/i);
    assert.match(end.fault?.message ?? '', /unavailable/i);
    assert.deepEqual(await consumerAllocations(id), {}, 'the failed build gave its allocations back');
    await s.consistent({ errorMeansNoContainer: true });

    const t2 = performance.now();
    await glance.start();
    s.measured.glanceStartS = secondsSince(t2);
    const next = await s.bootActive('glance-back', 180_000);
    s.measured.bootAfterGlanceBackS = next.seconds;
    await s.consistent({ errorMeansNoContainer: true });
    await s.deleteAll();
    assert.equal((await s.consistent()).containers.length, 0);
  });
});
