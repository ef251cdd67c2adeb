/** `nova-docker compute` as a process: serves RPC, never logs the password, exits 0 on SIGTERM. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:http';
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
      const t0 = Date.now();
      proc.kill('SIGTERM');
      assert.equal(await exited, 0, log);
      assert.ok(Date.now() - t0 < 5000, `exited ${Date.now() - t0} ms after an idle SIGTERM`);
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

  it('logs to log_dir/log_file, reopens it on SIGHUP and exits 0 within seconds of an idle SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nd-cli-'));
    const host = 'nova-docker-cli-test-log';
    const conf = join(dir, 'nova.conf');
    const file = join(dir, 'agent.log');
    writeFileSync(conf, labNovaConf(host, `[DEFAULT]\nlog_dir = ${dir}\nlog_file = agent.log\n`));
    const proc = spawn(process.execPath, [join(REPO_ROOT, 'dist/src/cli.js'), 'compute', '--config-file', conf], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    const read = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');
    const client = await startMessaging();
    try {
      await pollUntil(() => (read(file).includes('RPC server consuming') ? true : undefined), {
        timeoutMs: 30_000,
        what: `the agent to consume (log so far: ${read(file)}${out})`,
      });
      // logrotate: move the file away, SIGHUP, the agent writes to a new file at the same path
      renameSync(file, `${file}.1`);
      proc.kill('SIGHUP');
      await pollUntil(() => (read(file).includes(`Caught SIGHUP, reopened ${file}`) ? true : undefined), {
        timeoutMs: 10_000,
        what: 'the reopened log file',
      });
      assert.equal(proc.exitCode, null, 'SIGHUP does not stop the agent');
      const r = await client
        .client('compute')
        .call(adminContext(), 'ping', { arg: 'after HUP' }, { server: host, namespace: 'baseapi', version: '1.1' });
      assert.deepEqual(r, { service: 'compute', arg: 'after HUP' });

      const t0 = Date.now();
      proc.kill('SIGTERM');
      const code = await exited;
      const took = Date.now() - t0;
      assert.equal(code, 0, read(file));
      assert.ok(took < 5000, `exited ${took} ms after SIGTERM`);
      assert.match(read(file), / INFO nova_docker\.service \[-\] Caught SIGTERM, stopping children\n/);
      assert.match(read(`${file}.1`), / INFO nova_docker\.rpc\.server \[-\] RPC server consuming compute, /);
      assert.equal(out, '', 'nothing on stdout/stderr when logging to a file');
      assert.ok(!read(file).includes('labrabbit') && !read(`${file}.1`).includes('labservice'));
    } finally {
      if (proc.exitCode === null) proc.kill('SIGKILL');
      await client.transport.deleteQueue(`compute.${host}`);
      await client.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** The agent with the lab's nova.conf and `[docker] host_url = unix://<sock>`; its output collected. */
  function agentOn(host: string, dir: string, sock: string) {
    const conf = join(dir, 'nova.conf');
    writeFileSync(conf, labNovaConf(host, `[docker]\nhost_url = unix://${sock}\n`));
    const proc = spawn(process.execPath, [join(REPO_ROOT, 'dist/src/cli.js'), 'compute', '--config-file', conf], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    proc.stderr.on('data', (d: Buffer) => (log += d.toString()));
    proc.stdout.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    return { proc, exited, log: () => log };
  }

  it('exits 1, connection closed, when the Docker socket answers as no Docker Engine does (waiting would not help)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nd-cli-'));
    const sock = join(dir, 'not-docker.sock');
    const server = createServer((_req, res) => {
      res.writeHead(404).end('404 page not found');
    });
    await new Promise<void>((r) => server.listen(sock, r));
    const agent = agentOn('i15-cli-refused', dir, sock);
    try {
      // exits by itself: nothing left open (broker connection, timers) keeps it alive
      assert.equal(await agent.exited, 1, agent.log());
      assert.match(
        agent.log(),
        / ERROR nova_docker\.service \[-\] compute service failed to start: the Docker Engine cannot be used: docker GET \/version: not found \(404\)/,
      );
      assert.doesNotMatch(agent.log(), /Waiting for the hypervisor|RPC server consuming/);
    } finally {
      if (agent.proc.exitCode === null) agent.proc.kill('SIGKILL');
      await new Promise((r) => server.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('waits for a Docker socket that is not there yet, and exits 0 on SIGTERM meanwhile', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nd-cli-'));
    const agent = agentOn('i15-cli-waiting', dir, join(dir, 'docker.sock'));
    try {
      await pollUntil(() => (agent.log().includes('Waiting for the hypervisor') ? true : undefined), {
        timeoutMs: 30_000,
        what: `the agent to wait for dockerd (log so far: ${agent.log()})`,
      });
      assert.equal(agent.proc.exitCode, null, 'waiting, not exited');
      agent.proc.kill('SIGTERM');
      assert.equal(await agent.exited, 0, agent.log());
      assert.match(agent.log(), /Caught SIGTERM, stopping children/);
      assert.doesNotMatch(agent.log(), /failed to start|RPC server consuming/);
    } finally {
      if (agent.proc.exitCode === null) agent.proc.kill('SIGKILL');
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
