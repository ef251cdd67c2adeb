/**
 * The README's first command: `./install.sh --all-in-one`, then the
 * `openstack server create` line it prints, gives an ACTIVE instance whose
 * container runs. On CI the lab's control plane is already up with the lab's
 * credentials; the all-in-one is given those so it reuses every service.
 */
import assert from 'node:assert/strict';
import { execFileP, REPO_ROOT, SYSTEM_ENV } from '../support/broker.js';
import { docker, hostContainers, openstack, stopFakeCompute, waitServer } from '../support/lab.js';

const HOST = 'nova-docker-e2e-aio';
const LAB_CREDENTIALS = {
  NOVA_DOCKER_AIO_ADMIN_PASS: 'labadmin',
  NOVA_DOCKER_AIO_SERVICE_PASS: 'labservice',
  NOVA_DOCKER_AIO_DB_PASS: 'labdb',
  NOVA_DOCKER_AIO_RABBIT_PASS: 'labrabbit',
};

describe('e2e: install.sh --all-in-one, then the printed server create line', function () {
  this.timeout(1_200_000);
  let serverId: string | undefined;

  before(async () => {
    await stopFakeCompute();
  });

  after(async () => {
    if (serverId) await openstack(['server', 'delete', '--wait', serverId]).catch(() => undefined);
    await execFileP('bash', [`${REPO_ROOT}install.sh`, '--stop'], { env: SYSTEM_ENV }).catch(() => undefined);
  });

  it('ends with a bootable cloud: ACTIVE, the container runs the image command, delete leaves nothing', async () => {
    const { stdout } = await execFileP('bash', [`${REPO_ROOT}install.sh`, '--all-in-one'], {
      env: { ...SYSTEM_ENV, ...LAB_CREDENTIALS, NOVA_DOCKER_AIO_HOST: HOST },
      timeout: 1_100_000,
      maxBuffer: 16 << 20,
    });
    const openrc = /^\s*source (\S+)$/m.exec(stdout)?.[1];
    const create = /^\s*(openstack server create .*)$/m.exec(stdout)?.[1];
    assert.ok(openrc && create, `install.sh printed the lines to try:\n${stdout}`);
    // other tests' compute hosts may still count as up for a minute: aim at ours, as an operator with several would
    const line = `${create.replace(/ test$/, ` aio-${process.pid}`)} --availability-zone nova:${HOST} -f value -c id`;
    const { stdout: id } = await execFileP('bash', ['-c', `source ${openrc} && ${line}`], {
      env: SYSTEM_ENV,
      timeout: 300_000,
    });
    serverId = id.trim();
    const server = await waitServer(serverId, (s) => s.status !== 'BUILD', 'leave BUILD');
    assert.equal(server.status, 'ACTIVE', JSON.stringify(server.fault));
    const containers = await hostContainers(HOST);
    assert.deepEqual(containers, [`nova-${serverId} running`]);
    const cmd = await docker(['inspect', '-f', '{{json .Config.Cmd}}', `nova-${serverId}`]);
    assert.equal(cmd, '["/bin/sleep","31536000"]', "the image's own command");
    await openstack(['server', 'delete', '--wait', serverId]);
    serverId = undefined;
    assert.deepEqual(await hostContainers(HOST), []);
  });
});
