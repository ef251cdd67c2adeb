import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TmpDir } from './tmp.js';

const CLI = fileURLToPath(new URL('../../../src/cli.js', import.meta.url));

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 15000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('nova-docker check-config', () => {
  let tmp: TmpDir;
  before(() => {
    tmp = new TmpDir();
  });
  after(() => tmp.cleanup());

  it('prints the effective config with secrets masked and exits 0', () => {
    const file = tmp.write(
      'nova.conf',
      '[DEFAULT]\ntransport_url = rabbit://openstack:hunter2@127.0.0.1:5672/\nreport_interval = 5\n' +
        '[docker]\nregistry_password = t0psecret\n',
    );
    tmp.write('nova.conf.d/10-debug.conf', '[DEFAULT]\ndebug = true\n');
    const r = run('check-config', '--config-file', file, '--config-dir', tmp.path('nova.conf.d'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^transport_url = rabbit:\/\/openstack:\*\*\*@127\.0\.0\.1:5672\/$/m);
    assert.match(r.stdout, /^report_interval = 5$/m);
    assert.match(r.stdout, /^debug = true$/m);
    assert.match(r.stdout, /^registry_password = \*\*\*$/m);
    assert.ok(!r.stdout.includes('hunter2') && !r.stdout.includes('t0psecret'));
    assert.match(r.stdout, /\n# the compute agent logs to stderr\n$/);
  });

  it('names the file the compute agent logs to, as log_file and log_dir give it', () => {
    const cases: Array<[string, string]> = [
      ['log_dir = /var/log/nova-docker\n', '/var/log/nova-docker/nova-docker.log'],
      ['log_dir = /var/log/nova\nlog_file = compute.log\n', '/var/log/nova/compute.log'],
      ['log_file = /tmp/agent.log\n', '/tmp/agent.log'],
    ];
    for (const [conf, path] of cases) {
      const file = tmp.write('log.conf', `[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:5672/\n${conf}`);
      const r = run('check-config', '--config-file', file);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(r.stdout.endsWith(`\n# the compute agent logs to ${path}\n`), `${conf}: ${r.stdout.slice(-200)}`);
    }
  });

  it('lists every problem on stderr and exits 1', () => {
    const file = tmp.write(
      'bad.conf',
      '[DEFAULT]\ntransport_url = rabbit://openstack:hunter2@127.0.0.1:http/\nreport_interval = ten\n',
    );
    const r = run('check-config', `--config-file=${file}`);
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /\[DEFAULT\] report_interval: "ten" is not an integer/);
    assert.match(
      r.stderr,
      /\[DEFAULT\] transport_url: "rabbit:\/\/openstack:\*\*\*@127\.0\.0\.1:http\/" host 1 has an invalid port/,
    );
    assert.ok(!r.stderr.includes('hunter2'));
  });

  it('exits 1 for a missing file and 2 for usage errors', () => {
    const missing = run('check-config', '--config-file', tmp.path('nope.conf'));
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /nope\.conf: config file not found/);
    assert.equal(run('check-config').status, 2);
    assert.equal(run('check-config', '--config-file').status, 2);
    assert.equal(run('check-config', '--config-file', 'x', 'stray').status, 2);
  });

  it('registry-sync: usage errors exit 2, missing Keystone credentials 1 (before any network call)', function () {
    this.timeout(120_000); // seven CLI starts
    const base =
      '[DEFAULT]\ntransport_url = rabbit://u:p@127.0.0.1:5672/\n[glance]\napi_servers = http://127.0.0.1:9\n';
    const noAuth = tmp.write('sync-noauth.conf', base);
    assert.equal(run('registry-sync').status, 2);
    const stray = run('registry-sync', '--config-file', noAuth, '--bogus');
    assert.equal(stray.status, 2);
    assert.match(stray.stderr, /registry-sync: unexpected argument --bogus/);
    assert.match(run('registry-sync', '--config-file', noAuth, '--interval', '5').stderr, /--interval needs --watch/);
    const r = run('registry-sync', '--config-file', noAuth);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /\[glance\] auth_url: required \(or in one of \[service_user\], \[keystone_authtoken\], \[placement\]\)/,
    );
    // [glance] is tried before [placement]
    const both = tmp.write(
      'sync-both.conf',
      `${base}auth_url = http://127.0.0.1:9/v3\n[placement]\nauth_url = http://127.0.0.1:9/v3\nusername = p\npassword = p\nproject_name = s\n`,
    );
    const g = run('registry-sync', '--config-file', both);
    assert.equal(g.status, 1);
    assert.match(g.stderr, /\[glance\] username: required to talk to Keystone/);
    assert.match(run('--help').stdout, /registry-sync --config-file F \[--watch \[--interval S\]\]/);
  });
});
