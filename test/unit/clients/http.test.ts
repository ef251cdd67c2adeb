import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import nock from 'nock';
import { AgentError } from '../../../src/common/errors.js';
import { HttpError, UnavailableError } from '../../../src/clients/errors.js';
import {
  HttpClient,
  HttpRequestError,
  USER_AGENT,
  contextHeaders,
  createHttpClient,
} from '../../../src/clients/http.js';
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

/** A real server on 127.0.0.1 or a unix socket: what nock cannot fake (sockets, idle time, streaming). */
describe('clients/http HttpClient on real sockets', () => {
  let server: Server;
  let base: string;
  let handler: (req: IncomingMessage, res: ServerResponse) => void = () => undefined;
  before(async () => {
    nock.enableNetConnect((host: string) => /^(127\.0\.0\.1|localhost)(:\d+)?$/.test(host));
    server = createServer((req, res) => handler(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const readAll = async (s: AsyncIterable<Buffer>): Promise<Buffer> => {
    const parts: Buffer[] = [];
    for await (const c of s) parts.push(c);
    return Buffer.concat(parts);
  };

  it('streams a request body in and a response body out, and joins paths to the base URL', async () => {
    handler = (req, res) => {
      void readAll(req).then((b) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-path': req.url ?? '' });
        res.end(Buffer.concat([b, b]));
      });
    };
    const http = new HttpClient({ baseURL: `${base}/prefix/` });
    const payload = Buffer.alloc(3 * 1024 * 1024, 7);
    const res = await http.put<Readable>(
      '/up?x=1',
      Readable.from([payload.subarray(0, 1000), payload.subarray(1000)]),
      {
        responseType: 'stream',
      },
    );
    assert.equal(res.headers['x-path'], '/prefix/up?x=1');
    assert.equal((await readAll(res.data)).length, 2 * payload.length);
  });

  it('sends objects as JSON, parses JSON answers, keeps other text, and merges headers case-insensitively', async () => {
    const seen: IncomingMessage['headers'][] = [];
    handler = (req, res) => {
      seen.push(req.headers);
      void readAll(req).then((b) => {
        if (req.url === '/json') res.writeHead(200, { 'content-type': 'application/json' }).end(b);
        else res.writeHead(200).end('not json {');
      });
    };
    const http = new HttpClient({ baseURL: base, headers: { 'x-default': 'a', 'X-Over': 'client' } });
    const r1 = await http.post<{ a: number }>('/json', { a: 1 }, { headers: { 'x-over': 'call' } });
    assert.deepEqual(r1.data, { a: 1 });
    assert.equal(seen[0]?.['content-type'], 'application/json');
    assert.equal(seen[0]?.['x-default'], 'a');
    assert.equal(seen[0]?.['x-over'], 'call');
    assert.equal(seen[0]?.['content-length'], '7');
    assert.equal((await http.get('/text')).data, 'not json {');
    assert.deepEqual((await http.get<Buffer>('/text', { responseType: 'buffer' })).data, Buffer.from('not json {'));
  });

  it('fails a streamed answer that stalls longer than the idle timeout', async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.write('first');
    };
    const http = new HttpClient({ baseURL: base, timeoutMs: 150 });
    const res = await http.get<Readable>('/stall', { responseType: 'stream' });
    const err = await readAll(res.data).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof HttpRequestError, String(err));
    assert.equal(err.code, 'ETIMEDOUT');
  });

  it('aborts on the signal before and after the answer head: a canceled AgentError for a service', async () => {
    handler = (_req, res) => {
      res.writeHead(200);
      res.write('x');
    };
    const glance = createHttpClient({ service: 'glance', baseURL: base });
    const before = new AbortController();
    before.abort();
    const e1 = await glance.get('/a', { signal: before.signal }).catch((e: unknown) => e);
    assert.ok(e1 instanceof AgentError && !(e1 instanceof HttpError));
    assert.match(e1.message, /glance GET \/a: canceled/);
    const later = new AbortController();
    const res = await glance.get<Readable>('/b', { responseType: 'stream', signal: later.signal });
    const reading = readAll(res.data).catch((e: unknown) => e);
    later.abort();
    const e2 = await reading;
    assert.ok(e2 instanceof HttpRequestError && e2.code === 'ERR_CANCELED', String(e2));
  });

  it('a refused connection and a bad status name the path, never the query', async () => {
    handler = (_req, res) => res.writeHead(503, { 'x-openstack-request-id': 'req-remote' }).end('{"error":"down"}');
    const placement = createHttpClient({ service: 'placement', baseURL: base });
    const e1 = await placement.get('/rp?secret=s').catch((e: unknown) => e);
    assert.ok(e1 instanceof UnavailableError);
    assert.equal(e1.status, 503);
    assert.equal(e1.remoteRequestId, 'req-remote');
    assert.doesNotMatch(e1.message, /secret/);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const e2 = await new HttpClient({}).get(`http://127.0.0.1:${port}/x?secret=s`).catch((e: unknown) => e);
    assert.ok(e2 instanceof HttpRequestError);
    assert.equal(e2.code, 'ECONNREFUSED');
    assert.equal(e2.path, '/x');
  });

  it('talks HTTP over a unix socket (the Docker Engine)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'nd-http-'));
    const sock = join(dir, 's.sock');
    const unix = createServer((req, res) => res.writeHead(200).end(JSON.stringify({ url: req.url })));
    await new Promise<void>((r) => unix.listen(sock, r));
    try {
      const http = new HttpClient({ socketPath: sock });
      assert.deepEqual((await http.get('/v1.41/_ping?x=1')).data, { url: '/v1.41/_ping?x=1' });
    } finally {
      await new Promise((r) => unix.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  });
});
