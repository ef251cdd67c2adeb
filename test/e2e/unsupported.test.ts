/**
 * End to end, what the agent does not do yet must fail cleanly, never hang:
 * instance actions the API casts with a task_state (rescue, soft delete, …) get that
 * task_state cleared and the server stays usable; call-type requests
 * (get_vnc_console) answer an error at once instead of a 60 s RPC timeout.
 * And what it does: `console log show` returns the container's output.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { execFileP } from '../support/broker.js';
import {
  OS_ENV,
  hostContainers,
  openstack,
  openstackJson,
  useE2eLab,
  waitServer,
  type LabServer,
} from '../support/lab.js';

const HOST = 'nova-docker-e2e-unsup';
const HELLO = 'hello-from-nova-docker';

interface ActionRow {
  Action: string;
  'Request ID': string;
  Message?: string | null;
}

interface ActionDetail {
  action: string;
  message?: string | null;
  events?: Array<{ event: string; result?: string | null; traceback?: string | null }>;
}

/** Runs `openstack ARGS` expecting failure; returns its stderr and how long it took. */
async function openstackFails(args: string[]): Promise<{ stderr: string; ms: number }> {
  const t0 = Date.now();
  try {
    const { stdout } = await execFileP('openstack', args, { env: OS_ENV, timeout: 120_000 });
    assert.fail(`openstack ${args.join(' ')} succeeded: ${stdout}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    const e = err as { stderr?: string; killed?: boolean };
    assert.ok(!e.killed, `openstack ${args.join(' ')} timed out`);
    return { stderr: String(e.stderr ?? err), ms: Date.now() - t0 };
  }
}

describe('e2e: unsupported actions fail cleanly; console log works', function () {
  this.timeout(900_000);
  const lab = useE2eLab(HOST);

  it('rescue of an ACTIVE server: task_state is cleared, the server stays ACTIVE and deletable', async () => {
    const name = `nd-unsup-${randomUUID().slice(0, 8)}`;
    await lab.uploadImage(name, 'busybox:latest');
    const s = await lab.bootActive(name, 'nd-e2e-unsup');
    const actions: Array<[string[], string, string]> = [
      // [CLI args, instance action name, compute RPC method]
      [['server', 'rescue', s.id], 'rescue', 'rescue_instance'],
    ];
    for (const [args, action, method] of actions) {
      const t0 = Date.now();
      await openstack(args);
      const after = await waitServer(
        s.id,
        (x) => x['OS-EXT-STS:task_state'] == null,
        `task_state cleared after ${action}`,
        60_000,
      );
      const secs = (Date.now() - t0) / 1000;
      assert.equal(after.status, 'ACTIVE', `${action}: ${JSON.stringify(after)}`);
      assert.equal(after['OS-EXT-STS:vm_state'], 'active');
      assert.deepEqual(await hostContainers(HOST), [`nova-${s.id} running`], `${action} left the container alone`);
      // the instance action is recorded; the agent says why it did nothing
      const rows = await openstackJson<ActionRow[]>(['server', 'event', 'list', s.id]);
      const row = rows.find((r) => r.Action === action);
      assert.ok(row, `an instance action ${action}: ${JSON.stringify(rows)}`);
      assert.match(
        lab.agent().log(),
        new RegExp(`nova-docker does not support ${method}`),
        `agent log after ${action}`,
      );
      const detail = await openstackJson<ActionDetail>(['server', 'event', 'show', s.id, row['Request ID']]);
      const events = detail.events ?? [];
      if (events.length > 0) {
        // nova-compute's wrap_instance_event: compute_<method>, result Error, the exception in the traceback
        const ev = events.find((e) => e.event === `compute_${method}`);
        assert.ok(ev, `event compute_${method}: ${JSON.stringify(detail)}`);
        assert.equal(ev.result, 'Error');
        assert.match(String(ev.traceback), /does not support/);
        assert.equal(detail.message, 'Error');
      }
      const note = events.length > 0 ? 'failed event recorded' : 'no action event exposed';
      process.stdout.write(`      ${action}: task_state cleared in ${secs.toFixed(1)} s; ${note}\n`);
    }
    await lab.deleteAndCheck(s.id);
  });

  it('console log show returns the container output; console url show fails fast with an error', async () => {
    // prints a line, then sleeps: FROM the local busybox, so no network is needed
    const tag = await lab.buildImage(
      'nd-e2e-hello',
      `FROM busybox:latest\nCMD ["/bin/sh", "-c", "echo ${HELLO}; exec sleep 3600"]\n`,
    );
    const name = `nd-hello-${randomUUID().slice(0, 8)}`;
    await lab.uploadImage(name, tag);
    const s = await lab.bootActive(name, 'nd-e2e-console');

    const log = await openstack(['console', 'log', 'show', s.id]);
    assert.match(log, new RegExp(HELLO), log);
    // nova's _tail_log: the last N pieces split at "\n"; output ending in one has an empty last piece
    const last = await openstack(['console', 'log', 'show', '--lines', '2', s.id]);
    assert.equal(last.trim(), HELLO);

    // get_vnc_console is an RPC call: an error reply, not nova-api's 60 s rpc_response_timeout
    const { stderr, ms } = await openstackFails(['console', 'url', 'show', '--novnc', s.id]);
    assert.ok(ms < 30_000, `console url show failed after ${ms} ms`);
    assert.doesNotMatch(stderr, /timed out|MessagingTimeout|HTTP 504/i, stderr);
    assert.match(stderr, /not implemented|501/i, stderr);
    process.stdout.write(`      console url show failed in ${(ms / 1000).toFixed(1)} s: ${stderr.trim()}\n`);

    // the server is unharmed
    const shown = await openstackJson<LabServer>(['server', 'show', s.id]);
    assert.equal(shown.status, 'ACTIVE');
    assert.equal(shown['OS-EXT-STS:task_state'] ?? null, null);
    await lab.deleteAndCheck(s.id);
  });
});
