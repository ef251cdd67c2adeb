import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import nock from 'nock';
import { UnauthorizedError, UnavailableError } from '../../../src/clients/errors.js';
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
        return [200, '', { 'Docker-Content-Digest': `sha256:${'c'.repeat(64)}` }];
      });
    nock(REGISTRY).head('/v2/bb/manifests/missing').reply(404);
    nock(REGISTRY).head('/v2/bb/manifests/locked').reply(401);
    const r = new RegistryClient({ url: REGISTRY });
    assert.equal(await r.manifestDigest('bb', 't1'), `sha256:${'c'.repeat(64)}`);
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

  it('follows tag pagination to the end, with absolute same-host links and `tags: null`', async () => {
    nock(REGISTRY)
      .get('/v2/lab/app/tags/list')
      .query({ n: '2' })
      .reply(
        200,
        { name: 'lab/app', tags: ['a', 'b'] },
        { Link: `<${REGISTRY}/v2/lab/app/tags/list?last=b&n=2>; rel="next"` },
      );
    nock(REGISTRY)
      .get('/v2/lab/app/tags/list')
      .query({ last: 'b', n: '2' })
      .reply(200, { name: 'lab/app', tags: ['c', 'd'] }, { Link: '</v2/lab/app/tags/list?last=d&n=2>; rel="next"' });
    nock(REGISTRY)
      .get('/v2/lab/app/tags/list')
      .query({ last: 'd', n: '2' })
      .reply(200, { name: 'lab/app', tags: null });
    nock(REGISTRY).get('/v2/gone/tags/list').query(true).reply(200, { name: 'gone', tags: null });
    const r = new RegistryClient({ url: REGISTRY });
    assert.deepEqual(await r.listTags('lab/app', { pageSize: 2 }), ['a', 'b', 'c', 'd']);
    assert.deepEqual(await r.listTags('gone'), []);
    assert.ok(nock.isDone());
  });

  it('refuses a next-page link to another host (the credentials would follow it)', async () => {
    nock(REGISTRY)
      .get('/v2/_catalog')
      .query(true)
      .reply(200, { repositories: ['a'] }, { Link: '<http://127.0.0.1:65099/v2/_catalog?last=a>; rel="next"' });
    const r = new RegistryClient({ url: REGISTRY, auth: { username: 'u', password: 'p' } });
    await assert.rejects(r.listRepositories(), /next-page link points to another host/);
  });

  it('stops when a registry repeats the same next link, and rejects a non-object body', async () => {
    nock(REGISTRY)
      .get('/v2/_catalog')
      .query({ n: '100' })
      .reply(200, { repositories: ['a'] }, { Link: '</v2/_catalog?n=100>; rel="next"' });
    nock(REGISTRY).get('/v2/_catalog').query(true).reply(200, '[]', { 'Content-Type': 'application/json' });
    const r = new RegistryClient({ url: REGISTRY });
    assert.deepEqual(await r.listRepositories(), ['a']);
    await assert.rejects(r.listRepositories(), /did not answer a JSON object/);
  });

  it('maps catalog errors: 401 unauthorized, 5xx and refused connections unavailable', async () => {
    nock(REGISTRY)
      .get('/v2/_catalog')
      .query(true)
      .reply(401, { errors: [{ code: 'UNAUTHORIZED' }] });
    nock(REGISTRY).get('/v2/_catalog').query(true).reply(503, 'down');
    const r = new RegistryClient({ url: REGISTRY });
    await assert.rejects(r.listRepositories(), UnauthorizedError);
    await assert.rejects(r.listRepositories(), UnavailableError);
    nock.enableNetConnect('127.0.0.1:1');
    try {
      await assert.rejects(new RegistryClient({ url: '127.0.0.1:1' }).listRepositories(), UnavailableError);
    } finally {
      nock.disableNetConnect();
    }
  });

  it('manifestInfo: digest and media type from the HEAD answer', async () => {
    const digest = `sha256:${'b'.repeat(64)}`;
    let accept: unknown;
    nock(REGISTRY)
      .head('/v2/lab/app/manifests/v1')
      .reply(function () {
        accept = this.req.headers.accept;
        return [
          200,
          '',
          {
            'Docker-Content-Digest': digest,
            'Content-Type': 'application/vnd.docker.distribution.manifest.v2+json',
          },
        ];
      });
    const r = new RegistryClient({ url: REGISTRY });
    assert.deepEqual(await r.manifestInfo('lab/app', 'v1'), {
      digest,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    });
    // every accepted type is offered, so the registry never converts to schema 1 (whose digest differs)
    for (const t of [
      'application/vnd.docker.distribution.manifest.v2+json',
      'application/vnd.docker.distribution.manifest.list.v2+json',
      'application/vnd.oci.image.manifest.v1+json',
      'application/vnd.oci.image.index.v1+json',
    ]) {
      assert.ok(String(accept).includes(t), `Accept has ${t}`);
    }
  });

  it('manifestInfo: hashes the GET body when the HEAD answer has no digest header', async () => {
    const body = Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}\n');
    let getAccept: unknown;
    nock(REGISTRY)
      .head('/v2/app/manifests/v2')
      .reply(200, '', { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
    nock(REGISTRY)
      .get('/v2/app/manifests/v2')
      .reply(function () {
        getAccept = this.req.headers.accept;
        return [200, body, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json; charset=utf-8' }];
      });
    const r = new RegistryClient({ url: REGISTRY });
    assert.deepEqual(await r.manifestInfo('app', 'v2'), {
      digest: `sha256:${createHash('sha256').update(body).digest('hex')}`,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
    });
    assert.match(String(getAccept), /application\/vnd\.oci\.image\.index\.v1\+json/);
  });

  it('manifestInfo: 404 is undefined; 5xx, 401 and malformed digests are errors', async () => {
    nock(REGISTRY).head('/v2/app/manifests/gone').reply(404);
    nock(REGISTRY).head('/v2/app/manifests/boom').reply(500);
    nock(REGISTRY).head('/v2/app/manifests/locked').reply(403);
    nock(REGISTRY).head('/v2/app/manifests/odd').reply(200, '', { 'Docker-Content-Digest': 'not-a-digest' });
    const r = new RegistryClient({ url: REGISTRY });
    assert.equal(await r.manifestInfo('app', 'gone'), undefined);
    await assert.rejects(r.manifestInfo('app', 'boom'), UnavailableError);
    await assert.rejects(r.manifestInfo('app', 'locked'), UnauthorizedError);
    await assert.rejects(r.manifestInfo('app', 'odd'), /malformed digest/);
    await assert.rejects(r.manifestInfo('../etc', 'v1'), /invalid repository/);
  });
});
