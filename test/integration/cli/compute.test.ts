/** `nova-docker compute` as a process: serves RPC, never logs the password, exits 0 on SIGTERM. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from '../../../src/common/poll.js';
import { adminContext } from '../../../src/rpc/context.js';
import { BROKER, REPO_ROOT, startMessaging } from '../../support/broker.js';
import { labNovaConf } from '../../support/lab.js';

describe('nova-docker compute (process, against the lab)', function () {
  this.timeout(90_000);

  it('serves baseapi ping on compute.<host> and stops cleanly on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nd-cli-'));
    // a fixed name: each run reuses its service and compute node records in the lab's Nova
    const host = 'nova-docker-cli-test';
    const conf = join(dir, 'nova.conf');
    writeFileSync(conf, labNovaConf(host));
    const proc = spawn(process.execPath, [join(REPO_ROOT, 'dist/src/cli.js'), 'compute', '--config-file', conf], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    proc.stderr.on('data', (d: Buffer) => (log += d.toString()));
    proc.stdout.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const client = await startMessaging();
    try {
      await pollUntil(() => (log.includes('RPC server consuming') ? true : undefined), {
        timeoutMs: 20_000,
        what: `the agent to consume (log so far: ${log})`,
      });
      const r = await client
        .client('compute')
        .call(adminContext(), 'ping', { arg: 'hello' }, { server: host, namespace: 'baseapi', version: '1.1' });
      assert.deepEqual(r, { service: 'compute', arg: 'hello' });
      proc.kill('SIGTERM');
      assert.equal(await exited, 0, log);
      assert.ok(!log.includes(BROKER.password), 'the broker password never appears in the log');
      assert.ok(!log.includes('labservice'), 'the service password never appears in the log');
      assert.match(log, /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \d+ INFO nova_docker\.rpc \[-\] Connected to AMQP/);
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await client.transport.deleteQueue(`compute.${host}`);
      await client.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start without transport_url, naming the option', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nd-cli-'));
    const conf = join(dir, 'nova.conf');
    writeFileSync(conf, '[DEFAULT]\nhost = x\n');
    const proc = spawn(process.execPath, [join(REPO_ROOT, 'dist/src/cli.js'), 'compute', '--config-file', conf]);
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    rmSync(dir, { recursive: true, force: true });
    assert.equal(code, 1);
    assert.match(err, /\[DEFAULT\] transport_url/);
  });
});
