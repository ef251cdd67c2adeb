/**
 * DockerClient HTTP edges against nock (baseURL http://localhost): status
 * tables, version negotiation, streams (JSON lines, multiplexed logs),
 * truncated bodies, daemon down.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import nock from 'nock';
import {
  DockerClient,
  compareApiVersions,
  encodeRegistryAuth,
  splitImageRef,
} from '../../../src/clients/docker/client.js';
import {
  FrameDemuxer,
  TailBuffer,
  demuxBuffer,
  jsonLines,
  TruncatedStreamError,
} from '../../../src/clients/docker/stream.js';
import {
  ConflictError,
  HttpError,
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
} from '../../../src/clients/errors.js';

const BASE = 'http://localhost';
const V = '/v1.41';

function frame(stream: number, text: string): Buffer {
  const payload = Buffer.from(text);
  const h = Buffer.alloc(8);
  h.writeUInt8(stream, 0);
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** A body that sends `parts` then breaks off with a socket error. */
function breaking(parts: string[]): Readable {
  const r = new Readable({ read() {} });
  for (const p of parts) r.push(p);
  setTimeout(() => r.destroy(new Error('socket hang up')), 10);
  return r;
}

function lines(...objs: unknown[]): string {
  return objs.map((o) => `${JSON.stringify(o)}\r\n`).join('');
}

type ErrClass = abstract new (...args: never[]) => Error;
function exactly(klass: ErrClass) {
  return (err: unknown) => {
    assert.ok(err instanceof klass, `expected ${klass.name}, got ${String(err)}`);
    assert.equal(err.constructor, klass, `expected exactly ${klass.name}, got ${err.name}`);
    return true;
  };
}

describe('clients/docker DockerClient (nock)', () => {
  let c: DockerClient;
  before(() => {
    nock.disableNetConnect();
    nock.enableNetConnect('127.0.0.1:1');
  });
  after(() => {
    nock.cleanAll();
    nock.enableNetConnect();
  });
  beforeEach(() => {
    c = new DockerClient({ baseURL: BASE, apiVersion: '1.41' });
  });
  afterEach(() => {
    const pending = nock.pendingMocks();
    nock.cleanAll();
    assert.deepEqual(pending, [], 'all mocked calls were made');
  });

  describe('version negotiation', () => {
    it('uses min(server, 1.41), asks once', async () => {
      const neg = new DockerClient({ baseURL: BASE });
      nock(BASE).get('/version').once().reply(200, { Version: '25.0.0', ApiVersion: '1.44' });
      nock(BASE).get(`${V}/info`).twice().reply(200, { ServerVersion: '25.0.0' });
      await neg.info();
      await neg.info();
      assert.equal(await neg.apiPrefix(), '/v1.41');
    });

    it('an older server gets its own version', async () => {
      const neg = new DockerClient({ baseURL: BASE });
      nock(BASE).get('/version').reply(200, { Version: '19.03.1', ApiVersion: '1.40' });
      nock(BASE).get('/v1.40/containers/json').reply(200, []);
      assert.deepEqual(await neg.listContainers(), []);
    });

    it('a failed negotiation is retried on the next call', async () => {
      const neg = new DockerClient({ baseURL: BASE });
      nock(BASE).get('/version').reply(500, { message: 'starting' });
      nock(BASE).get('/version').reply(200, { Version: '20.10.24', ApiVersion: '1.41' });
      nock(BASE).get(`${V}/info`).reply(200, {});
      await assert.rejects(neg.info(), UnavailableError);
      await neg.info();
    });

    it('compareApiVersions is numeric', () => {
      assert.equal(compareApiVersions('1.9', '1.41'), -1);
      assert.equal(compareApiVersions('1.41', '1.41'), 0);
      assert.equal(compareApiVersions('1.44', '1.41'), 1);
    });
  });

  describe('status tables', () => {
    const id = 'abc123';
    const cases: {
      name: string;
      method: 'post' | 'delete';
      path: string;
      status: number;
      call: (c: DockerClient) => Promise<unknown>;
      want: unknown;
      err?: ErrClass;
    }[] = [
      {
        name: 'start 204',
        method: 'post',
        path: `/containers/${id}/start`,
        status: 204,
        call: (c) => c.startContainer(id),
        want: true,
      },
      {
        name: 'start 304 (running)',
        method: 'post',
        path: `/containers/${id}/start`,
        status: 304,
        call: (c) => c.startContainer(id),
        want: false,
      },
      {
        name: 'start 404',
        method: 'post',
        path: `/containers/${id}/start`,
        status: 404,
        call: (c) => c.startContainer(id),
        want: undefined,
        err: NotFoundError,
      },
      {
        name: 'start 500',
        method: 'post',
        path: `/containers/${id}/start`,
        status: 500,
        call: (c) => c.startContainer(id),
        want: undefined,
        err: UnavailableError,
      },
      {
        name: 'stop 204',
        method: 'post',
        path: `/containers/${id}/stop`,
        status: 204,
        call: (c) => c.stopContainer(id),
        want: true,
      },
      {
        name: 'stop 304 (stopped)',
        method: 'post',
        path: `/containers/${id}/stop`,
        status: 304,
        call: (c) => c.stopContainer(id),
        want: false,
      },
      {
        name: 'stop 404',
        method: 'post',
        path: `/containers/${id}/stop`,
        status: 404,
        call: (c) => c.stopContainer(id),
        want: undefined,
        err: NotFoundError,
      },
      {
        name: 'remove 204',
        method: 'delete',
        path: `/containers/${id}`,
        status: 204,
        call: (c) => c.removeContainer(id),
        want: true,
      },
      {
        name: 'remove 404 (gone)',
        method: 'delete',
        path: `/containers/${id}`,
        status: 404,
        call: (c) => c.removeContainer(id),
        want: false,
      },
      {
        name: 'remove 409 (in progress)',
        method: 'delete',
        path: `/containers/${id}`,
        status: 409,
        call: (c) => c.removeContainer(id),
        want: undefined,
        err: ConflictError,
      },
      {
        name: 'kill 409 (not running)',
        method: 'post',
        path: `/containers/${id}/kill`,
        status: 409,
        call: (c) => c.killContainer(id),
        want: undefined,
        err: ConflictError,
      },
      {
        name: 'pause 409',
        method: 'post',
        path: `/containers/${id}/pause`,
        status: 409,
        call: (c) => c.pauseContainer(id),
        want: undefined,
        err: ConflictError,
      },
      {
        name: 'image remove 200',
        method: 'delete',
        path: '/images/busybox:latest',
        status: 200,
        call: (c) => c.removeImage('busybox:latest'),
        want: true,
      },
      {
        name: 'image remove 404',
        method: 'delete',
        path: '/images/busybox:latest',
        status: 404,
        call: (c) => c.removeImage('busybox:latest'),
        want: false,
      },
      {
        name: 'image remove 409 (in use)',
        method: 'delete',
        path: '/images/busybox:latest',
        status: 409,
        call: (c) => c.removeImage('busybox:latest'),
        want: undefined,
        err: ConflictError,
      },
      {
        name: 'tag 201',
        method: 'post',
        path: '/images/busybox:latest/tag',
        status: 201,
        call: (c) => c.tagImage('busybox:latest', 'r/x', 't'),
        want: undefined,
      },
      {
        name: 'tag 404',
        method: 'post',
        path: '/images/busybox:latest/tag',
        status: 404,
        call: (c) => c.tagImage('busybox:latest', 'r/x', 't'),
        want: undefined,
        err: NotFoundError,
      },
    ];
    for (const t of cases) {
      it(t.name, async () => {
        const body = t.status >= 400 ? { message: `msg ${t.status}` } : '';
        nock(BASE)[t.method](`${V}${t.path}`).query(true).reply(t.status, body);
        if (t.err) await assert.rejects(t.call(c), exactly(t.err));
        else assert.equal(await t.call(c), t.want);
      });
    }

    it('an error carries service, method, path without query, status and the message', async () => {
      nock(BASE).post(`${V}/containers/create`).query({ name: 'nova-x' }).reply(409, { message: 'name in use' });
      const err = await c.createContainer('nova-x', { Image: 'busybox' }).catch((e: unknown) => e);
      assert.ok(err instanceof ConflictError);
      assert.equal(err.service, 'docker');
      assert.equal(err.method, 'POST');
      assert.equal(err.path, `${V}/containers/create`);
      assert.equal(err.status, 409);
      assert.equal(err.body, 'name in use');
      assert.match(err.message, /name in use/);
    });

    it('create: 201 returns the id; 404 (no image) NotFoundError; 400 plain HttpError', async () => {
      nock(BASE).post(`${V}/containers/create`).query(true).reply(201, { Id: 'new', Warnings: [] });
      nock(BASE).post(`${V}/containers/create`).query(true).reply(404, { message: 'No such image' });
      nock(BASE).post(`${V}/containers/create`).query(true).reply(400, { message: 'bad' });
      assert.equal((await c.createContainer('n', { Image: 'x' })).Id, 'new');
      await assert.rejects(c.createContainer('n', { Image: 'x' }), exactly(NotFoundError));
      await assert.rejects(c.createContainer('n', { Image: 'x' }), exactly(HttpError));
    });

    it('unpause: the Engine\'s 500 "is not paused" is a ConflictError, other 500s are not', async () => {
      nock(BASE).post(`${V}/containers/x/unpause`).reply(500, { message: 'Container x is not paused' });
      nock(BASE).post(`${V}/containers/x/unpause`).reply(500, { message: 'runc exploded' });
      await assert.rejects(c.unpauseContainer('x'), exactly(ConflictError));
      await assert.rejects(c.unpauseContainer('x'), exactly(UnavailableError));
    });

    it('inspectImage: 200 the image, 404 undefined; 500 UnavailableError', async () => {
      nock(BASE)
        .get(`${V}/images/lab/httpd:latest/json`)
        .reply(200, { Id: 'sha256:1', RepoTags: ['lab/httpd:latest'] });
      nock(BASE).get(`${V}/images/lab/nope:latest/json`).reply(404, { message: 'No such image' });
      nock(BASE).get(`${V}/images/lab/boom:latest/json`).reply(500, { message: 'boom' });
      assert.equal((await c.inspectImage('lab/httpd:latest'))?.Id, 'sha256:1');
      assert.equal(await c.inspectImage('lab/nope:latest'), undefined);
      await assert.rejects(c.inspectImage('lab/boom:latest'), exactly(UnavailableError));
    });

    it('list filters are sent as JSON', async () => {
      const filters = { label: ['a=b', 'c=d'] };
      nock(BASE)
        .get(`${V}/containers/json`)
        .query({ all: '1', filters: JSON.stringify(filters) })
        .reply(200, []);
      nock(BASE)
        .get(`${V}/images/json`)
        .query({ filters: JSON.stringify({ reference: ['busybox'] }) })
        .reply(200, []);
      await c.listContainers({ all: true, filters });
      await c.listImages({ filters: { reference: ['busybox'] } });
    });

    it('stop passes t and waits longer than t', async () => {
      nock(BASE).post(`${V}/containers/x/stop`).query({ t: '30' }).delay(100).reply(204);
      const quick = new DockerClient({ baseURL: BASE, apiVersion: '1.41', timeoutMs: 50 });
      assert.equal(await quick.stopContainer('x', 30), true);
    });

    it('a call slower than the timeout: UnavailableError', async () => {
      nock(BASE).get(`${V}/info`).delay(200).reply(200, {});
      const quick = new DockerClient({ baseURL: BASE, apiVersion: '1.41', timeoutMs: 50 });
      await assert.rejects(quick.info(), exactly(UnavailableError));
    });
  });

  describe('daemon down', () => {
    it('connection refused: UnavailableError', async () => {
      const down = new DockerClient({ baseURL: 'http://127.0.0.1:1' });
      await assert.rejects(down.info(), (err: unknown) => {
        exactly(UnavailableError)(err);
        assert.match((err as Error).message, /ECONNREFUSED/);
        return true;
      });
    });

    it('needs exactly one of socketPath / baseURL', () => {
      assert.throws(() => new DockerClient({}), TypeError);
      assert.throws(() => new DockerClient({ socketPath: '/x', baseURL: BASE }), TypeError);
    });
  });

  describe('images: load', () => {
    it('posts the tar with quiet=1 and returns refs and ids', async () => {
      let got = '';
      nock(BASE, { reqheaders: { 'content-type': 'application/x-tar' } })
        .post(`${V}/images/load`, (b: unknown) => {
          got = String(b);
          return true;
        })
        .query({ quiet: '1' })
        .reply(200, lines({ stream: 'Loaded image: busybox:latest\n' }, { stream: 'Loaded image ID: sha256:abc\n' }));
      const refs = await c.loadImage(Readable.from([Buffer.from('TAR'), Buffer.from('BYTES')]));
      assert.deepEqual(refs, ['busybox:latest', 'sha256:abc']);
      assert.equal(got, 'TARBYTES');
    });

    it('an error line throws from the HttpError family with the message', async () => {
      nock(BASE)
        .post(`${V}/images/load`)
        .query(true)
        .reply(200, lines({ errorDetail: { message: 'unexpected EOF' }, error: 'unexpected EOF' }));
      await assert.rejects(c.loadImage(Readable.from([Buffer.from('x')])), (err: unknown) => {
        assert.ok(err instanceof HttpError);
        assert.match(err.message, /unexpected EOF/);
        return true;
      });
    });

    it('500 (not a tar): UnavailableError with the message', async () => {
      nock(BASE).post(`${V}/images/load`).query(true).reply(500, { message: 'invalid tar header' });
      await assert.rejects(c.loadImage(Readable.from([Buffer.from('x')])), /invalid tar header/);
    });

    it('nothing reported loaded: HttpError', async () => {
      nock(BASE).post(`${V}/images/load`).query(true).reply(200, '');
      await assert.rejects(c.loadImage(Readable.from([Buffer.from('x')])), exactly(HttpError));
    });

    it("the tar stream's own error aborts the load and is rethrown as is (no unhandled 'error')", async () => {
      class HashMismatch extends Error {}
      nock(BASE)
        .post(`${V}/images/load`)
        .query(true)
        .delay(200)
        .reply(200, lines({ stream: 'Loaded image: x\n' }));
      const tar = new Readable({ read() {} });
      tar.push(Buffer.alloc(1024));
      setTimeout(() => tar.destroy(new HashMismatch('sha256 mismatch')), 20);
      await assert.rejects(c.loadImage(tar), HashMismatch);
      nock.abortPendingRequests();
      nock.cleanAll();
    });

    it('a body that breaks off or ends inside a line: UnavailableError', async () => {
      nock(BASE)
        .post(`${V}/images/load`)
        .query(true)
        .reply(200, () => breaking(['{"stream":"Loaded ima']));
      nock(BASE).post(`${V}/images/load`).query(true).reply(200, '{"stream":"Loaded ima');
      await assert.rejects(c.loadImage(Readable.from([Buffer.from('x')])), exactly(UnavailableError));
      await assert.rejects(c.loadImage(Readable.from([Buffer.from('x')])), exactly(UnavailableError));
    });
  });

  describe('images: pull, save', () => {
    const auth = { username: 'u', password: 'p+/?', serveraddress: '127.0.0.1:5042' };

    it('sends fromImage, tag and X-Registry-Auth; consumes progress to the final status', async () => {
      let header = '';
      nock(BASE)
        .post(`${V}/images/create`)
        .query({ fromImage: '127.0.0.1:5042/lab/app', tag: 'v1' })
        .reply(function () {
          header = String(this.req.headers['x-registry-auth']);
          return [
            200,
            lines(
              { status: 'Pulling from lab/app', id: 'v1' },
              { status: 'Downloading', progressDetail: { current: 1, total: 2 }, id: 'l1' },
              { status: 'Digest: sha256:1' },
              { status: 'Status: Downloaded newer image for 127.0.0.1:5042/lab/app:v1' },
            ),
          ];
        });
      await c.pullImage('127.0.0.1:5042/lab/app:v1', auth);
      assert.equal(header, encodeRegistryAuth(auth));
      assert.doesNotMatch(header, /[+/]/);
      assert.deepEqual(JSON.parse(Buffer.from(header, 'base64url').toString()), auth);
    });

    it('digest refs go as tag', async () => {
      nock(BASE)
        .post(`${V}/images/create`)
        .query({ fromImage: 'lab/app', tag: 'sha256:abc' })
        .reply(200, lines({ status: 'Status: Image is up to date for lab/app@sha256:abc' }));
      await c.pullImage('lab/app@sha256:abc');
    });

    const streamErrors: [string, ErrClass][] = [
      ['manifest for lab/app:v9 not found: manifest unknown', NotFoundError],
      ['unauthorized: authentication required', UnauthorizedError],
      ['Get "https://127.0.0.1:5042/v2/": dial tcp 127.0.0.1:5042: connect: connection refused', UnavailableError],
      ['failed to register layer: something odd', HttpError],
    ];
    for (const [msg, klass] of streamErrors) {
      it(`error line "${msg.slice(0, 30)}…" → ${klass.name}`, async () => {
        nock(BASE)
          .post(`${V}/images/create`)
          .query(true)
          .reply(200, lines({ status: 'Pulling' }, { errorDetail: { message: msg }, error: msg }));
        await assert.rejects(c.pullImage('lab/app:v9'), exactly(klass));
      });
    }

    it('404 before streaming: NotFoundError; truncated progress: UnavailableError', async () => {
      nock(BASE).post(`${V}/images/create`).query(true).reply(404, { message: 'pull access denied' });
      nock(BASE)
        .post(`${V}/images/create`)
        .query(true)
        .reply(200, lines({ status: 'Downloading' }));
      await assert.rejects(c.pullImage('lab/app'), exactly(NotFoundError));
      await assert.rejects(c.pullImage('lab/app'), exactly(UnavailableError));
    });

    it('save streams the tar; 404 NotFoundError with the message read from the stream', async () => {
      nock(BASE).get(`${V}/images/busybox:latest/get`).reply(200, 'TARDATA');
      nock(BASE).get(`${V}/images/nope/get`).reply(404, { message: 'reference does not exist' });
      const s = await c.saveImage('busybox:latest');
      const chunks: Buffer[] = [];
      for await (const ch of s) chunks.push(ch as Buffer);
      assert.equal(Buffer.concat(chunks).toString(), 'TARDATA');
      await assert.rejects(c.saveImage('nope'), (err: unknown) => {
        exactly(NotFoundError)(err);
        assert.match((err as Error).message, /reference does not exist/);
        return true;
      });
    });

    it('splitImageRef', () => {
      assert.deepEqual(splitImageRef('busybox'), { repo: 'busybox', tag: 'latest' });
      assert.deepEqual(splitImageRef('127.0.0.1:5042/a/b'), { repo: '127.0.0.1:5042/a/b', tag: 'latest' });
      assert.deepEqual(splitImageRef('127.0.0.1:5042/a/b:v2'), { repo: '127.0.0.1:5042/a/b', tag: 'v2' });
      assert.deepEqual(splitImageRef('a@sha256:00'), { repo: 'a', tag: 'sha256:00' });
    });
  });

  describe('logs, events, wait, commit', () => {
    it('demultiplexes frames split across chunks, stdout and stderr in order', async () => {
      const body = Buffer.concat([frame(1, 'out 1\n'), frame(2, 'err 1\n'), frame(1, 'out 2\n')]);
      nock(BASE)
        .get(`${V}/containers/x/logs`)
        .query({ stdout: '1', stderr: '1', tail: '5' })
        .reply(200, () => Readable.from([body.subarray(0, 3), body.subarray(3, 17), body.subarray(17)]));
      assert.equal((await c.containerLogs('x', { tty: false, tail: 5 })).toString(), 'out 1\nerr 1\nout 2\n');
    });

    it('asks the container whether it has a TTY when not told; a TTY body is raw', async () => {
      nock(BASE)
        .get(`${V}/containers/x/json`)
        .reply(200, { Id: 'x', Config: { Tty: true } });
      nock(BASE).get(`${V}/containers/x/logs`).query(true).reply(200, 'raw tty output\n');
      assert.equal((await c.containerLogs('x')).toString(), 'raw tty output\n');
    });

    it('maxBytes keeps the newest bytes; a frame cut short keeps what arrived', async () => {
      const body = Buffer.concat([frame(1, 'a'.repeat(100)), frame(1, 'tail-end\n'), frame(1, 'cut-sh')]);
      nock(BASE)
        .get(`${V}/containers/x/logs`)
        .query(true)
        .reply(200, () => breaking([body.subarray(0, body.length - 3).toString('latin1')]));
      const out = await c.containerLogs('x', { tty: false, maxBytes: 16 });
      assert.equal(out.toString(), 'a'.repeat(4) + 'tail-end\ncut');
    });

    it('log entries: one per frame, timestamp split off, bytes untouched (a long line comes as two)', async () => {
      const body = Buffer.concat([
        frame(1, '2026-12-03T07:00:00.100000000Z out 1\n'),
        frame(2, '2026-12-03T07:00:00.200000000Z \u001b[31merr\u001b[0m\n'),
        frame(1, '2026-12-03T07:00:00.300000000Z long-'),
        frame(1, '2026-12-03T07:00:00.300000100Z line\n'),
      ]);
      nock(BASE)
        .get(`${V}/containers/x/logs`)
        .query({ stdout: '1', stderr: '1', timestamps: '1', tail: '4' })
        .reply(200, () => Readable.from([body.subarray(0, 5), body.subarray(5, 60), body.subarray(60)]));
      const entries = await c.containerLogEntries('x', { tty: false, tail: 4 });
      assert.deepEqual(
        entries.map((e) => [e.time, e.stream, e.data.toString()]),
        [
          ['2026-12-03T07:00:00.100000000Z', 1, 'out 1\n'],
          ['2026-12-03T07:00:00.200000000Z', 2, '\u001b[31merr\u001b[0m\n'],
          ['2026-12-03T07:00:00.300000000Z', 1, 'long-'],
          ['2026-12-03T07:00:00.300000100Z', 1, 'line\n'],
        ],
      );
    });

    it('log entries: maxBytes keeps the newest whole entries; a TTY body is cut at line starts', async () => {
      const body = Buffer.concat([
        frame(1, '2026-12-03T07:00:00.1Z ' + 'a'.repeat(100) + '\n'),
        frame(1, '2026-12-03T07:00:00.2Z b\n'),
        frame(1, '2026-12-03T07:00:00.3Z c\n'),
      ]);
      nock(BASE).get(`${V}/containers/x/logs`).query(true).reply(200, body);
      const kept = await c.containerLogEntries('x', { tty: false, maxBytes: 10 });
      assert.deepEqual(
        kept.map((e) => e.data.toString()),
        ['b\n', 'c\n'],
      );
      nock(BASE)
        .get(`${V}/containers/x/logs`)
        .query(true)
        .reply(200, '2026-12-03T07:00:00.1Z one\r\n2026-12-03T07:00:00.2Z two\r\nno time');
      const tty = await c.containerLogEntries('x', { tty: true });
      assert.deepEqual(
        tty.map((e) => [e.time, e.data.toString()]),
        [
          ['2026-12-03T07:00:00.1Z', 'one\r\n'],
          ['2026-12-03T07:00:00.2Z', 'two\r\n'],
          ['', 'no time'],
        ],
      );
    });

    it('events: parsed objects with filters and since; stops when the consumer stops', async () => {
      const ev = (a: string) => ({
        Type: 'container',
        Action: a,
        Actor: { ID: 'x', Attributes: {} },
        time: 1,
        timeNano: 1,
      });
      nock(BASE)
        .get(`${V}/events`)
        .query({ filters: JSON.stringify({ type: ['container'] }), since: '100' })
        .reply(200, lines(ev('start'), ev('die'), ev('destroy')));
      const seen: string[] = [];
      for await (const e of c.events({ filters: { type: ['container'] }, since: 100 })) {
        seen.push(e.Action);
        if (e.Action === 'die') break;
      }
      assert.deepEqual(seen, ['start', 'die']);
    });

    it('events: a broken stream is an UnavailableError', async () => {
      // broken once the first event was read (a timer could fire before it was, on a loaded host)
      const body = new Readable({ read() {} });
      body.push('{"Type":"container"}\n');
      nock(BASE)
        .get(`${V}/events`)
        .reply(200, () => body);
      const seen: unknown[] = [];
      await assert.rejects(
        (async () => {
          for await (const e of c.events()) {
            seen.push(e);
            body.destroy(new Error('socket hang up'));
          }
        })(),
        exactly(UnavailableError),
      );
      assert.equal(seen.length, 1);
    });

    it('wait returns the status; abort rejects with the signal reason', async () => {
      nock(BASE).post(`${V}/containers/x/wait`).query({ condition: 'not-running' }).reply(200, { StatusCode: 3 });
      nock(BASE).post(`${V}/containers/y/wait`).query(true).delay(1000).reply(200, { StatusCode: 0 });
      assert.equal((await c.waitContainer('x')).StatusCode, 3);
      await assert.rejects(c.waitContainer('y', { signal: AbortSignal.timeout(30) }), { name: 'TimeoutError' });
    });

    it('commit sends repo, tag and labels', async () => {
      nock(BASE)
        .post(`${V}/commit`, { Labels: { a: 'b' } })
        .query({ container: 'x', repo: 'snap/x', tag: 't1' })
        .reply(201, { Id: 'sha256:new' });
      assert.equal(await c.commitContainer('x', { repo: 'snap/x', tag: 't1', labels: { a: 'b' } }), 'sha256:new');
    });

    it('update sends resources and returns warnings', async () => {
      nock(BASE)
        .post(`${V}/containers/x/update`, { Memory: 1024 })
        .reply(200, { Warnings: ['w'] });
      assert.deepEqual(await c.updateContainer('x', { Memory: 1024 }), ['w']);
    });
  });
});

describe('clients/docker stream helpers', () => {
  it('FrameDemuxer handles byte-by-byte input', () => {
    const d = new FrameDemuxer();
    const body = Buffer.concat([frame(1, 'hello'), frame(2, 'world')]);
    const out: string[] = [];
    for (const b of body) for (const f of d.push(Buffer.from([b]))) out.push(`${f.stream}:${f.payload.toString()}`);
    assert.deepEqual(out, ['1:hello', '2:world']);
    assert.equal(d.flush(), undefined);
  });

  it('demuxBuffer of an empty body is empty', () => {
    assert.equal(demuxBuffer(Buffer.alloc(0)).length, 0);
  });

  it('TailBuffer keeps the last bytes', () => {
    const t = new TailBuffer(5);
    for (const s of ['abc', 'defg', 'hi']) t.append(Buffer.from(s));
    assert.equal(t.toBuffer().toString(), 'efghi');
  });

  it('jsonLines: CRLF, blank lines, a complete last line without newline; truncated last line throws', async () => {
    const all: unknown[] = [];
    for await (const v of jsonLines(Readable.from(['{"a":1}\r\n\n{"b"', ':2}\n{"c":3}']))) all.push(v);
    assert.deepEqual(all, [{ a: 1 }, { b: 2 }, { c: 3 }]);
    await assert.rejects(
      (async () => {
        for await (const _ of jsonLines(Readable.from(['{"a":1}\n{"b'])));
      })(),
      TruncatedStreamError,
    );
  });
});
