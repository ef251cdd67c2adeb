/**
 * The per-release tables against numbers copied from each release's Nova
 * source (openstack/nova tags 26.2.2 = Zed, 31.0.0 = 2025.1, 33.0.2 =
 * 2026.1), not from this project's code: SERVICE_VERSION and
 * OLDEST_SUPPORTED_SERVICE_VERSION (nova/objects/service.py),
 * ComputeManager.target (nova/compute/manager.py) and each object's VERSION
 * (nova/objects/*.py). And the release choice against control planes.
 */
import assert from 'node:assert/strict';
import { controlPlaneFor, ReleaseMismatchError, selectRelease } from '../../../src/objects/release-select.js';
import { releaseNamed, RELEASES, versionAtLeast } from '../../../src/objects/releases.js';

interface FromSource {
  tag: string;
  serviceVersion: number;
  /** SERVICE_VERSION_ALIASES[OLDEST_SUPPORTED_SERVICE_VERSION] */
  oldestSupported: number;
  computeTarget: string;
  objects: Record<string, string>;
}

const SOURCE: Record<string, FromSource> = {
  zed: {
    tag: '26.2.2',
    serviceVersion: 64, // service.py:34
    oldestSupported: 61, // service.py:233 'Yoga'
    computeTarget: '6.1', // manager.py:619
    objects: {
      BlockDeviceMapping: '1.21',
      BlockDeviceMappingList: '1.18',
      ComputeNode: '1.19',
      ComputeNodeList: '1.17',
      ConsoleAuthToken: '1.1',
      Flavor: '1.2',
      HVSpec: '1.2',
      ImageMeta: '1.8',
      ImageMetaProps: '1.34',
      Instance: '2.7',
      InstanceAction: '1.2',
      InstanceActionEvent: '1.4',
      InstanceFault: '1.2',
      InstanceInfoCache: '1.5',
      InstanceList: '2.6',
      InstancePCIRequests: '1.1',
      Migration: '1.7',
      MigrationContext: '1.2',
      MigrationList: '1.5',
      PciDeviceList: '1.3',
      RequestSpec: '1.14',
      Selection: '1.1',
      Service: '1.22',
      ServiceList: '1.19',
    },
  },
  '2025.1': {
    tag: '31.0.0',
    serviceVersion: 68, // service.py:34
    oldestSupported: 66, // service.py:262 'Caracal'
    computeTarget: '6.4', // manager.py:623
    objects: {
      BlockDeviceMapping: '1.21',
      BlockDeviceMappingList: '1.18',
      ComputeNode: '1.19',
      ComputeNodeList: '1.17',
      ConsoleAuthToken: '1.3',
      Flavor: '1.2',
      HVSpec: '1.2',
      ImageMeta: '1.8',
      ImageMetaProps: '1.39',
      Instance: '2.8',
      InstanceAction: '1.2',
      InstanceActionEvent: '1.4',
      InstanceFault: '1.2',
      InstanceInfoCache: '1.5',
      InstanceList: '2.6',
      InstancePCIRequests: '1.1',
      Migration: '1.8',
      MigrationContext: '1.2',
      MigrationList: '1.5',
      PciDeviceList: '1.3',
      RequestSpec: '1.15',
      Selection: '1.1',
      Service: '1.22',
      ServiceList: '1.19',
      ShareMapping: '1.2',
      ShareMappingList: '1.0',
    },
  },
  '2026.1': {
    tag: '33.0.2',
    serviceVersion: 72, // service.py:40
    oldestSupported: 68, // service.py:284 'Epoxy'
    computeTarget: '6.5', // manager.py:645
    objects: {
      BlockDeviceMapping: '1.21',
      BlockDeviceMappingList: '1.18',
      ComputeNode: '1.19',
      ComputeNodeList: '1.17',
      ConsoleAuthToken: '1.3',
      Flavor: '1.2',
      HVSpec: '1.2',
      ImageMeta: '1.8',
      ImageMetaProps: '1.42',
      Instance: '2.8',
      InstanceAction: '1.2',
      InstanceActionEvent: '1.4',
      InstanceFault: '1.2',
      InstanceInfoCache: '1.5',
      InstanceList: '2.6',
      InstancePCIRequests: '1.1',
      Migration: '1.8',
      MigrationContext: '1.2',
      MigrationList: '1.5',
      PciDeviceList: '1.3',
      RequestSpec: '1.15',
      Selection: '1.1',
      Service: '1.22',
      ServiceList: '1.19',
      ShareMapping: '1.2',
      ShareMappingList: '1.0',
    },
  },
};

describe('Nova release tables', () => {
  it('has exactly the releases the source list names, oldest first', () => {
    assert.deepEqual(
      RELEASES.map((r) => r.name),
      ['zed', '2025.1', '2026.1'],
    );
  });

  for (const [name, src] of Object.entries(SOURCE)) {
    describe(`${name} (nova ${src.tag})`, () => {
      const release = releaseNamed(name);
      it('reports the service version, oldest supported version and compute RPC target of the source', () => {
        assert.ok(release);
        assert.equal(release.serviceVersion, src.serviceVersion);
        assert.equal(release.oldestSupportedServiceVersion, src.oldestSupported);
        assert.equal(release.computeRpcVersion, src.computeTarget);
        assert.equal(release.conductorRpcVersion, '3.0');
      });
      it('sends every object at the version the source declares', () => {
        assert.ok(release);
        for (const [obj, version] of Object.entries(src.objects)) {
          assert.equal(release.objects[obj], version, `${obj} in ${name}`);
        }
      });
      it('serves compute-alt exactly from service version 71 (SERVICE_VERSION_HISTORY, 33.0.2 service.py)', () => {
        assert.ok(release);
        assert.deepEqual(release.computeTopics, src.serviceVersion >= 71 ? ['compute', 'compute-alt'] : ['compute']);
      });
    });
  }

  it('compares object versions numerically', () => {
    assert.equal(versionAtLeast('2.8', '2.8'), true);
    assert.equal(versionAtLeast('2.10', '2.8'), true);
    assert.equal(versionAtLeast('2.7', '2.8'), false);
    assert.equal(versionAtLeast('3.0', '2.8'), true);
  });
});

describe('release selection against a control plane', () => {
  const auto = (sv: number): string => selectRelease('auto', controlPlaneFor(sv)).name;

  it('auto takes the newest release the control plane accepts and understands', () => {
    assert.equal(auto(64), 'zed');
    assert.equal(auto(68), '2025.1');
    assert.equal(auto(70), '2025.1'); // 2025.2: nothing newer than 68 that it understands
    assert.equal(auto(72), '2026.1');
  });

  it('a control plane sharing a service version with a stricter release is taken at the strictest', () => {
    // 2023.1 and 2023.2 both report 66; 2023.2 refuses computes older than 66, so Zed is not offered
    assert.deepEqual(controlPlaneFor(66).names, ['2023.1', '2023.2']);
    assert.equal(controlPlaneFor(66).oldestSupported, 66);
    assert.throws(() => auto(66), ReleaseMismatchError);
  });

  it('refuses a control plane no table can join, naming it', () => {
    // 2024.1/2024.2 (67) accept 66–67: Zed is too old, 2025.1 too new
    assert.throws(
      () => auto(67),
      (err: Error) => {
        assert.ok(err instanceof ReleaseMismatchError);
        assert.match(err.message, /Nova 2024\.1\/2024\.2 \(service version 67, accepts computes from 66\)/);
        return true;
      },
    );
  });

  it('refuses a control plane newer than the newest table, naming both releases', () => {
    assert.throws(() => auto(73), /service version 73.*newer than 2026\.1 \(service version 72\).*upgrade nova-docker/);
  });

  it('refuses a fixed release older than the control plane supports (a Zed agent on 2026.1)', () => {
    assert.throws(
      () => selectRelease('zed', controlPlaneFor(72)),
      /nova_release = zed \(service version 64\) is older than Nova 2026\.1 .*TooOldComputeService/,
    );
  });

  it('refuses a fixed release newer than the control plane (2026.1 on a 2025.1 control plane)', () => {
    assert.throws(
      () => selectRelease('2026.1', controlPlaneFor(68)),
      /nova_release = 2026\.1 \(service version 72\) is newer than Nova 2025\.1/,
    );
  });

  it('accepts a fixed release the control plane accepts (2025.1 on 2026.1 pins RPC 6.4), refuses Zed on 2025.1', () => {
    assert.equal(selectRelease('2025.1', controlPlaneFor(72)).name, '2025.1');
    assert.throws(() => selectRelease('zed', controlPlaneFor(68)), /older than Nova 2025\.1/);
  });
});
