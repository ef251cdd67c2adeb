/**
 * End to end against the lab's real Nova: state truth and recovery at start.
 * - `docker kill` of a booted instance's container shows SHUTOFF within
 *   seconds, with sync_power_state_interval set to an hour (so the Docker
 *   event stream did it, not the periodic sync);
 * - with the agent stopped, an orphan container (our labels, a uuid Nova
 *   does not know) is created and an instance's container stopped; the agent
 *   starts with resume_guests_state_on_host_boot = true → the orphan is gone,
 *   the instance's container runs again and the server is ACTIVE / Running,
 *   and a server the user had stopped stays SHUTOFF;
 * - with the host forced down, `server delete` is done by nova-api alone (the
 *   agent is never told): the running-deleted periodic task reaps the
 *   container within seconds;
 * - the same delete while the agent is stopped: recovery at start removes the
 *   container before the agent consumes RPC (the deleted row still names this
 *   host; it must not be taken for a live instance).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pollUntil } from '../../src/common/poll.js';
import {
  docker,
  e2eHost,
  hostContainers,
  openstack,
  openstackJson,
  useE2eLab,
  waitServer,
  type LabServer,
} from '../support/lab.js';

const HOST = e2eHost('nd-lifecycle-1');
const CONF =
  '\n[DEFAULT]\nsync_power_state_interval = 3600\nresume_guests_state_on_host_boot = true\n' +
  'running_deleted_instance_poll_interval = 3\n';

describe('e2e: lifecycle events and recovery at start', function () {
  this.timeout(900_000);
  const lab = useE2eLab(HOST, CONF);
  let image = '';

  async function boot(tag: string): Promise<LabServer> {
    const s = await lab.boot(image, `nd-lc-${tag}`, { timeoutMs: 600_000 });
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
    return s;
  }

  /** A server stopped outside Nova (`docker kill`), SHUTOFF once the event stream told Nova. */
  async function killed(tag: string): Promise<LabServer> {
    const s = await boot(tag);
    await docker(['kill', `nova-${s.id}`]);
    return await waitServer(s.id, (x) => x.status === 'SHUTOFF', 'SHUTOFF after docker kill', 60_000);
  }

  const state = async (id: string) => docker(['inspect', '-f', '{{.State.Status}}', `nova-${id}`]);

  before(async () => {
    image = await lab.uploadImage(`nd-lc-busybox-${randomUUID().slice(0, 8)}`, 'busybox:latest');
  });

  it('docker kill of a running instance: STOPPED in Nova within seconds, from the event stream', async () => {
    const s = await boot('kill');
    const t0 = Date.now();
    await docker(['kill', `nova-${s.id}`]);
    // the agent's log says when Nova's row was saved; the CLI itself takes seconds on a loaded host
    const saved = await pollUntil(
      () => {
        const line = lab
          .agent()
          .log()
          .split('\n')
          .find((l) => l.includes(`[instance: ${s.id}] Power state sync:`) && l.includes('"vm_state":"stopped"'));
        // the log's clock is local time, which Date.parse assumes without an offset
        return line ? Date.parse(line.slice(0, 23).replace(' ', 'T')) : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 50, what: 'the STOPPED save after docker kill' },
    );
    console.log(`      docker kill → STOPPED saved in Nova: ${saved - t0} ms`);
    assert.ok(saved - t0 < 10_000, `${saved - t0} ms`);
    assert.match(lab.agent().log(), new RegExp(`\\[instance: ${s.id}\\] VM Stopped \\(Lifecycle Event\\)`));
    const shown = await waitServer(s.id, (x) => x.status === 'SHUTOFF', 'SHUTOFF after docker kill', 60_000);
    console.log(`      docker kill → openstack server show says SHUTOFF: ${Date.now() - t0} ms`);
    assert.ok([4, 'Shutdown'].includes(shown['OS-EXT-STS:power_state'] ?? ''), String(shown['OS-EXT-STS:power_state']));
    assert.equal(shown['OS-EXT-STS:task_state'] ?? null, null);
  });

  it('restart: the orphan is removed, a container stopped while the agent was down runs again (ACTIVE)', async () => {
    const stopped = (await killed('stopped')).id;
    const live = await boot('resume');
    await lab.stop();

    const orphan = randomUUID();
    await docker([
      'run',
      '-d',
      '--network',
      'none',
      '--name',
      `nova-${orphan}`,
      '--label',
      'org.openstack.nova.managed-by=nova-docker',
      '--label',
      `org.openstack.nova.host=${HOST}`,
      '--label',
      `org.openstack.nova.instance-uuid=${orphan}`,
      'busybox:latest',
      'sleep',
      '3600',
    ]);
    await docker(['stop', '-t', '1', `nova-${live.id}`]);
    assert.equal(await state(live.id), 'exited');

    const t0 = Date.now();
    const agent = await lab.start();
    console.log(`      agent start with recovery → consuming RPC: ${Date.now() - t0} ms`);
    const names = (await hostContainers(HOST)).map((l) => l.split(' ')[0]);
    assert.ok(!names.includes(`nova-${orphan}`), `orphan removed: ${names.join(', ')}`);
    assert.equal(await state(live.id), 'running');
    const s = await waitServer(
      live.id,
      (x) => x.status === 'ACTIVE' && x['OS-EXT-STS:task_state'] == null,
      'ACTIVE',
      30_000,
    );
    assert.ok([1, 'Running'].includes(s['OS-EXT-STS:power_state'] ?? ''), String(s['OS-EXT-STS:power_state']));
    // a server the user (here: the outside world, then Nova) stopped is not resumed
    assert.equal(await state(stopped), 'exited');
    assert.equal((await openstackJson<LabServer>(['server', 'show', stopped])).status, 'SHUTOFF');
    const log = agent.log();
    assert.match(log, new RegExp(`Recovery at start: orphan-removed`));
    assert.match(log, new RegExp(`Recovery at start: resumed`));
  });

  it('a server nova-api deleted itself (host forced down): its container is reaped by the periodic task', async () => {
    const s = await boot('reap');
    const service = ['--os-compute-api-version', '2.11', 'compute', 'service', 'set'];
    await openstack([...service, '--down', HOST, 'nova-compute']);
    try {
      await openstack(['server', 'delete', '--wait', s.id], 120_000);
    } finally {
      await openstack([...service, '--up', HOST, 'nova-compute']);
    }
    const t0 = Date.now();
    await pollUntil(
      async () => ((await hostContainers(HOST)).some((l) => l.startsWith(`nova-${s.id}`)) ? undefined : true),
      { timeoutMs: 30_000, intervalMs: 250, what: 'the container of the deleted server removed' },
    );
    console.log(`      local delete → container reaped: ${Date.now() - t0} ms after the API said gone`);
    const log = lab.agent().log();
    assert.match(log, new RegExp(`\\[instance: ${s.id}\\] Destroying instance which is marked as DELETED`));
    assert.doesNotMatch(log, new RegExp(`\\[instance: ${s.id}\\] Terminated instance`), 'the agent was never told');
  });

  it('a server nova-api deleted while the agent was stopped: its container is removed by recovery at start', async () => {
    const s = await boot('gone');
    await lab.stop();
    const service = ['--os-compute-api-version', '2.11', 'compute', 'service', 'set'];
    await openstack([...service, '--down', HOST, 'nova-compute']);
    try {
      await openstack(['server', 'delete', '--wait', s.id], 120_000);
    } finally {
      await openstack([...service, '--up', HOST, 'nova-compute']);
    }
    assert.ok(
      (await hostContainers(HOST)).some((l) => l.startsWith(`nova-${s.id} `)),
      'the container outlived the delete',
    );
    const agent = await lab.start();
    // the start resolves once RPC is consumed, which is after recovery: no periodic task ran yet
    assert.ok(!(await hostContainers(HOST)).some((l) => l.startsWith(`nova-${s.id} `)), 'container removed at start');
    const log = agent.log();
    assert.match(log, new RegExp(`\\[instance: ${s.id}\\] Recovery at start: orphan-removed \\(Nova has deleted`));
    assert.doesNotMatch(log, new RegExp(`\\[instance: ${s.id}\\] Recovery at start: skipped`));
  });
});
