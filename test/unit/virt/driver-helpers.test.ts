import assert from 'node:assert/strict';
import { NotFoundError, UnavailableError } from '../../../src/clients/errors.js';
import { NovaError } from '../../../src/common/errors.js';
import { imageFailure } from '../../../src/virt/docker/driver.js';
import { hostLabelFilter, ownedBy, LABELS } from '../../../src/virt/docker/labels.js';
import { formatUptime, versionToInt } from '../../../src/virt/driver.js';

describe('virt/driver helpers', () => {
  it("versionToInt follows Nova's convert_version_to_int", () => {
    assert.equal(versionToInt('20.10.24+dfsg1'), 20010024);
    assert.equal(versionToInt('24.0.7'), 24000007);
    assert.equal(versionToInt('1.0'), 1000000);
    assert.equal(versionToInt('garbage'), 0);
  });

  it('formatUptime looks like uptime(1)', () => {
    const now = new Date(2026, 0, 2, 3, 4, 5);
    assert.equal(
      formatUptime(3 * 86400 + 4 * 3600 + 5 * 60, [0.5, 0.25, 0], now),
      ' 03:04:05 up 3 days,  4:05,  0 users,  load average: 0.50, 0.25, 0.00',
    );
    assert.equal(formatUptime(125, [1, 2, 3], now, 1), ' 03:04:05 up 2 min,  1 user,  load average: 1.00, 2.00, 3.00');
  });

  it('label filter and ownership are per compute host', () => {
    assert.deepEqual(hostLabelFilter('h1'), [`${LABELS.managedBy}=nova-docker`, `${LABELS.host}=h1`]);
    const labels = { [LABELS.managedBy]: 'nova-docker', [LABELS.host]: 'h1', [LABELS.instanceUuid]: 'u1' };
    assert.ok(ownedBy(labels, 'h1'));
    assert.ok(ownedBy(labels, 'h1', 'u1'));
    assert.ok(!ownedBy(labels, 'h2'));
    assert.ok(!ownedBy(labels, 'h1', 'u2'));
    assert.ok(!ownedBy({ ...labels, [LABELS.managedBy]: 'someone-else' }, 'h1'));
    assert.ok(!ownedBy(null, 'h1'));
  });

  it('an image that cannot be fetched: Glance down is GlanceConnectionFailed naming the image service', () => {
    const down = new UnavailableError('glance GET /v2/images/i1: no answer', {
      service: 'glance',
      method: 'GET',
      path: '/v2/images/i1',
      cause: new Error('connect ECONNREFUSED 127.0.0.1:9292'),
    });
    const e = imageFailure('u1', 'i1', down);
    assert.equal(e.novaClass, 'GlanceConnectionFailed');
    assert.match(e.message, /image service \(Glance\) is unavailable: glance GET \/v2\/images\/i1: no answer/);
    assert.equal(e.cause, down);
    const gone = new NotFoundError('glance GET /v2/images/i1: 404', { service: 'glance', method: 'GET', path: '/x' });
    assert.equal(imageFailure('u1', 'i1', gone).novaClass, 'ImageNotFound');
    const docker = new UnavailableError('docker POST /images/load: no answer', {
      service: 'docker',
      method: 'POST',
      path: '/images/load',
    });
    assert.equal(imageFailure('u1', 'i1', docker).novaClass, 'InstanceDeployFailure');
    const own = new NovaError('ImageUnacceptable', 'Image i1 is unacceptable: bad', {});
    assert.equal(imageFailure('u1', 'i1', own), own);
  });
});
