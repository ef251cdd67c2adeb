/**
 * install.sh, the parts that touch nothing outside a scratch DESTDIR: usage,
 * --dry-run, and its step functions (sourced): config, systemd unit, the
 * configuration check and the PID-file background agent (with `sleep` standing
 * in for node). No users are created and no service is started.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { fileURLToPath } from 'node:url';
import { TmpDir, MINIMAL } from '../config/tmp.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const INSTALL = `${ROOT}install.sh`;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function bash(script: string, env: Record<string, string> = {}): Run {
  const r = spawnSync('bash', ['-c', script], {
    cwd: ROOT,
    encoding: 'utf8',
    // stdin not a socket: bash would take itself for an ssh command and read ~/.bashrc
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: process.env['HOME'] ?? '/root', ...env },
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Sources install.sh (which then only defines its steps) and runs `body`. */
function steps(body: string, env: Record<string, string>): Run {
  return bash(`set -euo pipefail; source ${INSTALL}\n${body}`, env);
}

/** The process exists and is not a zombie (its reaper may be slow, or PID 1 may not reap). */
function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z';
  } catch {
    return false;
  }
}

describe('install.sh', function () {
  this.timeout(60_000);
  let tmp: TmpDir;
  let env: Record<string, string>;
  beforeEach(() => {
    tmp = new TmpDir();
    // the current user as the agent's user: no setpriv, no nova account needed
    env = { DESTDIR: tmp.dir, NOVA_DOCKER_USER: userInfo().username };
  });
  afterEach(() => tmp.cleanup());

  it('prints its modes on --help and rejects unknown options and mixed modes', () => {
    const help = bash(`bash ${INSTALL} --help`);
    assert.equal(help.status, 0);
    for (const mode of ['--test-deps', '--no-start', '--restart', '--stop', '--build', '--all-in-one', '--dry-run']) {
      assert.match(help.stdout, new RegExp(`^\\s*(\\./install\\.sh )?${mode}\\b`, 'm'), mode);
    }
    const bad = bash(`bash ${INSTALL} --frobnicate`);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /unknown option --frobnicate/);
    const mixed = bash(`bash ${INSTALL} --test-deps --restart`);
    assert.equal(mixed.status, 2);
    assert.match(mixed.stderr, /operator install only/);
  });

  it('--dry-run shows the operator steps and changes nothing', () => {
    const r = bash(`bash ${INSTALL} --dry-run`, env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /would run: install -D -m 0640 \S+\/etc\/nova-docker\.conf\.sample \S+\/etc\/nova\/nova-docker\.conf/,
    );
    assert.match(r.stdout, /would write \/etc\/systemd\/system\/nova-docker-compute\.service/);
    // no nova.conf under DESTDIR: nothing to start yet, and it says so
    assert.match(r.stdout, /no \/etc\/nova\/nova\.conf yet/);
    assert.doesNotMatch(r.stdout, /would start|systemctl (start|restart)/);
    assert.deepEqual(readdirSync(tmp.dir), []);
  });

  it('installs the sample config once and never overwrites it', () => {
    const conf = tmp.path('etc/nova/nova-docker.conf');
    const first = steps('install_config', env);
    assert.equal(first.status, 0, first.stderr);
    assert.equal(readFileSync(conf, 'utf8'), readFileSync(`${ROOT}etc/nova-docker.conf.sample`, 'utf8'));
    const edited = '[DEFAULT]\nhost = edited-by-operator\n';
    const again = steps(`printf '%s' '${edited}' > ${conf}; install_config`, env);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /nova-docker\.conf exists, left as it is/);
    assert.equal(readFileSync(conf, 'utf8'), edited);
  });

  it('writes the systemd unit once: node with a small young generation, as the agent user, restarted on failure', () => {
    const r = steps('install_unit && echo changed; install_unit || echo unchanged', env);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(
      r.stdout.split('\n').filter((l) => /^(un)?changed$/.test(l)),
      ['changed', 'unchanged'],
    );
    const unit = readFileSync(tmp.path('etc/systemd/system/nova-docker-compute.service'), 'utf8');
    const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1];
    assert.equal(
      execStart,
      `${process.execPath} --max-semi-space-size=1 ${ROOT}dist/src/cli.js compute ` +
        '--config-file /etc/nova/nova.conf --config-file /etc/nova/nova-docker.conf',
    );
    for (const line of [
      `User=${userInfo().username}`,
      'SupplementaryGroups=docker',
      'Environment=MALLOC_ARENA_MAX=2',
      'Restart=on-failure',
      'KillSignal=SIGTERM',
      'WantedBy=multi-user.target',
    ]) {
      assert.match(unit, new RegExp(`^${line}$`, 'm'), line);
    }
  });

  it('starts the agent only with a valid configuration, naming the problem otherwise', () => {
    tmp.write('etc/nova/nova-docker.conf', '[DEFAULT]\n');
    tmp.write('etc/nova/nova.conf', '[DEFAULT]\nhost = h\n');
    const bad = steps('config_ready', env);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /transport_url: required option is not set/);
    assert.match(bad.stderr, /not starting nova-docker-compute/);
    tmp.write('etc/nova/nova.conf', MINIMAL);
    const good = steps('config_ready', env);
    assert.equal(good.status, 0, good.stderr);
  });

  it('reuses a running agent without checking the configuration, but restarts only with a valid one', () => {
    // no systemd whatever the test machine runs; `sleep` stands in for node
    const fake = `systemd_running() { false; }\nagent_argv() { AGENT_ARGV=(/bin/sleep 298.${process.pid}); }`;
    tmp.write('etc/nova/nova.conf', MINIMAL);
    tmp.write('etc/nova/nova-docker.conf', '[docker]\n');
    const first = steps(`${fake}\nstart_agent 0 0`, env);
    assert.equal(first.status, 0, first.stderr);
    const pid = Number(readFileSync(tmp.path('run/nova-docker/nova-docker-compute.pid'), 'utf8').trim());
    try {
      tmp.write('etc/nova/nova.conf', '[DEFAULT]\n'); // broken after the start
      const reuse = steps(`${fake}\nstart_agent 0 0`, env);
      assert.equal(reuse.status, 0, reuse.stderr);
      assert.match(reuse.stdout, new RegExp(`running \\(pid ${pid}\\), reused`));
      const restart = steps(`${fake}\nstart_agent 1 0`, env);
      assert.equal(restart.status, 1);
      assert.match(restart.stderr, /transport_url: required option is not set/);
      assert.ok(alive(pid), 'a failed restart leaves the running agent alone');
      tmp.write('etc/nova/nova.conf', MINIMAL);
      const restarted = steps(`${fake}\nstart_agent 1 0`, env);
      assert.equal(restarted.status, 0, restarted.stderr);
      assert.match(restarted.stdout, new RegExp(`stopped nova-docker-compute \\(pid ${pid}\\)[^]*started`));
      assert.ok(!alive(pid));
      const next = Number(readFileSync(tmp.path('run/nova-docker/nova-docker-compute.pid'), 'utf8').trim());
      assert.notEqual(next, pid);
      process.kill(next, 'SIGKILL');
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('counts any nova-docker agent named by the PID file (other node flags or paths) as running', () => {
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 300000)', '/x/dist/src/cli.js', 'compute'], {
      stdio: 'ignore',
    });
    try {
      tmp.write('run/nova-docker/nova-docker-compute.pid', `${other.pid}\n`);
      const r = steps('systemd_running() { false; }\nstart_agent 0 0', env);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`running \\(pid ${other.pid}\\), reused`));
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('runs one background agent with a PID file, reuses it, replaces a stale PID file, stops it', () => {
    // `sleep` stands in for node: a unique argv, so the PID check can tell it apart
    const fake = `agent_argv() { AGENT_ARGV=(/bin/sleep 299.${process.pid}); }`;
    const pidFile = tmp.path('run/nova-docker/nova-docker-compute.pid');
    const start = () => steps(`${fake}\nstart_background`, env);

    tmp.write('run/nova-docker/nova-docker-compute.pid', `${process.pid}\n`); // alive, but not the agent
    const first = start();
    assert.equal(first.status, 0, first.stderr);
    assert.match(
      first.stdout,
      /started nova-docker-compute \(pid \d+, log \/var\/log\/nova-docker\/nova-docker-compute\.log\)/,
    );
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    assert.notEqual(pid, process.pid);
    try {
      assert.ok(alive(pid));
      assert.equal(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), `/bin/sleep\u0000299.${process.pid}\u0000`);
      assert.ok(existsSync(tmp.path('var/log/nova-docker/nova-docker-compute.log')));

      const second = start();
      assert.equal(second.status, 0, second.stderr);
      assert.match(second.stdout, new RegExp(`running \\(pid ${pid}\\), reused`));
      assert.equal(Number(readFileSync(pidFile, 'utf8').trim()), pid);

      const stop = steps(`${fake}\nstop_background`, env);
      assert.equal(stop.status, 0, stop.stderr);
      assert.match(stop.stdout, new RegExp(`stopped nova-docker-compute \\(pid ${pid}\\)`));
      assert.ok(!alive(pid));
      assert.ok(!existsSync(pidFile));
      const again = steps(`${fake}\nstop_background`, env);
      assert.match(again.stdout, /not running/);
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });
});
