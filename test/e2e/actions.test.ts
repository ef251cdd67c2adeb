/**
 * End to end against the lab's real Nova Zed with the stock `openstack` CLI:
 * one server goes through stop, start, soft and hard reboot, pause, unpause,
 * suspend, resume, `console log show` (whole and `--lines`), `server show --diagnostics` and delete. After each step
 * Nova's view (status, power state, no task) and the container's (state,
 * StartedAt, unchanged HostConfig and labels) must agree.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { docker, nova, openstack, useE2eLab } from '../support/lab.js';
import { instanceActions, waitServerApi } from '../support/nova-api.js';

const HOST = 'nd-actions-1';

interface Inspect {
  Id: string;
  State: { Status: string; Running: boolean; Paused: boolean; StartedAt: string };
  HostConfig: Record<string, unknown>;
  Config: { Labels?: Record<string, string> };
}

/** Nova's power_state values (the API shows the integer). */
const POWER = { running: 1, paused: 3, shutdown: 4, suspended: 7 } as const;

async function inspect(uuid: string): Promise<Inspect> {
  const out = JSON.parse(await docker(['inspect', `nova-${uuid}`])) as Inspect[];
  assert.ok(out[0], `container nova-${uuid}`);
  return out[0];
}

describe('e2e: stop, start, reboot, pause, suspend through the real Nova', function () {
  this.timeout(900_000);
  const lab = useE2eLab(HOST);

  it('one server through every power action, then console log --lines and delete', async () => {
    const name = `nd-actions-${randomUUID().slice(0, 8)}`;
    // prints five lines at every start, then sleeps: FROM the lab's busybox, no network needed
    const tag = await lab.buildImage(
      'nd-actions-lines',
      'FROM busybox:latest\nCMD ["/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line$i; done; exec sleep 3600"]\n',
    );
    await lab.uploadImage(name, tag);
    const s = await lab.bootActive(name, name);
    const booted = await inspect(s.id);
    assert.equal(booted.HostConfig.Privileged, false);
    assert.ok(Number(booted.HostConfig.Memory) > 0, 'memory limit set');
    let startedAt = booted.State.StartedAt;
    const timings: string[] = [];

    /** Runs `openstack server ARGS`, waits for the task to clear, checks Nova's and Docker's view agree. */
    async function step(
      args: string[],
      want: { status: string; power: keyof typeof POWER; docker: string; restarted?: boolean },
    ): Promise<void> {
      const t0 = Date.now();
      await openstack(['server', ...args, s.id]);
      const after = await waitServerApi(
        s.id,
        (x) => x['OS-EXT-STS:task_state'] == null && x.status !== 'REBOOT' && x.status !== 'HARD_REBOOT',
        `${args.join(' ')} to finish`,
        90_000,
      );
      const secs = (Date.now() - t0) / 1000;
      timings.push(`${args.join(' ')} ${secs.toFixed(1)} s`);
      assert.equal(after.status, want.status, `${args.join(' ')}: ${JSON.stringify(after)}`);
      assert.equal(after['OS-EXT-STS:power_state'], POWER[want.power], `${args.join(' ')}: power_state`);
      const c = await inspect(s.id);
      assert.equal(c.State.Status, want.docker, `${args.join(' ')}: container ${c.State.Status}`);
      assert.equal(c.Id, booted.Id, 'the same container');
      assert.deepEqual(c.HostConfig, booted.HostConfig, `${args.join(' ')}: HostConfig unchanged`);
      assert.deepEqual(c.Config.Labels, booted.Config.Labels, `${args.join(' ')}: labels unchanged`);
      if (want.restarted !== undefined) {
        assert.equal(c.State.StartedAt !== startedAt, want.restarted, `${args.join(' ')}: StartedAt`);
      }
      startedAt = c.State.StartedAt;
    }

    await step(['stop'], { status: 'SHUTOFF', power: 'shutdown', docker: 'exited' });
    await step(['start'], { status: 'ACTIVE', power: 'running', docker: 'running', restarted: true });
    await step(['reboot', '--soft'], { status: 'ACTIVE', power: 'running', docker: 'running', restarted: true });
    await step(['reboot', '--hard'], { status: 'ACTIVE', power: 'running', docker: 'running', restarted: true });
    await step(['pause'], { status: 'PAUSED', power: 'paused', docker: 'paused', restarted: false });
    const list = await nova(['list']);
    assert.match(list, new RegExp(`${s.id} .*\\| PAUSED .*\\| Paused`), list);
    await step(['unpause'], { status: 'ACTIVE', power: 'running', docker: 'running', restarted: false });
    await step(['suspend'], { status: 'SUSPENDED', power: 'suspended', docker: 'paused', restarted: false });
    await step(['resume'], { status: 'ACTIVE', power: 'running', docker: 'running', restarted: false });
    process.stdout.write(`      ${timings.join('; ')}\n`);

    // each action is recorded with nova-compute's event name and a Success result
    const recorded = await instanceActions(s.id);
    const eventTimes: string[] = [];
    const methods: Record<string, string> = {
      stop: 'stop_instance',
      start: 'start_instance',
      reboot: 'reboot_instance',
      pause: 'pause_instance',
      unpause: 'unpause_instance',
      suspend: 'suspend_instance',
      resume: 'resume_instance',
    };
    for (const [action, method] of Object.entries(methods)) {
      const mine = recorded.filter((a) => a.action === action);
      assert.equal(mine.length, action === 'reboot' ? 2 : 1, `${action}: ${JSON.stringify(recorded)}`);
      for (const a of mine) {
        const ev = (a.events ?? []).find((e) => e.event === `compute_${method}`);
        assert.equal(ev?.result, 'Success', `${action}: ${JSON.stringify(a)}`);
        // the agent's share, as Nova recorded it (the DB keeps whole seconds)
        const ms = Date.parse(`${ev.finish_time ?? ''}Z`) - Date.parse(`${ev.start_time ?? ''}Z`);
        eventTimes.push(`${action} ${Number.isFinite(ms) ? (ms / 1000).toFixed(1) : '?'} s`);
      }
    }
    process.stdout.write(`      compute events (finish − start): ${eventTimes.join('; ')}\n`);

    // four starts (boot, start, two reboots) printed five lines each; --lines keeps the newest
    const all = await docker(['logs', `nova-${s.id}`]);
    assert.equal(all.split('\n').filter((l) => l === 'line1').length, 4, all);
    // the console: each run's lines after its start, what Nova asked for and how each run ended, by time
    const full = (await openstack(['console', 'log', 'show', s.id])).split('\n').filter((l) => l !== '');
    const PREFIX = /^\[nova-docker\] \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;
    const token = (l: string) =>
      PREFIX.test(l)
        ? l
            .replace(PREFIX, '')
            .replace(/ created from .*/, ' created')
            .replace(/:.*$/, '')
        : l;
    const run = ['line1', 'line2', 'line3', 'line4', 'line5'];
    assert.deepEqual(
      full.map(token),
      [
        'spawning',
        `container nova-${s.id} created`,
        'container started',
        ...run,
        'stop requested by Nova',
        'container exited',
        'start requested by Nova',
        'container restarted',
        ...run,
        'reboot (SOFT) requested by Nova',
        'container exited',
        'container restarted',
        ...run,
        'reboot (HARD) requested by Nova',
        'container exited',
        'container restarted',
        ...run,
        'pause requested by Nova',
        'unpause requested by Nova',
        'suspend requested by Nova',
        'resume requested by Nova',
      ],
      full.join('\n'),
    );
    // nova's _tail_log: the last 3 pieces split at "\n" of an output ending in one are its last 2 lines
    const tail = await openstack(['console', 'log', 'show', '--lines', '3', s.id]);
    assert.deepEqual(
      tail.split('\n').filter((l) => l !== ''),
      full.slice(-2),
    );

    // diagnostics, both API forms: free-form (2.37) and Nova's Diagnostics object (2.48+)
    const legacy = JSON.parse(await openstack(['server', 'show', '--diagnostics', s.id, '-f', 'json'])) as Record<
      string,
      unknown
    >;
    assert.equal(legacy.memory, 512 * 1024, JSON.stringify(legacy));
    assert.equal(legacy.state, 'running');
    const diag = JSON.parse(
      await openstack(['--os-compute-api-version', '2.48', 'server', 'show', '--diagnostics', s.id, '-f', 'json']),
    ) as { memory_details?: { maximum?: number }; num_cpus?: number; state?: string };
    assert.equal(diag.memory_details?.maximum, 512, JSON.stringify(diag));
    assert.equal(diag.state, 'running');
    assert.ok((diag.num_cpus ?? 0) >= 1);

    await lab.deleteAndCheck(s.id);
  });
});
