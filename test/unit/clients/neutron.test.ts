import assert from 'node:assert/strict';
import nock from 'nock';
import type { AuthProvider } from '../../../src/clients/keystone/client.js';
import type { EndpointQuery } from '../../../src/clients/keystone/catalog.js';
import {
  isNeutronError,
  NeutronClient,
  NeutronClientError,
  neutronErrorType,
  neutronQuery,
  type NeutronKeystone,
} from '../../../src/clients/neutron/index.js';
import { capturingLogger } from '../../support/capture-log.js';
import { setupNock } from './fixtures.js';

const NEUTRON = 'http://127.0.0.1:65006';
const PORT = '3f1c0b2a-9d11-4c55-8a77-0123456789ab';

type Headers = Record<string, string | string[] | undefined>;

/** The `[neutron]` credentials: tokens in order (the next after each invalidate), catalog lookups seen. */
function stubAdmin(tokens: string[] = ['admin-token'], url = `${NEUTRON}/`) {
  let i = 0;
  const lookups: Array<{ type: string; q: EndpointQuery | undefined }> = [];
  const ks: NeutronKeystone & { lookups: typeof lookups } = {
    kind: 'service',
    lookups,
    getToken: () => Promise.resolve(tokens[Math.min(i, tokens.length - 1)]!),
    invalidate() {
      i++;
      return true;
    },
    endpoint(type: string, q?: EndpointQuery) {
      lookups.push({ type, q });
      return Promise.resolve(url);
    },
  };
  return ks;
}

const serviceUser: AuthProvider = {
  kind: 'service',
  getToken: () => Promise.resolve('service-token'),
  invalidate: () => true,
};

describe('clients/neutron', () => {
  setupNock();

  it('user client: the request token and request id; endpoint from the catalog with [neutron] region/interfaces', async () => {
    const admin = stubAdmin();
    const client = new NeutronClient({ admin, region: 'RegionOne', interfaces: ['internal'] });
    let headers: Headers = {};
    nock(NEUTRON)
      .get('/v2.0/networks')
      .query({ tenant_id: 'p1', shared: 'False' })
      .reply(function () {
        headers = this.req.headers;
        return [200, { networks: [{ id: 'n1', name: 'private' }] }];
      });
    const nets = await client
      .forContext({ authToken: 'user-token', globalRequestId: 'req-global' })
      .listNetworks({ tenant_id: 'p1', shared: false });
    assert.deepEqual(
      nets.map((n) => n.id),
      ['n1'],
    );
    assert.equal(headers['x-auth-token'], 'user-token');
    assert.equal(headers['x-openstack-request-id'], 'req-global');
    assert.equal(headers['x-service-token'], undefined);
    assert.deepEqual(admin.lookups, [{ type: 'network', q: { interfaces: ['internal'], region: 'RegionOne' } }]);
  });

  it('admin client: the [neutron] token, X-Service-Token with send_service_user_token, endpoint_override with /v2.0', async () => {
    const client = new NeutronClient({
      admin: stubAdmin(),
      serviceUser,
      endpointOverride: `${NEUTRON}/v2.0/`,
    });
    let headers: Headers = {};
    let body: unknown;
    nock(NEUTRON)
      .put(`/v2.0/ports/${PORT}`)
      .reply(function (_uri, b) {
        headers = this.req.headers;
        body = b;
        return [200, { port: { id: PORT, 'binding:vif_type': 'ovs' } }];
      });
    const port = await client
      .forContext({ authToken: 'user-token' }, { admin: true })
      .updatePort(PORT, { 'binding:host_id': 'h1' });
    assert.equal(port['binding:vif_type'], 'ovs');
    assert.equal(headers['x-auth-token'], 'admin-token');
    assert.equal(headers['x-service-token'], 'service-token');
    assert.deepEqual(body, { port: { 'binding:host_id': 'h1' } });
  });

  it('an admin context without a token uses the [neutron] credentials; a user context without one is refused', () => {
    const client = new NeutronClient({ admin: stubAdmin(), endpointOverride: NEUTRON });
    assert.equal(client.forContext({ isAdmin: true }).admin, true);
    assert.throws(() => client.forContext({ requestId: 'r' }), /no token/);
  });

  it('lists repeat keys for list filters and follow next links', async () => {
    const client = new NeutronClient({ admin: stubAdmin(), endpointOverride: NEUTRON });
    assert.equal(neutronQuery({ id: ['a', 'b'], shared: true, x: undefined }), '?id=a&id=b&shared=True');
    nock(NEUTRON)
      .get('/v2.0/subnets?id=s1&id=s2')
      .reply(200, {
        subnets: [{ id: 's1' }],
        subnets_links: [{ rel: 'next', href: `${NEUTRON}/v2.0/subnets?id=s1&id=s2&marker=s1` }],
      })
      .get('/v2.0/subnets?id=s1&id=s2&marker=s1')
      .reply(200, { subnets: [{ id: 's2' }], subnets_links: [{ rel: 'previous', href: 'x' }] });
    const subnets = await client.forContext({ authToken: 't' }).listSubnets({ id: ['s1', 's2'] });
    assert.deepEqual(
      subnets.map((s) => s.id),
      ['s1', 's2'],
    );
  });

  it('a 404 of a port is a NeutronClientError with status, Neutron type and the port id', async () => {
    const client = new NeutronClient({ admin: stubAdmin(), endpointOverride: NEUTRON });
    nock(NEUTRON)
      .get(`/v2.0/ports/${PORT}`)
      .reply(
        404,
        { NeutronError: { type: 'PortNotFound', message: `Port ${PORT} could not be found.`, detail: '' } },
        { 'x-openstack-request-id': 'req-n1' },
      );
    const err = await client
      .forContext({ authToken: 't' })
      .showPort(PORT)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    assert.ok(err instanceof NeutronClientError);
    assert.equal(err.status, 404);
    assert.equal(err.neutronType, 'PortNotFound');
    assert.equal(err.portId, PORT);
    assert.equal(err.remoteRequestId, 'req-n1');
    assert.match(err.message, new RegExp(`port ${PORT}`));
    assert.ok(isNeutronError(err, { status: 404, type: 'PortNotFound' }));
    assert.equal(isNeutronError(err, { status: 409 }), false);
  });

  it('a 409 create carries the Neutron type (IpAddressAlreadyAllocated) and no token in the message', async () => {
    const client = new NeutronClient({ admin: stubAdmin(), endpointOverride: NEUTRON });
    nock(NEUTRON)
      .post('/v2.0/ports')
      .reply(409, { NeutronError: { type: 'IpAddressAlreadyAllocated', message: 'IP 10.0.0.5 in use', detail: '' } });
    const err = await client
      .forContext({ authToken: 'secret-user-token' })
      .createPort({ network_id: 'n1' })
      .catch((e: unknown) => e);
    assert.ok(err instanceof NeutronClientError);
    assert.ok(isNeutronError(err, { status: 409, type: 'IpAddressAlreadyAllocated' }));
    assert.doesNotMatch(err.message, /secret-user-token/);
  });

  it('renews the admin token once on 401; a user token is not renewed', async () => {
    const admin = stubAdmin(['old', 'new']);
    const client = new NeutronClient({ admin, endpointOverride: NEUTRON });
    const seen: unknown[] = [];
    nock(NEUTRON)
      .get('/v2.0/extensions')
      .times(2)
      .reply(function () {
        seen.push(this.req.headers['x-auth-token']);
        return seen.length === 1 ? [401, {}] : [200, { extensions: [{ alias: 'dns-integration' }] }];
      });
    const exts = await client.forContext({}, { admin: true }).listExtensions();
    assert.deepEqual(seen, ['old', 'new']);
    assert.equal(exts[0]?.alias, 'dns-integration');

    nock(NEUTRON).get('/v2.0/extensions').reply(401, {});
    const err = await client
      .forContext({ authToken: 'user' })
      .listExtensions()
      .catch((e: unknown) => e);
    assert.ok(isNeutronError(err, { status: 401 }));
  });

  it('retries a refused connection [neutron] http_retries times, then fails as unavailable', async () => {
    // a port nothing listens on: every attempt is ECONNREFUSED
    nock.enableNetConnect('127.0.0.1:9');
    try {
      const { logger, lines } = capturingLogger();
      const client = new NeutronClient({
        admin: stubAdmin(),
        endpointOverride: 'http://127.0.0.1:9',
        httpRetries: 2,
        retryDelayMs: 1,
        logger,
      });
      const started = Date.now();
      const err = await client
        .forContext({ authToken: 't' })
        .deletePort(PORT)
        .catch((e: unknown) => e);
      assert.ok(err instanceof NeutronClientError);
      assert.equal(err.status, undefined);
      assert.equal(err.portId, PORT);
      assert.ok(Date.now() - started < 5000);
      assert.equal(lines.filter((l) => /did not accept the connection, retrying/.test(l)).length, 2);
    } finally {
      nock.disableNetConnect();
    }
  });

  it('a 5xx is not retried', async () => {
    const client = new NeutronClient({ admin: stubAdmin(), endpointOverride: NEUTRON, retryDelayMs: 1 });
    nock(NEUTRON).delete(`/v2.0/ports/${PORT}`).reply(500, 'boom');
    const err = await client
      .forContext({ authToken: 't' })
      .deletePort(PORT)
      .catch((e: unknown) => e);
    assert.ok(isNeutronError(err, { status: 500 }));
    assert.ok(nock.isDone());
  });

  it('reads the error type from a body cut short', () => {
    assert.equal(
      neutronErrorType('{"NeutronError": {"type": "OverQuota", "message": "Quota exceeded for res'),
      'OverQuota',
    );
    assert.equal(neutronErrorType('not json'), undefined);
    assert.equal(neutronErrorType(undefined), undefined);
  });
});
