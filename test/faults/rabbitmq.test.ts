/**
 * Fault: the RabbitMQ broker restarts (`rabbitmqctl stop_app` / `start_app`:
 * every connection drops, the non-durable queues and their messages go),
 * once while the agent is idle and once in the middle of a boot.
 */
import assert from 'node:assert/strict';
import { portOpenAt, rabbit, Scenario, secondsSince, settled, sleep, waitForLog, waitServer } from './fault-lab.js';
import { LAB_ENDPOINTS } from '../support/lab-env.js';

const CONNECTED = /Connected to AMQP server/;

describe('faults: RabbitMQ restart', function () {
  this.timeout(600_000);
  // a call whose reply was lost with the broker fails after this, not after nova's 60 s
  const s = new Scenario('nd-faults-rabbit', '\n[DEFAULT]\nsync_power_state_interval = 2\nrpc_response_timeout = 20\n');

  before(async () => await s.setUp());
  after(async () => await s.tearDown());

  /** Broker down for `downMs`; returns when it is up and the agent has reconnected, with the timings. */
  async function restartBroker(downMs: number, during?: () => void): Promise<{ upAt: number; reconnectS: number }> {
    const agent = s.agent!;
    const from = agent.log().length;
    await rabbit.stop();
    during?.();
    await sleep(downMs);
    const reconnected = waitForLog(agent, CONNECTED, from, 180_000).then(() => performance.now());
    const portUp = portOpenAt(LAB_ENDPOINTS.rabbitPort, 120_000);
    await rabbit.start();
    const upAt = await portUp;
    return { upAt, reconnectS: Math.round(((await reconnected) - upAt) / 100) / 10 };
  }

  it('while idle: the agent reconnects, the running instance stays ACTIVE and a new boot works', async () => {
    const before = await s.bootActive('idle-before');
    const { upAt, reconnectS } = await restartBroker(2000);
    s.measured.idleReconnectAfterPortOpenS = reconnectS;
    // report_state and a new boot go through the new connection (and through nova's own reconnected services)
    const after = await s.bootActive('idle-after', 180_000);
    s.measured.idleFirstBootAfterS = after.seconds;
    s.measured.idleBootActiveAfterPortOpenS = secondsSince(upAt);
    const report = await s.consistent({ errorMeansNoContainer: true });
    assert.deepEqual(
      report.live.map((x) => [x.id, x.status]).sort(),
      [
        [before.id, 'ACTIVE'],
        [after.id, 'ACTIVE'],
      ].sort(),
    );
  });

  it('during a boot: the instance ends ACTIVE or ERROR with a fault, nothing leaks, and the next boot works', async () => {
    const agent = s.agent!;
    const from = agent.log().length;
    const id = await s.boot('mid-boot');
    // The cast reached the agent (stopping the broker earlier loses it, as with nova-compute). rabbitmqctl
    // needs seconds to stop the app while a boot takes about one, so the agent is frozen (SIGSTOP) at
    // "Starting instance" until the broker is down, and then runs its boot against the dead broker.
    await waitForLog(agent, new RegExp(`\\[instance: ${id}\\] Starting instance`), from, 60_000);
    agent.proc.kill('SIGSTOP');
    const t0 = performance.now();
    const { upAt, reconnectS } = await restartBroker(3000, () => agent.proc.kill('SIGCONT'));
    s.measured.midBootReconnectAfterPortOpenS = reconnectS;
    const end = await waitServer(id, settled, 'settled after the broker restart', 240_000, 500);
    s.measured.midBootOutcome = end?.status ?? 'gone';
    s.measured.midBootFault = end?.fault?.message ?? '';
    s.measured.midBootSettledAfterPortOpenS = secondsSince(upAt);
    s.measured.midBootSettledAfterStopS = secondsSince(t0);
    assert.ok(end && ['ACTIVE', 'ERROR'].includes(end.status), JSON.stringify(end));
    const next = await s.bootActive('mid-after', 180_000);
    s.measured.midBootNextBootS = next.seconds;
    await s.consistent({ errorMeansNoContainer: true });
    await s.deleteAll();
    const report = await s.consistent();
    assert.equal(report.containers.length, 0);
  });
});
