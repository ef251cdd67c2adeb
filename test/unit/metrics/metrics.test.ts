import assert from 'node:assert/strict';
import { request } from 'node:http';
import { nullLogger } from '../../../src/common/log.js';
import { NovaError } from '../../../src/common/errors.js';
import { pollUntil } from '../../../src/common/poll.js';
import type { BootTiming } from '../../../src/compute/collaborators.js';
import { AgentMetrics } from '../../../src/metrics/metrics.js';
import { startMetricsServer } from '../../../src/metrics/server.js';
import { encodeEnvelope } from '../../../src/rpc/envelope.js';
import { RpcServer } from '../../../src/rpc/server.js';
import { FakeTransport } from '../rpc/fake-transport.js';
import { PowerState } from '../../../src/virt/power-state.js';

/** The value of one sample line, e.g. `name{a="b"}`; undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function timing(over: Partial<BootTiming>): BootTiming {
  return {
    instance_uuid: 'u',
    received: 0,
    spawning: 0,
    image_ready: 0,
    guest_created: 0,
    spawned: 0,
    active: 0,
    ok: true,
    ...over,
  };
}

describe('metrics/AgentMetrics', () => {
  it('registers every family with help and type, and the agent info', async () => {
    const m = new AgentMetrics({ version: '1.2.3', host: 'h1', processMetrics: false });
    const { body, contentType } = await m.render();
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    for (const [name, type] of [
      ['nova_docker_info', 'gauge'],
      ['nova_docker_rpc_messages_received_total', 'counter'],
      ['nova_docker_rpc_failures_total', 'counter'],
      ['nova_docker_rpc_replies_sent_total', 'counter'],
      ['nova_docker_boot_phase_seconds', 'histogram'],
      ['nova_docker_boots_total', 'counter'],
      ['nova_docker_image_cache_lookups_total', 'counter'],
      ['nova_docker_vif_plug_seconds', 'histogram'],
      ['nova_docker_vif_plugged_wait_seconds', 'histogram'],
      ['nova_docker_instances', 'gauge'],
      ['nova_docker_hypervisor_up', 'gauge'],
    ]) {
      assert.ok(body.includes(`# HELP ${name} `), name);
      assert.ok(body.includes(`# TYPE ${name} ${type}\n`), name);
    }
    assert.equal(sample(body, 'nova_docker_info{version="1.2.3",host="h1"}'), 1);
    assert.equal(sample(body, 'process_cpu_user_seconds_total'), undefined);
  });

  it('adds the prom-client process metrics by default', async () => {
    const { body } = await new AgentMetrics({ version: '1', host: 'h' }).render();
    assert.ok(sample(body, 'process_cpu_user_seconds_total') !== undefined);
    assert.ok((sample(body, 'process_resident_memory_bytes') ?? 0) > 0);
    assert.ok(body.includes('# TYPE nodejs_heap_size_used_bytes gauge'));
  });

  it('counts RPC messages, failures and replies by label', async () => {
    const m = new AgentMetrics({ version: '1', host: 'h', processMetrics: false });
    m.rpc.received('cast', 'build_and_run_instance');
    m.rpc.received('cast', 'build_and_run_instance');
    m.rpc.received('call', 'get_console_output');
    m.rpc.failed('call', 'get_console_output', 'InstanceNotFound');
    m.rpc.replied('result');
    m.rpc.replied('failure');
    const { body } = await m.render();
    assert.equal(
      sample(body, 'nova_docker_rpc_messages_received_total{kind="cast",method="build_and_run_instance"}'),
      2,
    );
    assert.equal(sample(body, 'nova_docker_rpc_messages_received_total{kind="call",method="get_console_output"}'), 1);
    assert.equal(
      sample(
        body,
        'nova_docker_rpc_failures_total{kind="call",method="get_console_output",exception="InstanceNotFound"}',
      ),
      1,
    );
    assert.equal(sample(body, 'nova_docker_rpc_replies_sent_total{outcome="result"}'), 1);
    assert.equal(sample(body, 'nova_docker_rpc_replies_sent_total{outcome="failure"}'), 1);
  });

  it('observes the boot phases of successful boots in seconds and counts failures', async () => {
    const m = new AgentMetrics({ version: '1', host: 'h', processMetrics: false });
    m.boot(timing({ spawning: 40, image_ready: 30, guest_created: 60, spawned: 300, active: 320 }));
    // a cached image: no image_ready/guest_created marks from a driver that cannot tell
    m.boot(timing({ spawning: 50, spawned: 1500, active: 1600 }));
    m.boot(timing({ spawning: 45, ok: false }));
    const { body } = await m.render();
    const count = (phase: string) => sample(body, `nova_docker_boot_phase_seconds_count{phase="${phase}"}`);
    assert.equal(count('spawning'), 2);
    assert.equal(count('image_ready'), 1);
    assert.equal(count('guest_created'), 1);
    assert.equal(count('spawned'), 2);
    assert.equal(count('active'), 2);
    assert.ok(Math.abs((sample(body, 'nova_docker_boot_phase_seconds_sum{phase="active"}') ?? 0) - 1.92) < 1e-9);
    assert.equal(sample(body, 'nova_docker_boot_phase_seconds_bucket{le="0.5",phase="active"}'), 1);
    assert.equal(sample(body, 'nova_docker_boot_phase_seconds_bucket{le="2",phase="active"}'), 2);
    assert.equal(sample(body, 'nova_docker_boots_total{result="success"}'), 2);
    assert.equal(sample(body, 'nova_docker_boots_total{result="failure"}'), 1);
  });

  it('counts image cache hits and misses', async () => {
    const m = new AgentMetrics({ version: '1', host: 'h', processMetrics: false });
    m.images.lookup('glance', 'miss');
    m.images.lookup('glance', 'hit');
    m.images.lookup('glance', 'hit');
    const { body } = await m.render();
    assert.equal(sample(body, 'nova_docker_image_cache_lookups_total{source="glance",result="hit"}'), 2);
    assert.equal(sample(body, 'nova_docker_image_cache_lookups_total{source="glance",result="miss"}'), 1);
  });

  it('observes VIF plug times and network-vif-plugged waits by outcome', async () => {
    const m = new AgentMetrics({ version: '1', host: 'h', processMetrics: false });
    m.vifs.plugged(0.2, 1, true);
    m.vifs.plugged(0.3, 1, false);
    m.vifWait(4.2, 'completed');
    m.vifWait(5, 'timeout');
    const { body } = await m.render();
    assert.equal(sample(body, 'nova_docker_vif_plug_seconds_count{result="success"}'), 1);
    assert.equal(sample(body, 'nova_docker_vif_plug_seconds_count{result="failure"}'), 1);
    assert.equal(sample(body, 'nova_docker_vif_plugged_wait_seconds_sum{outcome="completed"}'), 4.2);
    assert.equal(sample(body, 'nova_docker_vif_plugged_wait_seconds_count{outcome="timeout"}'), 1);
  });

  it('reads instances by power state at scrape time, and hypervisor_up', async () => {
    const m = new AgentMetrics({ version: '1', host: 'h', processMetrics: false });
    let states = new Map<string, PowerState>([
      ['a', PowerState.RUNNING],
      ['b', PowerState.RUNNING],
      ['c', PowerState.SHUTDOWN],
    ]);
    let fail = false;
    m.watchInstances(() => (fail ? Promise.reject(new Error('docker down')) : Promise.resolve(states)));
    let { body } = await m.render();
    assert.equal(sample(body, 'nova_docker_instances{power_state="running"}'), 2);
    assert.equal(sample(body, 'nova_docker_instances{power_state="shutdown"}'), 1);
    assert.equal(sample(body, 'nova_docker_instances{power_state="paused"}'), 0);
    assert.equal(sample(body, 'nova_docker_hypervisor_up'), 1);
    states = new Map([['a', PowerState.PAUSED]]);
    ({ body } = await m.render());
    assert.equal(sample(body, 'nova_docker_instances{power_state="running"}'), 0);
    assert.equal(sample(body, 'nova_docker_instances{power_state="paused"}'), 1);
    fail = true;
    ({ body } = await m.render());
    assert.equal(sample(body, 'nova_docker_hypervisor_up'), 0);
    assert.equal(sample(body, 'nova_docker_instances{power_state="paused"}'), undefined);
  });
});

describe('metrics/server', () => {
  function get(port: number, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('serves GET /metrics on loopback and nothing else', async () => {
    const m = new AgentMetrics({ version: '9', host: 'h', processMetrics: false });
    const server = await startMetricsServer(m, '127.0.0.1', 0);
    try {
      assert.ok(server.port > 0);
      const ok = await get(server.port, '/metrics');
      assert.equal(ok.status, 200);
      assert.match(ok.type, /^text\/plain; version=0\.0\.4/);
      assert.equal(sample(ok.body, 'nova_docker_info{version="9",host="h"}'), 1);
      assert.equal((await get(server.port, '/metrics?x=1')).status, 200);
      assert.equal((await get(server.port, '/')).status, 404);
      assert.equal((await get(server.port, '/metrics', 'POST')).status, 405);
    } finally {
      await server.close();
    }
  });

  it('fails to start on a port in use', async () => {
    const m = new AgentMetrics({ version: '9', host: 'h', processMetrics: false });
    const first = await startMetricsServer(m, '127.0.0.1', 0);
    try {
      await assert.rejects(startMetricsServer(m, '127.0.0.1', first.port), /EADDRINUSE/);
    } finally {
      await first.close();
    }
  });
});

describe('rpc/server observer', () => {
  it('reports received messages, failures by exception class and replies', async () => {
    const transport = new FakeTransport();
    const m = new AgentMetrics({ version: '1', host: 'h', processMetrics: false });
    const server = new RpcServer(transport, {
      exchange: 'nova',
      topic: 'compute',
      server: 'h',
      endpoints: [
        {
          namespace: null,
          version: '6.1',
          methods: {
            ok: () => 'fine',
            missing: () => {
              throw new NovaError('InstanceNotFound', 'Instance x could not be found.');
            },
            boom: () => {
              throw new TypeError('bug');
            },
          },
        },
      ],
      flags: { durable: false, autoDelete: false, haQueues: false, quorum: false, transientQueuesTtlS: 1800 },
      maxMessageBytes: 1 << 20,
      logger: nullLogger(),
      observer: m.rpc,
    });
    await server.start();
    const deliver = (message: Record<string, unknown>): void =>
      transport.consumers[0]?.onMessage({
        content: encodeEnvelope({ version: '6.0', args: {}, ...message }),
        contentType: 'application/json',
        routingKey: 'compute.h',
      });
    deliver({ method: 'ok', _msg_id: 'm1', _reply_q: 'reply_1' });
    deliver({ method: 'missing', _msg_id: 'm2', _reply_q: 'reply_1' });
    deliver({ method: 'boom' });
    deliver({ method: 'not_a_method_we_serve_' + 'x'.repeat(40) });
    await pollUntil(() => (server.inFlightCount === 0 && transport.published.length === 2 ? true : undefined), {
      timeoutMs: 2000,
      intervalMs: 5,
      what: 'the handlers to finish',
    });
    await server.stop(100);
    const { body } = await m.render();
    assert.equal(sample(body, 'nova_docker_rpc_messages_received_total{kind="call",method="ok"}'), 1);
    assert.equal(sample(body, 'nova_docker_rpc_messages_received_total{kind="call",method="missing"}'), 1);
    assert.equal(sample(body, 'nova_docker_rpc_messages_received_total{kind="cast",method="boom"}'), 1);
    assert.equal(sample(body, 'nova_docker_rpc_messages_received_total{kind="cast",method="other"}'), 1);
    assert.equal(
      sample(body, 'nova_docker_rpc_failures_total{kind="call",method="missing",exception="InstanceNotFound"}'),
      1,
    );
    assert.equal(sample(body, 'nova_docker_rpc_failures_total{kind="cast",method="boom",exception="TypeError"}'), 1);
    assert.equal(
      sample(body, 'nova_docker_rpc_failures_total{kind="cast",method="other",exception="NoSuchMethod"}'),
      1,
    );
    assert.equal(sample(body, 'nova_docker_rpc_replies_sent_total{outcome="result"}'), 1);
    assert.equal(sample(body, 'nova_docker_rpc_replies_sent_total{outcome="failure"}'), 1);
  });
});
