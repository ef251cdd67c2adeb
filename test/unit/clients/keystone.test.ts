import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import nock from 'nock';
import { UnauthorizedError } from '../../../src/clients/errors.js';
import {
  EndpointNotFoundError,
  KeystoneClient,
  StaticTokenAuth,
  findEndpoint,
  parseCatalog,
  withAuth,
} from '../../../src/clients/keystone/index.js';
import { createHttpClient } from '../../../src/clients/http.js';
import { KEYSTONE, KS_OPTS, GLANCE, GLANCE_OTHER_REGION, mockAuth, setupNock, tokenBody } from './fixtures.js';

describe('clients/keystone', () => {
  setupNock();

  it('authenticates with a project-scoped password body and caches the token', async () => {
    let body: unknown;
    let headers: Record<string, unknown> = {};
    nock(KEYSTONE)
      .post('/v3/auth/tokens', (b: unknown) => {
        body = b;
        return true;
      })
      .reply(function () {
        headers = this.req.headers;
        return [201, tokenBody(new Date(Date.now() + 3600_000)), { 'X-Subject-Token': 'tok-1' }];
      });
    const ks = new KeystoneClient({ ...KS_OPTS, authUrl: KEYSTONE });
    assert.equal(ks.authUrl, `${KEYSTONE}/v3`);
    assert.equal(await ks.getToken({ requestId: 'req-1234' }), 'tok-1');
    assert.equal(await ks.getToken(), 'tok-1');
    assert.deepEqual(body, {
      auth: {
        identity: {
          methods: ['password'],
          password: { user: { name: 'nova', domain: { name: 'Default' }, password: 's3cret-pw' } },
        },
        scope: { project: { name: 'service', domain: { name: 'Default' } } },
      },
    });
    assert.equal(headers['x-openstack-request-id'], 'req-1234');
    assert.match(String(headers['user-agent']), /^nova-docker\/\d/);
  });

  it('re-authenticates 5 minutes before expires_at', async () => {
    let now = Date.now();
    const counter = { n: 0 };
    nock(KEYSTONE)
      .post('/v3/auth/tokens')
      .times(2)
      .reply(function () {
        counter.n++;
        return [201, tokenBody(new Date(now + 3600_000)), { 'X-Subject-Token': `tok-${counter.n}` }];
      });
    const ks = new KeystoneClient(KS_OPTS, { now: () => now });
    assert.equal(await ks.getToken(), 'tok-1');
    now += 54 * 60_000; // 6 min left
    assert.equal(await ks.getToken(), 'tok-1');
    now += 2 * 60_000; // 4 min left
    assert.equal(await ks.getToken(), 'tok-2');
    assert.equal(counter.n, 2);
  });

  it('shares one auth request between concurrent callers', async () => {
    const counter = { n: 0 };
    mockAuth('tok-c', { counter });
    const ks = new KeystoneClient(KS_OPTS);
    const tokens = await Promise.all(Array.from({ length: 8 }, () => ks.getToken()));
    assert.deepEqual(new Set(tokens), new Set(['tok-c']));
    assert.equal(counter.n, 1);
  });

  it('finds endpoints by interface preference and region', async () => {
    mockAuth('tok');
    const ks = new KeystoneClient(KS_OPTS);
    assert.equal(await ks.endpoint('image'), GLANCE); // internal is in RegionTwo only -> public, slash trimmed
    assert.equal(await ks.endpoint('image', { region: 'RegionTwo' }), GLANCE_OTHER_REGION);
    assert.equal(await ks.endpoint('image', { interfaces: ['admin'] }), 'http://127.0.0.1:65009');
    await assert.rejects(ks.endpoint('volumev3'), EndpointNotFoundError);
    const cat = parseCatalog([{ type: 'x', endpoints: [{ interface: 'public', url: 'u' }, { bad: 1 }] }, 'junk']);
    assert.equal(findEndpoint(cat, 'x'), 'u');
  });

  it('fails a wrong password with UnauthorizedError that carries no secret', async () => {
    nock(KEYSTONE)
      .post('/v3/auth/tokens')
      .reply(401, { error: { code: 401, message: 'The request you have made requires authentication.' } });
    const ks = new KeystoneClient(KS_OPTS);
    const err = await ks.getToken().then(
      () => assert.fail('no error'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof UnauthorizedError);
    assert.equal(err.status, 401);
    assert.equal(err.service, 'keystone');
    const dump = `${inspect(err, { depth: 10 })} ${JSON.stringify(err)} ${inspect(ks, { depth: 5 })} ${JSON.stringify(ks)}`;
    assert.ok(!dump.includes('s3cret-pw'), dump);
  });

  it('withAuth renews the service token once on 401', async () => {
    const counter = { n: 0 };
    nock(KEYSTONE)
      .post('/v3/auth/tokens')
      .times(3)
      .reply(function () {
        counter.n++;
        return [201, tokenBody(new Date(Date.now() + 3600_000)), { 'X-Subject-Token': `tok-${counter.n}` }];
      });
    const http = createHttpClient({ service: 'glance', baseURL: GLANCE });
    const seen: string[] = [];
    nock(GLANCE)
      .get('/thing')
      .times(4)
      .reply(function () {
        const t = String(this.req.headers['x-auth-token']);
        seen.push(t);
        return t === 'tok-2' ? [200, { ok: true }] : [401, { error: 'expired' }];
      });
    const ks = new KeystoneClient(KS_OPTS);
    const call = (token: string) => http.get('/thing', { headers: { 'X-Auth-Token': token } });
    const res = await withAuth(ks, undefined, call);
    assert.deepEqual(res.data, { ok: true });
    assert.deepEqual(seen, ['tok-1', 'tok-2']);
    // tok-2 now refused too: exactly one more auth, then the 401 surfaces.
    nock.cleanAll();
    nock(KEYSTONE)
      .post('/v3/auth/tokens')
      .reply(201, tokenBody(new Date(Date.now() + 3600_000)), {
        'X-Subject-Token': 'tok-3',
      });
    nock(GLANCE).get('/thing').times(2).reply(401, {});
    await assert.rejects(withAuth(ks, undefined, call), UnauthorizedError);
    assert.ok(nock.isDone());
  });

  it("uses the request's token when the context has one, and never renews it", async () => {
    const counter = { n: 0 };
    mockAuth('svc', { counter });
    const ks = new KeystoneClient(KS_OPTS);
    const auth = ks.authFor({ authToken: 'user-token' });
    assert.ok(auth instanceof StaticTokenAuth);
    assert.equal(auth.kind, 'user');
    assert.equal(await auth.getToken(), 'user-token');
    assert.equal(ks.authFor({}), ks);
    let calls = 0;
    await assert.rejects(
      withAuth(auth, undefined, () => {
        calls++;
        return Promise.reject(new UnauthorizedError('x', { service: 'glance', method: 'GET', path: '/', status: 401 }));
      }),
      UnauthorizedError,
    );
    assert.equal(calls, 1);
    assert.equal(counter.n, 0);
    assert.ok(!JSON.stringify(auth).includes('user-token'));
  });
});
