import assert from 'node:assert/strict';
import { nullLogger } from '../../src/common/log.js';
import type { PlacementReporter } from '../../src/compute/collaborators.js';
import { loadConfig } from '../../src/config/index.js';
import { ZED } from '../../src/objects/releases.js';
import { messagingOptionsFromConfig } from '../../src/rpc/config.js';
import { Messaging } from '../../src/rpc/messaging.js';
import { DockerDriver } from '../../src/virt/docker/driver.js';
import { FakeDriver } from '../../src/virt/fake/driver.js';
import { buildAgent } from '../../src/wiring.js';
import { MINIMAL, TmpDir } from './config/tmp.js';

const CONF =
  MINIMAL +
  'host = scale-1\n[placement]\nauth_url = http://127.0.0.1:5000/v3\nusername = placement\npassword = p\nproject_name = service\n';

describe('wiring: [DEFAULT] compute_driver', () => {
  const tmp = new TmpDir();
  after(() => tmp.cleanup());

  /** The agent nova.conf `extra` wires (nothing connects: the broker and Docker are only asked once it starts). */
  function agentFor(extra: string): ReturnType<typeof buildAgent> {
    const config = loadConfig({ configFiles: [tmp.write(`nova-${Math.random()}.conf`, CONF + extra)] });
    const logger = nullLogger();
    const messaging = new Messaging(messagingOptionsFromConfig(config, logger));
    return buildAgent(config, ZED, messaging, logger, () => ({}) as PlacementReporter);
  }

  it('runs the Docker driver by default and for every Docker spelling', () => {
    assert.ok(agentFor('').driver instanceof DockerDriver);
    for (const name of ['docker.DockerDriver', 'nova_docker.DockerDriver', 'novadocker.virt.docker.DockerDriver']) {
      assert.ok(agentFor(`[DEFAULT]\ncompute_driver = ${name}\n`).driver instanceof DockerDriver, name);
    }
  });

  it("fake.FakeDriver runs Nova's in-memory driver: the host's node, Nova's fake resources, no guest", async () => {
    const { driver } = agentFor('[DEFAULT]\ncompute_driver = fake.FakeDriver\n');
    assert.ok(driver instanceof FakeDriver);
    assert.deepEqual(await driver.getAvailableNodes(), ['scale-1']);
    const r = await driver.getAvailableResource('scale-1');
    assert.deepEqual(
      [r.vcpus, r.memory_mb, r.local_gb, r.vcpus_used, r.hypervisor_type, r.hypervisor_hostname],
      [1000, 800_000, 600_000, 0, 'fake', 'scale-1'],
    );
    assert.deepEqual(await driver.listInstanceUuids(), []);
  });
});
