/**
 * The DevStack plugin, run by test/unit/devstack/harness.sh the way stack.sh,
 * unstack.sh and clean.sh source it, with DevStack's functions as recording
 * stubs and real ini files in a scratch directory. The repository it sees is a
 * scratch copy whose install.sh only records its arguments. Every case runs
 * against the DevStack of each supported release (the harness's
 * DEVSTACK_RELEASE), where the stubs play that release's behaviour.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TmpDir } from '../config/tmp.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const HARNESS = `${ROOT}test/unit/devstack/harness.sh`;
const CLI = `${ROOT}dist/src/cli.js`;

const NOVA_CONF =
  '[DEFAULT]\ntransport_url = rabbit://stackrabbit:secret@10.0.0.5:5672/\nmy_ip = 10.0.0.5\n\n' +
  '[placement]\nauth_type = password\nauth_url = http://10.0.0.5/identity\n';

/** `section.option` → value of an ini text, comments skipped. */
function settingsOf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let section = '';
  for (const line of text.split('\n')) {
    const header = /^\[(.+)\]$/.exec(line);
    if (header) section = header[1] ?? '';
    const option = /^([A-Za-z_]+) = (.*)$/.exec(line);
    if (option) out[`${section}.${option[1]}`] = option[2] ?? '';
  }
  return out;
}

/** One recorded call: the stub's name and its arguments. */
type Call = string[];

/** What a DevStack release does differently, as far as the plugin can tell. */
interface Release {
  name: 'zed' | '2025.1' | '2026.1';
  /** lib/nova NOVA_BIN_DIR: /usr/local/bin, or the global venv's bin (2023.2 on) */
  binDir(work: string): string;
  /** the global venv: its bin first on PATH, and PATH in each devstack@ unit */
  globalVenv: boolean;
  /** the devstack job's openstack-cli-server (2024.2 on): `image create` only with --file */
  cliServer: boolean;
  /** configure_glance's [image_format] require_image_format_match (2025.1 on) */
  imageFormatMatch: boolean;
}

const RELEASES: Release[] = [
  { name: 'zed', binDir: () => '/usr/local/bin', globalVenv: false, cliServer: false, imageFormatMatch: false },
  ...(['2025.1', '2026.1'] as const).map((name) => ({
    name,
    binDir: (work: string) => `${work}/opt/stack/data/venv/bin`,
    globalVenv: true,
    cliServer: true,
    imageFormatMatch: true,
  })),
];

for (const release of RELEASES) {
  describe(`devstack plugin on DevStack ${release.name}`, function () {
    this.timeout(30_000);
    let tmp: TmpDir;
    let repo: string;

    beforeEach(() => {
      tmp = new TmpDir();
      repo = tmp.path('repo');
      tmp.write(
        'repo/install.sh',
        `#!/bin/bash\necho "install.sh $* NOVA_DOCKER_NODE=$NOVA_DOCKER_NODE" >> ${tmp.dir}/install.log\n`,
      );
      chmodSync(`${repo}/install.sh`, 0o755);
      symlinkSync(`${ROOT}devstack`, `${repo}/devstack`);
      symlinkSync(`${ROOT}etc`, `${repo}/etc`);
      tmp.write('etc/nova/nova.conf', NOVA_CONF);
    });
    afterEach(() => tmp.cleanup());

    function run(steps: string[], env: Record<string, string> = {}): Call[] {
      writeFileSync(tmp.path('calls.log'), '');
      const r = spawnSync('bash', [HARNESS, tmp.dir, repo, ...steps], {
        encoding: 'utf8',
        // stdin not a socket: bash would take itself for an ssh command and read ~/.bashrc
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', DEVSTACK_RELEASE: release.name, ...env },
        timeout: 20_000,
      });
      assert.equal(r.status, 0, `harness ${steps.join(' ')} failed:\n${r.stderr}`);
      return readFileSync(tmp.path('calls.log'), 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => l.split('\t'));
    }
    const agentCommand = (): string =>
      `/usr/bin/env MALLOC_ARENA_MAX=2 ${process.execPath} --max-semi-space-size=1 /usr/lib/nova-docker/current/dist/src/cli.js compute ` +
      `--config-file ${tmp.dir}/etc/nova/nova-cpu.conf --config-file ${tmp.dir}/etc/nova/nova-docker.conf`;
    const named = (calls: Call[], name: string): Call[] => calls.filter((c) => c[0] === name);
    const ini = (name: string): string => readFileSync(tmp.path(name), 'utf8');
    const binDir = (): string => release.binDir(tmp.dir);

    it('stack install: Docker Engine and npm from packages when missing, stack user in group docker, build, install', () => {
      // a node without an npm of its own, and none on PATH
      const node = tmp.write('node/bin/node', `#!/bin/sh\nexec ${process.execPath} "$@"\n`);
      chmodSync(node, 0o755);
      const calls = run(['stack:install'], { MISSING_COMMANDS: 'dockerd npm', NOVA_DOCKER_NODE: node });
      assert.deepEqual(named(calls, 'install_package'), [
        ['install_package', 'docker.io'],
        ['install_package', 'npm'],
      ]);
      assert.deepEqual(named(calls, 'add_user_to_group'), [['add_user_to_group', 'stack', 'docker']]);
      assert.deepEqual(named(calls, 'start_service'), [['start_service', 'docker']]);
      // the build as the stack user, then the built agent installed as root, node as a full path
      // (systemd units do not search PATH the same way)
      assert.equal(
        ini('install.log'),
        `install.sh --build NOVA_DOCKER_NODE=${node}\ninstall.sh --install-agent NOVA_DOCKER_NODE=${node}\n`,
      );
      assert.deepEqual(
        named(calls, 'sudo').map((c) => c.slice(1, 4)),
        [['env', `NOVA_DOCKER_NODE=${node}`, 'NOVA_DOCKER_PREFIX=/usr/lib/nova-docker']],
      );

      const present = run(['stack:install']);
      assert.deepEqual(named(present, 'install_package'), []);
    });

    it('stack install: a node older than 20.12 (Debian 12 nodejs 18) is not used: install.sh --install-node gives one', () => {
      const old = tmp.write('old/bin/node', `#!/bin/sh\necho 18.19.0\n`);
      chmodSync(old, 0o755);
      const fetched = tmp.write('fetched/bin/node', `#!/bin/sh\nexec ${process.execPath} "$@"\n`);
      chmodSync(fetched, 0o755);
      tmp.write('fetched/bin/npm', '#!/bin/sh\n');
      tmp.write(
        'repo/install.sh',
        `#!/bin/bash\necho "install.sh $* NOVA_DOCKER_NODE=$NOVA_DOCKER_NODE" >> ${tmp.dir}/install.log\n` +
          `if [ "$1" = --install-node ]; then echo "install.sh: fetching Node.js"; echo ${fetched}; fi\n`,
      );
      const calls = run(['stack:install'], { NOVA_DOCKER_NODE: old });
      assert.deepEqual(named(calls, 'install_package'), [], 'no nodejs package');
      assert.deepEqual(
        named(calls, 'sudo').map((c) => c.slice(1, 3)),
        [
          ['env', 'NOVA_DOCKER_NODE='],
          ['env', `NOVA_DOCKER_NODE=${fetched}`],
        ],
      );
      assert.equal(
        ini('install.log'),
        `install.sh --install-node NOVA_DOCKER_NODE=\n` +
          `install.sh --build NOVA_DOCKER_NODE=${fetched}\ninstall.sh --install-agent NOVA_DOCKER_NODE=${fetched}\n`,
      );
    });

    it("stack install: a node's own npm is used, no npm package even with none on PATH", () => {
      const node = tmp.write('node/bin/node', `#!/bin/sh\nexec ${process.execPath} "$@"\n`);
      chmodSync(node, 0o755);
      tmp.write('node/bin/npm', '#!/bin/sh\n');
      const calls = run(['stack:install'], { MISSING_COMMANDS: 'npm', NOVA_DOCKER_NODE: node });
      assert.deepEqual(named(calls, 'install_package'), []);
    });

    it("stack post-config: compute_driver and [docker] in nova-docker.conf, nova.conf untouched, Glance's formats", () => {
      // configure_glance wrote glance-api.conf before the plugin's phases
      run(['configure:glance', 'stack:post-config']);
      // stack.sh's async configure_neutron_nova owns nova.conf during post-config (the harness dies on a write)
      assert.equal(ini('etc/nova/nova.conf'), NOVA_CONF);
      // the sample's comments stay; the values land in its [DEFAULT] and [docker] sections
      assert.deepEqual(settingsOf(ini('etc/nova/nova-docker.conf')), {
        'DEFAULT.compute_driver': 'docker.DockerDriver',
        'docker.host_url': 'unix:///var/run/docker.sock',
        'docker.pull_policy': 'if-not-present',
      });
      // DevStack's own [image_format] setting stays beside the formats
      assert.deepEqual(settingsOf(ini('etc/glance/glance-api.conf')), {
        'DEFAULT.debug': 'True',
        ...(release.imageFormatMatch ? { 'image_format.require_image_format_match': 'True' } : {}),
        'image_format.container_formats': 'ami,ari,aki,bare,ovf,ova,docker,compressed',
        'glance_store.default_backend': 'fast',
      });
    });

    it('keeps configured Glance container formats, adding docker once', () => {
      tmp.write(
        'etc/glance/glance-api.conf',
        '[DEFAULT]\nbind_host = 10.0.0.5\n\n[image_format]\ncontainer_formats = bare,ovf\n',
      );
      run(['stack:post-config']);
      run(['stack:post-config']);
      assert.equal(
        ini('etc/glance/glance-api.conf'),
        '[DEFAULT]\nbind_host = 10.0.0.5\n\n[image_format]\ncontainer_formats = bare,ovf,docker\n',
      );
    });

    it('leaves Glance alone when g-api runs elsewhere', () => {
      run(['stack:post-config'], { ENABLED_SERVICES: 'n-cpu' });
      assert.ok(!existsSync(tmp.path('etc/glance/glance-api.conf')));
    });

    it('takes the settings from local.conf and keeps an existing nova-docker.conf', () => {
      tmp.write('etc/nova/nova-docker.conf', '[DEFAULT]\nhost = compute-7\n');
      const calls = run(['stack:post-config'], {
        NOVA_DOCKER_COMPUTE_DRIVER: 'novadocker.virt.docker.DockerDriver',
        NOVA_DOCKER_REGISTRY_URL: '10.0.0.5:5000',
        NOVA_DOCKER_PULL_POLICY: 'always',
      });
      assert.deepEqual(named(calls, 'sudo'), []);
      assert.equal(
        ini('etc/nova/nova-docker.conf'),
        '[DEFAULT]\nhost = compute-7\ncompute_driver = novadocker.virt.docker.DockerDriver\n' +
          '[docker]\nhost_url = unix:///var/run/docker.sock\npull_policy = always\nregistry_url = 10.0.0.5:5000\n',
      );
    });

    it("runs the agent as n-cpu in DevStack's unit with nova-cpu.conf and its own config, other services unchanged, a config the agent accepts", () => {
      const calls = run(['stack:post-config', 'start:n-api', 'stack:post-config', 'start:n-cpu']);
      assert.deepEqual(named(calls, 'run_process'), [
        ['run_process', 'n-api', `${binDir()}/n-api`],
        // no group: under systemd the stack user's groups apply and node is the unit's main process
        ['run_process', 'n-cpu', agentCommand(), ''],
      ]);
      // the unit DevStack's run_process wrote: the agent, no nova-compute from NOVA_BIN_DIR, no Group
      const unit = settingsOf(ini('etc/systemd/system/devstack@n-cpu.service'));
      assert.equal(unit['Service.ExecStart'], agentCommand());
      assert.equal(unit['Service.User'], 'stack');
      assert.equal(unit['Service.Group'], undefined);
      // with the global venv the unit's PATH starts with NOVA_BIN_DIR, the venv
      assert.equal(
        unit['Service.Environment']?.startsWith(`"PATH=${binDir()}:`),
        release.globalVenv ? true : undefined,
      );
      // the agent reads nova-cpu.conf, as DevStack made it: the cell's transport_url, no database
      const check = spawnSync(
        process.execPath,
        [
          CLI,
          'check-config',
          '--config-file',
          tmp.path('etc/nova/nova-cpu.conf'),
          '--config-file',
          tmp.path('etc/nova/nova-docker.conf'),
        ],
        { encoding: 'utf8' },
      );
      assert.equal(check.status, 0, check.stderr);
      assert.match(check.stdout, /^compute_driver = docker\.DockerDriver$/m);
      assert.match(check.stdout, /^transport_url = rabbit:\/\/stackrabbit:\*\*\*@10\.0\.0\.5:5672\/nova_cell1$/m);
    });

    it('stack extra: uploads NOVA_DOCKER_IMAGES to Glance as docker tarballs from a file, once', () => {
      const env = { NOVA_DOCKER_IMAGES: 'busybox:latest nginx:alpine' };
      const first = run(['stack:extra'], env);
      const uploads = named(first, 'openstack');
      // a file, not stdin: openstack-cli-server's client refuses image data on stdin
      assert.deepEqual(
        uploads.map((c) => [...c.slice(0, 8), ...c.slice(10)]),
        ['busybox:latest', 'nginx:alpine'].map((name) => [
          'openstack',
          'image',
          'create',
          '--public',
          '--container-format',
          'docker',
          '--disk-format',
          'raw',
          name,
          `file=tarball of ${name}`,
        ]),
      );
      // the tarball went to DevStack's DATA_DIR (images can be large for /tmp) and is gone after the upload
      for (const c of uploads) {
        assert.equal(c[8], '--file');
        assert.ok(c[9]?.startsWith(`${tmp.dir}/opt/stack/data/`), c[9]);
        assert.ok(!existsSync(c[9] ?? ''), `${c[9]} left behind`);
      }
      assert.deepEqual(named(run(['stack:extra'], env), 'openstack'), []);
      assert.deepEqual(run(['stack:extra']), []);
    });

    it('stack extra: a failed upload stops stack.sh and leaves no tarball behind', () => {
      const r = spawnSync('bash', [HARNESS, tmp.dir, repo, 'stack:extra'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          PATH: process.env['PATH'] ?? '/usr/bin:/bin',
          DEVSTACK_RELEASE: release.name,
          NOVA_DOCKER_IMAGES: 'busybox:latest',
          OPENSTACK_FAILS: 'image create',
        },
      });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /nova-docker: uploading busybox:latest to Glance failed/);
      assert.deepEqual(readdirSync(tmp.path('opt/stack/data')), []);
    });

    it("unstack: stops n-cpu and removes this host's instance containers only", () => {
      tmp.write('containers', 'c1 devstack-1\nc2 other-host\nc3 devstack-1\n');
      const calls = run(['unstack']);
      assert.deepEqual(named(calls, 'stop_process'), [['stop_process', 'n-cpu']]);
      assert.deepEqual(
        named(calls, 'docker').map((c) => c.slice(0, 2)),
        [
          ['docker', 'ps'],
          ['docker', 'rm'],
        ],
      );
      assert.equal(ini('containers'), 'c2 other-host\n');

      tmp.write('containers', 'c1 devstack-1\n');
      const keep = run(['unstack'], { NOVA_DOCKER_REMOVE_CONTAINERS_ON_UNSTACK: 'False' });
      assert.deepEqual(keep, [['stop_process', 'n-cpu']]);
      assert.equal(ini('containers'), 'c1 devstack-1\n');
    });

    it('names the host from nova-cpu.conf when set', () => {
      tmp.write('etc/nova/nova-cpu.conf', '[DEFAULT]\nhost = compute-7\n');
      tmp.write('containers', 'c1 devstack-1\nc2 compute-7\n');
      run(['unstack']);
      assert.equal(ini('containers'), 'c1 devstack-1\n');
    });

    it("clean: removes this host's containers and the agent's config", () => {
      run(['stack:post-config']);
      tmp.write('containers', 'c1 devstack-1\n');
      run(['clean']);
      assert.equal(ini('containers'), '');
      assert.ok(!existsSync(tmp.path('etc/nova/nova-docker.conf')));
    });

    it("does nothing unless VIRT_DRIVER=docker with n-cpu enabled: DevStack's own n-cpu", () => {
      const steps = ['stack:install', 'stack:post-config', 'start:n-cpu', 'stack:extra', 'unstack', 'clean'];
      for (const [env, group] of [
        [{ VIRT_DRIVER: 'libvirt' }, ''],
        [{ ENABLED_SERVICES: 'g-api,n-api' }, 'docker'],
      ] as [Record<string, string>, string][]) {
        const calls = run(steps, { ...env, NOVA_DOCKER_IMAGES: 'busybox:latest' });
        assert.deepEqual(calls, [
          ['run_process', 'n-cpu', `${binDir()}/nova-compute --config-file ${tmp.dir}/etc/nova/nova-cpu.conf`, group],
        ]);
        assert.doesNotMatch(ini('etc/nova/nova-cpu.conf'), /compute_driver/);
      }
    });
  });
}

describe('devstack plugin sources', function () {
  this.timeout(30_000);

  it('pass shellcheck (plugin, settings, harness, install.sh, all-in-one.sh with the install.sh and config library it sources, the fresh-machine check, the release and Neutron labs)', function () {
    const r = spawnSync(
      'shellcheck',
      [
        '-s',
        'bash',
        '-x',
        `${ROOT}devstack/plugin.sh`,
        `${ROOT}devstack/settings`,
        HARNESS,
        `${ROOT}install.sh`,
        `${ROOT}scripts/all-in-one.sh`,
        `${ROOT}test/fresh/fresh-machine.sh`,
        `${ROOT}test/lab/release-lab.sh`,
        `${ROOT}test/lab/neutron-lab.sh`,
        `${ROOT}test/lab/release-e2e.sh`,
        `${ROOT}test/lab/tempest.sh`,
      ],
      { encoding: 'utf8' },
    );
    assert.ok(!r.error, 'shellcheck is missing: bash install.sh --test-deps installs it');
    assert.equal(r.status, 0, r.stdout);
  });
});
