import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import nock from 'nock';
import { HttpError, UnavailableError } from '../../../src/clients/errors.js';
import { USER_AGENT, contextHeaders, createHttpClient } from '../../../src/clients/http.js';
import { GLANCE, setupNock } from './fixtures.js';

describe('clients/http', () => {
  setupNock();

  it('sends the User-Agent and request id headers', async () => {
    let h: Record<string, unknown> = {};
    nock(GLANCE)
      .get('/x')
      .reply(function () {
        h = this.req.headers;
        return [200, {}];
      });
    const http = createHttpClient({ service: 'glance', baseURL: GLANCE });
    await http.get('/x', { headers: contextHeaders({ requestId: 'req-1', globalRequestId: 'req-g' }) });
    assert.equal(h['user-agent'], USER_AGENT);
    assert.match(USER_AGENT, /^nova-docker\/\d+\.\d+\.\d+$/);
    assert.equal(h['x-openstack-request-id'], 'req-g');
    assert.deepEqual(contextHeaders(undefined), {});
  });

  it('maps statuses and timeouts to the error taxonomy without headers or query strings', async () => {
    nock(GLANCE).get('/bad').query(true).reply(400, { message: 'bad thing', password: 'pw-in-body' });
    nock(GLANCE).get('/slow').delay(500).reply(200, {});
    const http = createHttpClient({ service: 'glance', baseURL: GLANCE, timeoutMs: 100 });
    const e1 = await http
      .get('/bad?token=q-secret', { headers: { 'X-Auth-Token': 'hdr-secret' } })
      .catch((e: unknown) => e);
    assert.ok(e1 instanceof HttpError);
    assert.equal(e1.status, 400);
    assert.equal(e1.path, '/bad');
    assert.match(e1.message, /bad thing/);
    const e2 = await http.get('/slow').catch((e: unknown) => e);
    assert.ok(e2 instanceof UnavailableError);
    assert.equal(e2.status, undefined);
    for (const e of [e1, e2]) {
      const dump = inspect(e, { depth: 10 });
      assert.ok(!dump.includes('hdr-secret') && !dump.includes('q-secret') && !dump.includes('pw-in-body'), dump);
    }
  });
});
