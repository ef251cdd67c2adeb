import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { Readable } from 'node:stream';
import nock from 'nock';
import {
  ConflictError,
  HttpError,
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
} from '../../../src/clients/errors.js';
import { GlanceClient, ImageDataMissingError, imageProperties } from '../../../src/clients/glance/index.js';
import { KeystoneClient } from '../../../src/clients/keystone/index.js';
import { GLANCE, KEYSTONE, KS_OPTS, mockAuth, setupNock, tokenBody } from './fixtures.js';

const ID = '0b0b0b0b-1111-2222-3333-444444444444';
const IMAGE = {
  id: ID,
  name: 'bb',
  status: 'active',
  container_format: 'docker',
  disk_format: 'raw',
  size: 3,
  checksum: 'x',
  docker_image_ref: 'busybox:t1',
};

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

describe('clients/glance', () => {
  setupNock();

  it('shows an image with the service token from keystone and the request id', async () => {
    mockAuth('svc-token');
    let headers: Record<string, unknown> = {};
    nock(GLANCE)
      .get(`/v2/images/${ID}`)
      .reply(function () {
        headers = this.req.headers;
        return [200, IMAGE];
      });
    const g = new GlanceClient({ keystone: new KeystoneClient(KS_OPTS) });
    const img = await g.showImage({ requestId: 'req-abc' }, ID);
    assert.equal(img.id, ID);
    assert.deepEqual(imageProperties(img), { docker_image_ref: 'busybox:t1' });
    assert.equal(headers['x-auth-token'], 'svc-token');
    assert.equal(headers['x-openstack-request-id'], 'req-abc');
    assert.match(String(headers['user-agent']), /^nova-docker\//);
  });

  it("sends the request's own token when the context carries one", async () => {
    let token: unknown;
    nock(GLANCE)
      .get(`/v2/images/${ID}`)
      .reply(function () {
        token = this.req.headers['x-auth-token'];
        return [200, IMAGE];
      });
    const g = new GlanceClient({ apiServers: [`${GLANCE}/v2/`], keystone: new KeystoneClient(KS_OPTS) });
    await g.showImage({ authToken: 'user-tok' }, ID);
    assert.equal(token, 'user-tok');
  });

  it('maps 404 to NotFoundError and 503 to UnavailableError, without the token in the error', async () => {
    nock(GLANCE).get(`/v2/images/${ID}`).reply(404, 'no such image');
    nock(GLANCE).get(`/v2/images/${ID}/file`).reply(503, 'glance is sad');
    const g = new GlanceClient({ apiServers: [GLANCE] });
    const e1 = await g.showImage({ authToken: 'secret-user-tok' }, ID).catch((e: unknown) => e);
    assert.ok(e1 instanceof NotFoundError);
    assert.equal(e1.service, 'glance');
    assert.equal(e1.path, `/v2/images/${ID}`);
    const e2 = await g.downloadImage({ authToken: 'secret-user-tok' }, ID).catch((e: unknown) => e);
    assert.ok(e2 instanceof UnavailableError);
    assert.equal(e2.status, 503);
    assert.match(e2.message, /glance is sad/);
    for (const e of [e1, e2]) assert.ok(!inspect(e, { depth: 10 }).includes('secret-user-tok'));
  });

  it('re-authenticates once when the service token is refused', async () => {
    const counter = { n: 0 };
    nock(KEYSTONE)
      .post('/v3/auth/tokens')
      .times(2)
      .reply(function () {
        counter.n++;
        return [201, tokenBody(new Date(Date.now() + 3600_000)), { 'X-Subject-Token': `t${counter.n}` }];
      });
    nock(GLANCE)
      .get(`/v2/images/${ID}`)
      .times(2)
      .reply(function () {
        return this.req.headers['x-auth-token'] === 't2' ? [200, IMAGE] : [401, {}];
      });
    const g = new GlanceClient({ apiServers: [GLANCE], keystone: new KeystoneClient(KS_OPTS) });
    assert.equal((await g.showImage(undefined, ID)).id, ID);
    assert.equal(counter.n, 2);
  });

  it('does not retry a refused user token', async () => {
    nock(GLANCE).get(`/v2/images/${ID}`).reply(401, {});
    const g = new GlanceClient({ apiServers: [GLANCE], keystone: new KeystoneClient(KS_OPTS) });
    await assert.rejects(g.showImage({ authToken: 'u' }, ID), UnauthorizedError);
  });

  it('streams a download and reports Content-Length / Content-MD5', async () => {
    const data = Buffer.alloc(300_000, 7);
    const md5 = createHash('md5').update(data).digest('hex');
    nock(GLANCE)
      .get(`/v2/images/${ID}/file`)
      .reply(200, () => Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]), {
        'Content-Length': String(data.length),
        'Content-MD5': md5,
      });
    const g = new GlanceClient({ apiServers: [GLANCE] });
    const dl = await g.downloadImage(undefined, ID);
    assert.equal(dl.contentLength, data.length);
    assert.equal(dl.contentMd5, md5);
    assert.ok((await readAll(dl.stream)).equals(data));
  });

  it('surfaces a body that breaks off mid-way as a stream error', async () => {
    nock(GLANCE)
      .get(`/v2/images/${ID}/file`)
      .reply(
        200,
        () =>
          new Readable({
            read() {
              this.push(Buffer.alloc(65536, 1));
              this.destroy(new Error('socket hang up'));
            },
          }),
        { 'Content-Length': '1000000' },
      );
    const g = new GlanceClient({ apiServers: [GLANCE] });
    const dl = await g.downloadImage(undefined, ID);
    await assert.rejects(readAll(dl.stream));
  });

  it('turns 204 (no data) into ImageDataMissingError', async () => {
    nock(GLANCE).get(`/v2/images/${ID}/file`).reply(204);
    const g = new GlanceClient({ apiServers: [GLANCE] });
    await assert.rejects(g.downloadImage(undefined, ID), ImageDataMissingError);
  });

  it('fails over to the next api server when one does not answer', async () => {
    // 127.0.0.1:65010 has no nock scope: disableNetConnect refuses it like a dead server.
    nock(GLANCE).get(`/v2/images/${ID}`).reply(200, IMAGE);
    const g = new GlanceClient({ apiServers: ['http://127.0.0.1:65010', GLANCE] });
    assert.equal((await g.showImage(undefined, ID)).id, ID);
  });

  it('uploads a stream as application/octet-stream and creates records', async () => {
    const chunks = [Buffer.alloc(70_000, 'A'), Buffer.alloc(70_000, 'B')];
    let got = '';
    let type: unknown;
    nock(GLANCE)
      .put(`/v2/images/${ID}/file`, (b: string) => {
        got = b;
        return true;
      })
      .reply(function () {
        type = this.req.headers['content-type'];
        return [204];
      });
    let created: unknown;
    nock(GLANCE)
      .post('/v2/images', (b: unknown) => {
        created = b;
        return true;
      })
      .reply(201, { ...IMAGE, status: 'queued' });
    nock(GLANCE).delete(`/v2/images/${ID}`).reply(204);
    const g = new GlanceClient({ apiServers: [GLANCE] });
    const rec = await g.createImage(undefined, {
      name: 'snap',
      container_format: 'docker',
      disk_format: 'raw',
      properties: { image_type: 'snapshot' },
    });
    assert.equal(rec.status, 'queued');
    assert.deepEqual(created, { image_type: 'snapshot', name: 'snap', container_format: 'docker', disk_format: 'raw' });
    await g.uploadImage(undefined, ID, Readable.from(chunks), { size: 140_000 });
    assert.equal(type, 'application/octet-stream');
    assert.equal(got, 'A'.repeat(70_000) + 'B'.repeat(70_000));
    await g.deleteImage(undefined, ID);
    assert.ok(nock.isDone());
  });

  it('lists images page by page through `next`, with the filters on the first page', async () => {
    const queries: Array<Record<string, unknown>> = [];
    nock(GLANCE)
      .get('/v2/images')
      .query((q) => {
        queries.push(q);
        return q.marker === undefined;
      })
      .reply(200, {
        images: [{ id: 'a' }, { id: 'b' }],
        next: '/v2/images?container_format=docker&limit=2&marker=b',
      });
    nock(GLANCE)
      .get('/v2/images')
      .query({ container_format: 'docker', limit: '2', marker: 'b' })
      .reply(200, {
        images: [{ id: 'c' }, { bogus: true }],
        next: '/v2/images?container_format=docker&limit=2&marker=b',
      });
    const g = new GlanceClient({ apiServers: [GLANCE] });
    const imgs = await g.listImages(undefined, { filters: { container_format: 'docker' }, pageSize: 2 });
    // a record without an id is dropped; a `next` that repeats the page ends the walk
    assert.deepEqual(
      imgs.map((i) => i.id),
      ['a', 'b', 'c'],
    );
    assert.deepEqual({ ...queries[0] }, { container_format: 'docker', limit: '2' });
    nock(GLANCE).get('/v2/images').query(true).reply(200, { nope: [] });
    await assert.rejects(g.listImages(undefined), /no image list/);
  });

  it('uploads chunked without a size, with the request token and id', async () => {
    let headers: Record<string, unknown> = {};
    let got = 0;
    nock(GLANCE)
      .put(`/v2/images/${ID}/file`, (b: string) => {
        got = Buffer.byteLength(b);
        return true;
      })
      .reply(function () {
        headers = this.req.headers;
        return [204];
      });
    const g = new GlanceClient({ apiServers: [GLANCE] });
    await g.uploadImage({ authToken: 'user-tok', requestId: 'req-up' }, ID, Readable.from([Buffer.alloc(1000, 1)]));
    assert.equal(got, 1000);
    assert.equal(headers['transfer-encoding'], 'chunked');
    assert.equal(headers['content-length'], undefined);
    assert.equal(headers['x-auth-token'], 'user-tok');
    assert.equal(headers['x-openstack-request-id'], 'req-up');
  });

  for (const [status, klass, name] of [
    [404, NotFoundError, 'NotFoundError'],
    [409, ConflictError, 'ConflictError'],
    [401, UnauthorizedError, 'UnauthorizedError'],
    [413, HttpError, 'HttpError'],
    [503, UnavailableError, 'UnavailableError'],
  ] as const) {
    it(`upload answered ${status}: ${name}, no token in the error`, async () => {
      nock(GLANCE).put(`/v2/images/${ID}/file`).reply(status, `refused with ${status}`);
      const source = Readable.from([Buffer.alloc(200_000, 2)]);
      const g = new GlanceClient({ apiServers: [GLANCE] });
      const err = await g.uploadImage({ authToken: 'secret-user-tok' }, ID, source).catch((e: unknown) => e);
      assert.ok(err instanceof klass, `got ${String(err)}`);
      assert.equal(err.status, status);
      assert.match(err.message, new RegExp(`refused with ${status}`));
      assert.ok(!inspect(err, { depth: 10 }).includes('secret-user-tok'));
    });
  }

  it('an upload whose source fails rejects with the source error', async () => {
    nock(GLANCE)
      .put(`/v2/images/${ID}/file`)
      .reply(204, () => undefined);
    const source = new Readable({
      read() {
        this.push(Buffer.alloc(1024, 3));
        this.destroy(new Error('docker save broke off'));
      },
    });
    const g = new GlanceClient({ apiServers: [GLANCE] });
    await assert.rejects(g.uploadImage(undefined, ID, source), /docker save broke off/);
  });

  it('an upload to a server that does not answer: UnavailableError, not retried', async () => {
    const g = new GlanceClient({ apiServers: ['http://127.0.0.1:65010', GLANCE] });
    const source = Readable.from([Buffer.alloc(10, 1)]);
    await assert.rejects(g.uploadImage(undefined, ID, source), UnavailableError);
  });

  it('patches an image with the v2.1 json-patch media type; 409 is a ConflictError', async () => {
    let body: unknown;
    let type: unknown;
    nock(GLANCE)
      .patch(`/v2/images/${ID}`, (b: unknown) => {
        body = b;
        return true;
      })
      .reply(function () {
        type = this.req.headers['content-type'];
        return [200, { ...IMAGE, status: 'queued' }];
      });
    nock(GLANCE).patch(`/v2/images/${ID}`).reply(409, 'Property docker_image_ref does not exist.');
    const g = new GlanceClient({ apiServers: [GLANCE] });
    const ops = [
      { op: 'add', path: '/container_format', value: 'docker' },
      { op: 'remove', path: '/docker_image_ref' },
    ] as const;
    const rec = await g.updateImage(undefined, ID, ops);
    assert.equal(rec.status, 'queued');
    assert.deepEqual(body, ops);
    assert.equal(type, 'application/openstack-images-v2.1-json-patch');
    await assert.rejects(g.updateImage(undefined, ID, ops), ConflictError);
  });

  it('lists images with filters and sorting, following next links', async () => {
    const queries: string[] = [];
    nock(GLANCE)
      .get('/v2/images')
      .query(true)
      .times(2)
      .reply(function (uri) {
        queries.push(uri);
        return uri.includes('marker=')
          ? [200, { images: [{ id: 'c' }] }]
          : [200, { images: [{ id: 'a' }, { id: 'b' }], next: '/v2/images?marker=b&limit=2&image_type=backup' }];
      });
    const g = new GlanceClient({ apiServers: [GLANCE] });
    const list = await g.listImages(undefined, {
      filters: { image_type: 'backup', instance_uuid: 'u1' },
      sortKey: 'created_at',
      sortDir: 'desc',
      pageSize: 2,
    });
    assert.deepEqual(
      list.map((i) => i.id),
      ['a', 'b', 'c'],
    );
    assert.equal(queries[0], '/v2/images?image_type=backup&instance_uuid=u1&sort_key=created_at&sort_dir=desc&limit=2');
    assert.equal(queries[1], '/v2/images?marker=b&limit=2&image_type=backup');
  });

  it('needs api_servers or keystone', () => {
    assert.throws(() => new GlanceClient({}), /api_servers/);
  });
});

describe('clients/glance upload against a server that refuses early', () => {
  let server: Server;
  let base = '';
  before(async () => {
    // answers 413 at once without reading the body, as Glance does past image_size_cap
    server = createServer((req, res) => {
      req.resume();
      res.writeHead(413, { 'Content-Type': 'text/plain' });
      res.end('Image exceeds the storage quota');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });

  it('rejects (413, or no answer when the close wins) and destroys the endless source, so its producer stops', async () => {
    let produced = 0;
    const source = new Readable({
      read() {
        produced++;
        setImmediate(() => this.push(Buffer.alloc(16384, 2)));
      },
    });
    const g = new GlanceClient({ apiServers: [base] });
    const err = await g.uploadImage(undefined, ID, source).catch((e: unknown) => e);
    // Whether the 413 is read before the server's close breaks the write (EPIPE) is a race.
    assert.ok(err instanceof HttpError, `got ${String(err)}`);
    assert.ok(err.status === 413 || err instanceof UnavailableError, err.message);
    assert.ok(source.destroyed);
    assert.ok(produced > 0);
  });
});
