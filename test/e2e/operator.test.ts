/**
 * End to end, what an operator sees of a running agent: oslo.log lines with
 * the request context, /metrics after one boot and one delete (boot-phase
 * histograms, RPC counters, image cache, instances by power state, process
 * metrics) and `nova-docker status` with Nova's states.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from '../../src/common/poll.js';
import type { StatusReport } from '../../src/status.js';
import { execFileP, REPO_ROOT } from '../support/broker.js';
import {
  type AgentProcess,
  bootServer,
  discoverHosts,
  hostContainers,
  labNovaConf,
  openstack,
  removeGlanceCacheTags,
  startAgent,
  uploadDockerImage,
  waitServer,
} from '../support/lab.js';

const HOST = 'nd-operator-1';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const addr = srv.address();
  await new Promise((r) => srv.close(r));
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
    })
      .on('error', reject)
      .end();
  });
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('e2e: operating the agent (logs, /metrics, status)', function () {
  this.timeout(600_000);
  let agent: AgentProcess | undefined;
  let port = 0;
  let imageId: string | undefined;
  let serverId: string | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'nd-operator-'));
  const conf = join(dir, 'nova.conf');

  before(async () => {
    port = await freePort();
    const extra = `[DEFAULT]\nmetrics_port = ${port}\n`;
    writeFileSync(conf, labNovaConf(HOST, extra));
    agent = await startAgent(HOST, extra);
    await discoverHosts();
  });

  after(async () => {
    if (serverId) await openstack(['server', 'delete', '--wait', serverId], 180_000).catch(() => undefined);
    if (imageId) {
      await openstack(['image', 'delete', imageId]).catch(() => undefined);
      await removeGlanceCacheTags(imageId);
    }
    const code = await agent?.stop();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 0, `the agent exits 0 on SIGTERM:\n${agent?.log().slice(-4000) ?? ''}`);
    assert.deepEqual(await hostContainers(HOST), [], `no container left for ${HOST}`);
  });

  it('serves /metrics before any boot: RPC counters, instances, process metrics', async () => {
    const text = await scrape(port);
    assert.equal(sample(text, 'nova_docker_hypervisor_up'), 1);
    assert.equal(sample(text, 'nova_docker_instances{power_state="running"}'), 0);
    assert.ok((sample(text, 'process_resident_memory_bytes') ?? 0) > 10e6);
    assert.match(text, /^nova_docker_info\{version="[^"]+",host="nd-operator-1"\} 1$/m);
  });

  it('after one boot: histogram counts per phase, RPC counters, cache miss, one running instance, status', async () => {
    const image = `nd-operator-${randomUUID().slice(0, 8)}`;
    imageId = await uploadDockerImage(image, 'busybox:latest');
    const name = `nd-op-${randomUUID().slice(0, 6)}`;
    const created = await bootServer(image, HOST, name, { wait: false });
    serverId = created.id;
    const s = await waitServer(created.id, (x) => x.status === 'ACTIVE' || x.status === 'ERROR', 'ACTIVE', 240_000);
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s.fault));

    // the ACTIVE save is answered before the manager records the timing: poll briefly
    const text = await pollUntil(
      async () => {
        const t = await scrape(port);
        return sample(t, 'nova_docker_boots_total{result="success"}') === 1 ? t : undefined;
      },
      { timeoutMs: 10_000, what: 'the boot in /metrics' },
    );
    for (const phase of ['spawning', 'image_ready', 'guest_created', 'spawned', 'active']) {
      assert.equal(sample(text, `nova_docker_boot_phase_seconds_count{phase="${phase}"}`), 1, phase);
    }
    const active = sample(text, 'nova_docker_boot_phase_seconds_sum{phase="active"}') ?? 0;
    const spawned = sample(text, 'nova_docker_boot_phase_seconds_sum{phase="spawned"}') ?? 0;
    assert.ok(active > 0 && active >= spawned, `active ${active} s after spawned ${spawned} s`);
    assert.equal(
      sample(text, 'nova_docker_rpc_messages_received_total{kind="cast",method="build_and_run_instance"}'),
      1,
    );
    assert.equal(sample(text, 'nova_docker_image_cache_lookups_total{source="glance",result="miss"}'), 1);
    assert.equal(sample(text, 'nova_docker_instances{power_state="running"}'), 1);
    writeFileSync('/tmp/nd-operator-metrics.txt', text);

    // the manager's lines carry Nova's request context and the instance
    assert.match(
      agent?.log() ?? '',
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{3} \\d+ INFO nova_docker\\.compute\\.manager ` +
          `\\[None req-[0-9a-f-]{36} [0-9a-f]{32} [0-9a-f]{32} - default default\\] ` +
          `\\[instance: ${created.id}\\] Starting instance\\.\\.\\.$`,
        'm',
      ),
    );

    const { stdout } = await execFileP(
      process.execPath,
      [join(REPO_ROOT, 'dist/src/cli.js'), 'status', '--config-file', conf, '--format', 'json'],
      { timeout: 60_000 },
    );
    const report = JSON.parse(stdout) as StatusReport;
    assert.equal(report.nova.reachable, true);
    assert.deepEqual(
      report.instances.map((r) => [r.uuid, r.name, r.container_state, r.power_state, r.vm_state, r.task_state]),
      [[created.id, name, 'running', 'running', 'active', null]],
    );
    const table = await execFileP(
      process.execPath,
      [join(REPO_ROOT, 'dist/src/cli.js'), 'status', '--config-file', conf],
      {
        timeout: 60_000,
      },
    );
    assert.match(
      table.stdout,
      new RegExp(`^${created.id} +${name} +m1\\.tiny +running \\(Up [^)]+\\) +running +active +-$`, 'm'),
    );
    writeFileSync('/tmp/nd-operator-status.txt', table.stdout);
  });

  it('after the delete: terminate counted, no instance left', async () => {
    assert.ok(serverId);
    await openstack(['server', 'delete', '--wait', serverId], 180_000);
    serverId = undefined;
    const text = await pollUntil(
      async () => {
        const t = await scrape(port);
        return sample(t, 'nova_docker_instances{power_state="running"}') === 0 ? t : undefined;
      },
      { timeoutMs: 10_000, what: 'no running instance in /metrics' },
    );
    assert.equal(sample(text, 'nova_docker_rpc_messages_received_total{kind="cast",method="terminate_instance"}'), 1);
    assert.equal(sample(text, 'nova_docker_rpc_failures_total{kind="cast",method="terminate_instance"}'), undefined);
  });
});
