import assert from 'node:assert/strict';
import nock from 'nock';
import { UnauthorizedError } from '../../../src/clients/errors.js';
import { RegistryClient, nextLink, parseRegistryUrl } from '../../../src/clients/registry/index.js';
import { REGISTRY, setupNock } from './fixtures.js';

describe('clients/registry', () => {
  setupNock();

  it('parses registry addresses', () => {
    assert.deepEqual(parseRegistryUrl('127.0.0.1:5042'), { baseURL: 'http://127.0.0.1:5042', host: '127.0.0.1:5042' });
    assert.deepEqual(parseRegistryUrl('localhost:5000'), { baseURL: 'http://localhost:5000', host: 'localhost:5000' });
    assert.deepEqual(parseRegistryUrl('registry.example:443'), {
      baseURL: 'https://registry.example:443',
      host: 'registry.example:443',
    });
    assert.deepEqual(parseRegistryUrl('http://127.0.0.1:5042/'), {
      baseURL: 'http://127.0.0.1:5042',
      host: '127.0.0.1:5042',
    });
    assert.equal(nextLink('</v2/_catalog?last=b&n=2>; rel="next"'), '/v2/_catalog?last=b&n=2');
    assert.equal(nextLink(undefined), undefined);
  });

  it('follows catalog pagination through Link headers', async () => {
    nock(REGISTRY)
      .get('/v2/_catalog')
      .query({ n: '2' })
      .reply(200, { repositories: ['a', 'b'] }, { Link: '</v2/_catalog?last=b&n=2>; rel="next"' });
    nock(REGISTRY)
      .get('/v2/_catalog')
      .query({ last: 'b', n: '2' })
      .reply(200, { repositories: ['c'] });
    const r = new RegistryClient({ url: REGISTRY });
    assert.deepEqual(await r.listRepositories({ pageSize: 2 }), ['a', 'b', 'c']);
  });

  it('lists tags (none for an unknown repository) with basic auth', async () => {
    let auth: unknown;
    nock(REGISTRY)
      .get('/v2/lab/bb/tags/list')
      .query(true)
      .reply(function () {
        auth = this.req.headers.authorization;
        return [200, { name: 'lab/bb', tags: ['t1', 't2'] }];
      });
    nock(REGISTRY)
      .get('/v2/nope/tags/list')
      .query(true)
      .reply(404, { errors: [{ code: 'NAME_UNKNOWN' }] });
    const r = new RegistryClient({ url: REGISTRY, auth: { username: 'u', password: 'p' } });
    assert.deepEqual(await r.listTags('lab/bb'), ['t1', 't2']);
    assert.equal(auth, `Basic ${Buffer.from('u:p').toString('base64')}`);
    assert.deepEqual(await r.listTags('nope'), []);
    await assert.rejects(r.listTags('Bad Name'), /invalid repository/);
    assert.ok(!JSON.stringify(r).includes('p@') && !JSON.stringify(r).includes('dTpw'));
  });

  it('reads manifest digests with a HEAD that accepts v2 and OCI manifests', async () => {
    let accept: unknown;
    nock(REGISTRY)
      .head('/v2/bb/manifests/t1')
      .reply(function () {
        accept = this.req.headers.accept;
        return [200, '', { 'Docker-Content-Digest': 'sha256:abc' }];
      });
    nock(REGISTRY).head('/v2/bb/manifests/missing').reply(404);
    nock(REGISTRY).head('/v2/bb/manifests/locked').reply(401);
    const r = new RegistryClient({ url: REGISTRY });
    assert.equal(await r.manifestDigest('bb', 't1'), 'sha256:abc');
    assert.match(String(accept), /application\/vnd\.docker\.distribution\.manifest\.v2\+json/);
    assert.match(String(accept), /application\/vnd\.oci\.image\.index\.v1\+json/);
    assert.equal(await r.manifestDigest('bb', 'missing'), undefined);
    await assert.rejects(r.manifestDigest('bb', 'locked'), UnauthorizedError);
  });

  it('deletes manifests by digest', async () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    nock(REGISTRY).delete(`/v2/bb/manifests/${digest}`).reply(202);
    nock(REGISTRY).delete(`/v2/bb/manifests/${digest}`).reply(404);
    const r = new RegistryClient({ url: REGISTRY });
    assert.equal(await r.deleteManifest('bb', digest), true);
    assert.equal(await r.deleteManifest('bb', digest), false);
    await assert.rejects(r.deleteManifest('bb', 't1'), /not a digest/);
  });
});
