import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { ConfigError, loadConfig, parseArgs, type Config } from '../../../src/config/index.js';
import { loadConfigWith } from '../../../src/config/loader.js';
import type { OptionSpec } from '../../../src/config/options.js';
import { MINIMAL, TmpDir } from './tmp.js';

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('config/loader', () => {
  let tmp: TmpDir;
  beforeEach(() => {
    tmp = new TmpDir();
  });
  afterEach(() => tmp.cleanup());

  const load = (text: string, warn?: (m: string) => void): Config =>
    loadConfig({ configFiles: [tmp.write('nova.conf', text)], ...(warn ? { warn } : {}) });

  describe('defaults and types', () => {
    it('fills every option from the table, typed and frozen', () => {
      const config = load(MINIMAL);
      assert.equal(config.DEFAULT.transport_url, 'rabbit://openstack:s3cret@127.0.0.1:5672/');
      assert.equal(config.DEFAULT.host, hostname());
      assert.equal(config.DEFAULT.control_exchange, 'nova');
      assert.equal(config.DEFAULT.report_interval, 10);
      assert.equal(config.DEFAULT.instances_path, '/var/lib/nova/instances');
      assert.equal(config.DEFAULT.cpu_allocation_ratio, undefined);
      assert.equal(config.DEFAULT.initial_cpu_allocation_ratio, 16);
      assert.equal(config.oslo_messaging_rabbit.heartbeat_timeout_threshold, 60);
      assert.equal(config.oslo_messaging_rabbit.kombu_reconnect_delay, 1);
      assert.equal(config.docker.privileged, false);
      assert.equal(config.docker.api_insecure, false);
      assert.deepEqual(config.docker.cap_add, []);
      assert.equal(config.docker.pull_policy, 'if-not-present');
      assert.deepEqual(config.placement.valid_interfaces, ['internal', 'public']);
      assert.equal(config.upgrade_levels.compute, undefined);
      assert.ok(Object.isFrozen(config) && Object.isFrozen(config.docker) && Object.isFrozen(config.docker.cap_add));

      // static types follow the table
      const pids: number = config.docker.pids_limit;
      const policy: 'if-not-present' | 'always' | 'never' = config.docker.pull_policy;
      const ca: string | undefined = config.docker.ca_file;
      const url: string = config.DEFAULT.transport_url;
      // @ts-expect-error: an option without a default may be undefined
      const caNotString: string = config.docker.ca_file;
      assert.deepEqual(
        [pids, policy, ca, url.length > 0, caNotString],
        [1024, 'if-not-present', undefined, true, undefined],
      );
    });

    it('coerces with oslo semantics', () => {
      const config = load(
        MINIMAL +
          'debug = YES\nresume_guests_state_on_host_boot = off\nreport_interval = +1_0\ncpu_allocation_ratio = 1.5e1\n' +
          'metrics_port = 9100\n[oslo_messaging_rabbit]\nssl = 1\namqp_durable_queues = False\n' +
          '[docker]\ncap_add = NET_ADMIN, SYS_TIME,\npull_policy = never\n[glance]\napi_servers = http://g1:9292,http://g2:9292\n',
      );
      assert.equal(config.DEFAULT.debug, true);
      assert.equal(config.DEFAULT.resume_guests_state_on_host_boot, false);
      assert.equal(config.DEFAULT.report_interval, 10);
      assert.equal(config.DEFAULT.cpu_allocation_ratio, 15);
      assert.equal(config.DEFAULT.metrics_port, 9100);
      assert.equal(config.oslo_messaging_rabbit.ssl, true);
      assert.equal(config.oslo_messaging_rabbit.amqp_durable_queues, false);
      assert.deepEqual(config.docker.cap_add, ['NET_ADMIN', 'SYS_TIME']);
      assert.equal(config.docker.pull_policy, 'never');
      assert.deepEqual(config.glance.api_servers, ['http://g1:9292', 'http://g2:9292']);
    });

    it('reads an empty value as unset for options without a default', () => {
      const config = load(MINIMAL + 'ram_allocation_ratio =\nlog_file =\n');
      assert.equal(config.DEFAULT.ram_allocation_ratio, undefined);
      assert.equal(config.DEFAULT.log_file, '');
    });
  });

  describe('errors', () => {
    it('reports every problem at once, each naming file, section, option and line', () => {
      const file = tmp.write(
        'nova.conf',
        '[DEFAULT]\nreport_interval = ten\ndebug = maybe\ncpu_allocation_ratio = lots\nreserved_host_memory_mb = -1\n' +
          'metrics_port = 70000\ncompute_driver = libvirt.LibvirtDriver\nrpc_response_timeout =\n' +
          '[oslo_messaging_rabbit]\nkombu_reconnect_delay = 5\n[docker]\npull_policy = sometimes\n',
      );
      const problems = problemsOf(() => loadConfig({ configFiles: [file] }));
      assert.deepEqual(problems, [
        `${file}: [DEFAULT] transport_url: required option is not set`,
        `${file}: [DEFAULT] rpc_response_timeout: empty value is not an integer (line 8)`,
        `${file}: [DEFAULT] report_interval: "ten" is not an integer (line 2)`,
        `${file}: [DEFAULT] debug: "maybe" is not a boolean (use true/false, yes/no, on/off or 1/0) (line 3)`,
        `${file}: [DEFAULT] cpu_allocation_ratio: "lots" is not a number (line 4)`,
        `${file}: [DEFAULT] reserved_host_memory_mb: -1 is less than the minimum 0 (line 5)`,
        `${file}: [DEFAULT] compute_driver: "libvirt.LibvirtDriver" is not one of: docker.DockerDriver, nova_docker.DockerDriver, novadocker.virt.docker.DockerDriver, fake.FakeDriver (nova-docker runs the Docker driver, or fake.FakeDriver for scale tests; other drivers need nova-compute) (line 7)`,
        `${file}: [DEFAULT] metrics_port: 70000 is greater than the maximum 65535 (line 6)`,
        `${file}: [oslo_messaging_rabbit] kombu_reconnect_delay: 5 is greater than the maximum 4.5 (line 10)`,
        `${file}: [docker] pull_policy: "sometimes" is not one of: if-not-present, always, never (line 12)`,
      ]);
    });

    it('accepts the Docker driver spellings and fake.FakeDriver as compute_driver and rejects every other driver', () => {
      for (const driver of [
        'docker.DockerDriver',
        'nova_docker.DockerDriver',
        'novadocker.virt.docker.DockerDriver',
        'fake.FakeDriver',
      ]) {
        assert.equal(load(MINIMAL + `compute_driver = ${driver}\n`).DEFAULT.compute_driver, driver);
      }
      for (const driver of ['libvirt.LibvirtDriver', 'fake.SmallFakeDriver', 'docker.dockerdriver', '']) {
        const file = tmp.write('nova.conf', MINIMAL + `compute_driver = ${driver}\n`);
        assert.deepEqual(
          problemsOf(() => loadConfig({ configFiles: [file] })),
          [
            `${file}: [DEFAULT] compute_driver: ${JSON.stringify(driver)} is not one of: ` +
              'docker.DockerDriver, nova_docker.DockerDriver, novadocker.virt.docker.DockerDriver, fake.FakeDriver ' +
              '(nova-docker runs the Docker driver, or fake.FakeDriver for scale tests; other drivers need nova-compute) (line 3)',
          ],
        );
      }
    });

    it('validates only the winning value', () => {
      const a = tmp.write('a.conf', MINIMAL + 'report_interval = ten\n');
      const b = tmp.write('b.conf', '[DEFAULT]\nreport_interval = 20\n');
      assert.equal(loadConfig({ configFiles: [a, b] }).DEFAULT.report_interval, 20);
    });

    it('names missing files and directories and syntax errors, and stops there', () => {
      const bad = tmp.write('bad.conf', '[DEFAULT]\nreport_interval = ten\nnot an assignment\n');
      const missing = tmp.path('missing.conf');
      const missingDir = tmp.path('nova.conf.d');
      const problems = problemsOf(() => loadConfig({ configFiles: [missing, bad], configDirs: [missingDir] }));
      assert.deepEqual(problems, [
        `${missingDir}: config directory not found`,
        `${missing}: config file not found`,
        `${bad}: line 3: No ':' or '=' found in assignment: "not an assignment"`,
      ]);
      assert.match(problemsOf(() => loadConfig({ configFiles: [tmp.dir] }))[0] ?? '', /is a directory/);
    });

    it('never shows a secret value', () => {
      const problems = problemsOf(() =>
        load(
          '[DEFAULT]\ntransport_url = rabbit://openstack:hunter2@127.0.0.1:notaport/\n' +
            '[keystone_authtoken]\npassword = sec$ret\n[service_user]\npassword = pa$$word\n',
        ),
      );
      assert.equal(problems.length, 2);
      for (const p of problems) assert.ok(!/hunter2|ret|sec/.test(p), p);
      assert.ok(
        problems.some((p) => p.includes('[DEFAULT] transport_url: "rabbit://openstack:***@127.0.0.1:notaport/"')),
        problems.join('\n'),
      );
      assert.ok(
        problems.some((p) => p.includes("[keystone_authtoken] password: contains a '$'")),
        problems.join('\n'),
      );
    });

    it('is an AgentError whose message lists the problems', async () => {
      const { AgentError } = await import('../../../src/common/errors.js');
      try {
        load('[DEFAULT]\n');
        assert.fail('expected an error');
      } catch (err) {
        assert.ok(err instanceof AgentError && err instanceof ConfigError);
        assert.match(err.message, /transport_url: required option is not set/);
      }
    });
  });

  describe('files, directories and sections', () => {
    it('lets later files win and the last occurrence within a file win', () => {
      const a = tmp.write('a.conf', MINIMAL + 'report_interval = 1\nreport_interval = 2\ndebug = true\n');
      const b = tmp.write('b.conf', '[DEFAULT]\nreport_interval = 3\nreport_interval = 4\n');
      const config = loadConfig({ configFiles: [a, b] });
      assert.equal(config.DEFAULT.report_interval, 4);
      assert.equal(config.DEFAULT.debug, true);
    });

    it('reads *.conf of a config dir in sorted order after the files, skipping other and hidden files', () => {
      const main = tmp.write('nova.conf', MINIMAL + 'report_interval = 1\nservice_down_time = 7\n');
      tmp.write('nova.conf.d/20-b.conf', '[DEFAULT]\nreport_interval = 20\n');
      tmp.write('nova.conf.d/10-a.conf', '[DEFAULT]\nreport_interval = 10\ndebug = true\n');
      tmp.write('nova.conf.d/99-z.conf.disabled', '[DEFAULT]\nreport_interval = 99\n');
      tmp.write('nova.conf.d/.hidden.conf', '[DEFAULT]\nreport_interval = 98\n');
      const config = loadConfig({ configFiles: [main], configDirs: [tmp.path('nova.conf.d')] });
      assert.equal(config.DEFAULT.report_interval, 20);
      assert.equal(config.DEFAULT.debug, true);
      assert.equal(config.DEFAULT.service_down_time, 7);
    });

    it('matches group sections case-insensitively but [DEFAULT] only exactly', () => {
      const config = load(MINIMAL + '[DOCKER]\nprivileged = true\n[default]\nreport_interval = 99\n');
      assert.equal(config.docker.privileged, true);
      assert.equal(config.DEFAULT.report_interval, 10);
    });

    it('ignores unknown sections and options, silently', () => {
      const warnings: string[] = [];
      const config = load(
        MINIMAL + 'osapi_compute_workers = lots\nDebug = true\n[libvirt]\nvirt_type = kvm\n[docker]\nnope = 1\n',
        (m) => warnings.push(m),
      );
      assert.equal(config.DEFAULT.debug, false);
      assert.deepEqual(warnings, []);
      assert.ok(!('libvirt' in config));
    });

    it('reads deprecated names and groups, warns, and lets the current name win within a file', () => {
      const warnings: string[] = [];
      const a = tmp.write(
        'a.conf',
        MINIMAL + 'rabbit_retry_backoff = 7\n[oslo_messaging_rabbit]\nrabbit_use_ssl = true\n',
      );
      let config = loadConfig({ configFiles: [a], warn: (m) => warnings.push(m) });
      assert.equal(config.oslo_messaging_rabbit.rabbit_retry_backoff, 7);
      assert.equal(config.oslo_messaging_rabbit.ssl, true);
      assert.deepEqual(warnings, [
        `${a}: [DEFAULT] rabbit_retry_backoff is deprecated; use [oslo_messaging_rabbit] rabbit_retry_backoff`,
        `${a}: [oslo_messaging_rabbit] rabbit_use_ssl is deprecated; use [oslo_messaging_rabbit] ssl`,
      ]);

      const b = tmp.write('b.conf', MINIMAL + '[oslo_messaging_rabbit]\nrabbit_use_ssl = true\nssl = false\n');
      assert.equal(loadConfig({ configFiles: [b] }).oslo_messaging_rabbit.ssl, false);
      // a newer file's deprecated name beats an older file's current name, as in oslo
      const c = tmp.write('c.conf', '[oslo_messaging_rabbit]\nrabbit_use_ssl = true\n');
      config = loadConfig({ configFiles: [b, c] });
      assert.equal(config.oslo_messaging_rabbit.ssl, true);
    });

    it('collects multistr values from every file, oldest first (deprecated names first within a file, as oslo)', () => {
      const table: OptionSpec[] = [
        { group: 'x', name: 'm', type: 'multistr', help: 'multi', deprecatedNames: [{ name: 'old' }] },
      ];
      const a = tmp.write('a.conf', '[x]\nm = 1\nm = 2\nold = 0\n');
      const b = tmp.write('b.conf', '[X]\nm = 3\n');
      assert.deepEqual(loadConfigWith(table, { configFiles: [a, b] }), { x: { m: ['0', '1', '2', '3'] } });
      assert.deepEqual(loadConfigWith(table, { configFiles: [] }), { x: { m: [] } });
    });

    it('takes the transport URL query as [oslo_messaging_rabbit] overrides', () => {
      const url = 'transport_url = rabbit://u:p@h/?ssl=true&heartbeat_rate=5&rabbit_login_method=PLAIN\n';
      let config = load(`[DEFAULT]\n${url}`);
      assert.equal(config.oslo_messaging_rabbit.ssl, true);
      assert.equal(config.oslo_messaging_rabbit.heartbeat_rate, 5);
      const problems = problemsOf(() => load('[DEFAULT]\ntransport_url = rabbit://u:p@h/?heartbeat_rate=x\n'));
      assert.match(problems[0] ?? '', /transport_url: query parameter heartbeat_rate: "x" is not an integer/);
      config = load('[DEFAULT]\ntransport_url = rabbit://u:p@h/?ssl=0\n[oslo_messaging_rabbit]\nssl = true\n');
      assert.equal(config.oslo_messaging_rabbit.ssl, false);
    });
  });

  describe('$var substitution', () => {
    it('substitutes $var, ${var} and ${group.var}, in values and string defaults', () => {
      const config = load(
        MINIMAL +
          'state_path = /srv/nova\nlog_file = ${state_path}/log/${host}.log\n' +
          '[docker]\nroot_directory = ${DEFAULT.state_path}/docker\nregistry_username = $my_ip\n',
      );
      assert.equal(config.DEFAULT.instances_path, '/srv/nova/instances');
      assert.equal(config.DEFAULT.log_file, `/srv/nova/log/${hostname()}.log`);
      assert.equal(config.docker.root_directory, '/srv/nova/docker');
      assert.equal(config.docker.registry_username, '127.0.0.1'); // own group first, then [DEFAULT]
    });

    it('converts typed values the way Python prints them', () => {
      const config = load(MINIMAL + 'my_ip = $debug-$report_interval-$initial_cpu_allocation_ratio\n');
      assert.equal(config.DEFAULT.my_ip, 'False-10-16.0');
    });

    it('treats $$ and \\$ as a literal $ and leaves a lone $ alone', () => {
      const config = load(
        MINIMAL + '[docker]\nregistry_password = pa$$word\nregistry_username = a\\$b\nca_file = /x/$/y $\n',
      );
      assert.equal(config.docker.registry_password, 'pa$word');
      assert.equal(config.docker.registry_username, 'a$b');
      assert.equal(config.docker.ca_file, '/x/$/y $');
    });

    it('falls back to the raw text of options nova-docker does not declare', () => {
      const config = load(MINIMAL + 'log_dir = /var/log/$my_ip\nlog_file = $log_dir/compute.log\n');
      assert.equal(config.DEFAULT.log_file, '/var/log/127.0.0.1/compute.log');
    });

    it('reports unknown and circular references', () => {
      const problems = problemsOf(() =>
        load(MINIMAL + 'log_file = $nowhere/x\nstate_path = $instances_path\ninstances_path = $state_path/i\n'),
      );
      assert.equal(problems.length, 2, problems.join('\n'));
      assert.match(problems[0] ?? '', /\[DEFAULT\] log_file: refers to \$nowhere, which is not a known option/);
      assert.match(problems[1] ?? '', /circular reference/);
    });
  });

  describe('parseArgs', () => {
    it('splits --config-file / --config-dir (both spellings) from the rest, keeping order', () => {
      assert.deepEqual(parseArgs(['--config-file', 'a', '--debug', '--config-dir=d', '--config-file=b', 'x']), {
        configFiles: ['a', 'b'],
        configDirs: ['d'],
        rest: ['--debug', 'x'],
      });
    });

    it('rejects a flag without a path', () => {
      assert.deepEqual(
        problemsOf(() => parseArgs(['--config-file', '--config-dir'])),
        ['--config-file needs a path', '--config-dir needs a path'],
      );
    });
  });
});
