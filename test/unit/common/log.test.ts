import assert from 'node:assert/strict';
import { redact, redactText, MASK } from '../../../src/common/log.js';

describe('common/log redaction', () => {
  it('masks the password of a transport URL', () => {
    assert.equal(
      redactText('connecting to rabbit://openstack:s3cr#t@127.0.0.1:5672/'),
      `connecting to rabbit://openstack:${MASK}@127.0.0.1:5672/`,
    );
  });

  it('masks secret-named keys at any depth and leaves others', () => {
    const out = redact({ user: 'nova', password: 'pw', nested: { auth_token: 'gAAAA', roles: ['admin'] } });
    assert.deepEqual(out, { user: 'nova', password: MASK, nested: { auth_token: MASK, roles: ['admin'] } });
  });

  it('masks inline token assignments in free text', () => {
    assert.equal(
      redactText('X-Auth-Token: gAAAAabc and password=hunter2'),
      `X-Auth-Token: ${MASK} and password=${MASK}`,
    );
  });
});
