/**
 * Interop with Python's own oslo.messaging (Debian python3-oslo.messaging)
 * through the real broker, in both directions.
 */
import assert from 'node:assert/strict';
import { NovaError } from '../../../src/common/errors.js';
import { pollUntil } from '../../../src/common/poll.js';
import { adminContext, contextFromValues } from '../../../src/rpc/context.js';
import { RemoteError, RpcTimeoutError } from '../../../src/rpc/errors.js';
import type { Endpoint } from '../../../src/rpc/dispatcher.js';
import type { Messaging } from '../../../src/rpc/messaging.js';
import { baseApiEndpoint } from '../../../src/rpc/baseapi.js';
import { osloCall, startMessaging, startOsloServer, uniqueTopic, type OsloServer } from '../../support/broker.js';

describe('rpc interop: our client → Python oslo.messaging server', function () {
  this.timeout(60_000);
  let m: Messaging;
  let peer: OsloServer;
  let topic: string;

  beforeEach(async () => {
    topic = uniqueTopic();
    m = await startMessaging();
    peer = await startOsloServer(topic, 'peerA', '1.3');
  });
  afterEach(async () => {
    await peer.stop();
    await m.transport.deleteQueue(topic);
    await m.transport.deleteQueue(`${topic}.peerA`);
    await m.close();
  });

  it('call returns the result, and the context arrives as oslo decodes it', async () => {
    const ctx = contextFromValues({ request_id: 'req-interop-1', user_id: 'u1', project_id: 'p1', roles: ['admin'] });
    const r = await m.client(topic).call(ctx, 'echo', { a: 1, b: ['x', null], c: { d: true } }, { version: '1.2' });
    assert.deepEqual(r, { a: 1, b: ['x', null], c: { d: true } });
    const line = peer.lines.find((l) => l.startsWith('echo ctxt='));
    assert.ok(line, 'the Python server saw the call');
    const seen = JSON.parse(line.slice('echo ctxt='.length, line.indexOf(' kw='))) as Record<string, unknown>;
    assert.equal(seen.request_id, 'req-interop-1');
    assert.equal(seen.user_id, 'u1');
    assert.deepEqual(seen.roles, ['admin']);
  });

  it('a server-targeted call reaches <topic>.<server>', async () => {
    assert.deepEqual(await m.client(topic).call(adminContext(), 'echo', { s: 1 }, { server: 'peerA' }), { s: 1 });
  });

  it('a Python exception comes back as RemoteError with its class and module', async () => {
    await assert.rejects(m.client(topic).call(adminContext(), 'boom', {}), (err) => {
      assert.ok(err instanceof RemoteError);
      assert.equal(err.excType, 'ValueError');
      assert.equal(err.excModule, 'builtins');
      assert.equal(err.value, 'boom from oslo-rpc-peer');
      return true;
    });
  });

  it('NoSuchMethod and UnsupportedVersion from Python’s dispatcher', async () => {
    await assert.rejects(m.client(topic).call(adminContext(), 'nope', {}), (err) => {
      assert.ok(err instanceof RemoteError);
      assert.equal(err.excType, 'NoSuchMethod');
      assert.equal(err.excModule, 'oslo_messaging.rpc.dispatcher');
      return true;
    });
    await assert.rejects(m.client(topic).call(adminContext(), 'echo', {}, { version: '1.4' }), (err) => {
      assert.ok(err instanceof RemoteError);
      assert.equal(err.excType, 'UnsupportedVersion');
      assert.match(err.value, /RPC version 1\.4\. Attempted method: echo/);
      return true;
    });
  });

  it('cast and fanout cast are delivered, and get no reply', async () => {
    await m.client(topic).cast(adminContext(), 'echo', { cast: 1 });
    await m.client(topic).fanoutCast(adminContext(), 'echo', { fanout: 2 });
    await pollUntil(() => (peer.lines.some((l) => l.includes('"cast": 1')) ? true : undefined), {
      timeoutMs: 10_000,
      what: 'the cast at the Python server',
    });
    await pollUntil(() => (peer.lines.some((l) => l.includes('"fanout": 2')) ? true : undefined), {
      timeoutMs: 10_000,
      what: 'the fanout cast at the Python server',
    });
  });

  it('a call nobody answers fails with a timeout, not a hang', async () => {
    const t0 = Date.now();
    await assert.rejects(
      m.client(uniqueTopic('nobody')).call(adminContext(), 'echo', {}, { timeoutS: 1 }),
      RpcTimeoutError,
    );
    const took = Date.now() - t0;
    assert.ok(took >= 900 && took < 5000, `timed out after ${took} ms`);
  });
});

describe('rpc interop: Python oslo.messaging client → our server', function () {
  this.timeout(90_000);
  let m: Messaging;
  let topic: string;
  const received: Array<{ method: string; args: unknown; request_id: string }> = [];

  const endpoint: Endpoint = {
    namespace: null,
    version: '6.1',
    methods: {
      echo: (ctx, args) => {
        received.push({ method: 'echo', args, request_id: ctx.request_id });
        return args;
      },
      instance_missing: () => {
        throw new NovaError('InstanceNotFound', 'Instance i-1 could not be found.', { instance_id: 'i-1' });
      },
      value_error: () => {
        throw new NovaError('ValueError', 'bad value', {}, { novaModule: 'builtins' });
      },
      crash: () => {
        throw new TypeError('agent bug');
      },
      slow: async () => {
        await new Promise((r) => setTimeout(r, 3000));
        return 'late';
      },
    },
  };

  beforeEach(async () => {
    received.length = 0;
    topic = uniqueTopic();
    m = await startMessaging();
    await m.server(topic, 'agent1', [endpoint, baseApiEndpoint('compute')]);
  });
  afterEach(async () => {
    await m.transport.deleteQueue(topic);
    await m.transport.deleteQueue(`${topic}.agent1`);
    await m.close();
  });

  it('answers calls; Python gets the result', async () => {
    const r = await osloCall(topic, 'echo', { a: 1, nested: { b: [1, 2] } }, [
      '--server',
      'agent1',
      '--version',
      '6.0',
      '--ctxt',
      '{"request_id": "req-py-1"}',
    ]);
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(JSON.parse(r.out), { a: 1, nested: { b: [1, 2] } });
    assert.equal(received[0]?.request_id, 'req-py-1');
  });

  it('answers baseapi ping', async () => {
    // the peer cannot set a namespace; prove ping through our own client instead
    const r = await m
      .client(topic)
      .call(adminContext(), 'ping', { arg: 'x' }, { namespace: 'baseapi', version: '1.0' });
    assert.deepEqual(r, { service: 'compute', arg: 'x' });
  });

  it('failures are re-raised in Python as the right class', async () => {
    const v = await osloCall(topic, 'value_error', {}, ['--version', '6.1']);
    assert.equal(v.code, 1);
    assert.equal(v.out, 'ValueError: bad value');
    const n = await osloCall(topic, 'instance_missing', {}, ['--version', '6.1']);
    assert.equal(n.code, 1);
    assert.match(n.out, /^InstanceNotFound: Instance i-1 could not be found\./);
    const c = await osloCall(topic, 'crash', {}, ['--version', '6.1']);
    assert.equal(c.code, 1);
    assert.match(c.out, /^Exception: agent bug/);
  });

  it('NoSuchMethod and UnsupportedVersion as oslo words them', async () => {
    const n = await osloCall(topic, 'resize_instance', {}, ['--version', '6.0']);
    assert.equal(n.code, 1);
    assert.equal(n.out, 'NoSuchMethod: Endpoint does not support RPC method resize_instance');
    const u = await osloCall(topic, 'echo', {}, ['--version', '6.2']);
    assert.equal(u.code, 1);
    assert.equal(u.out, 'UnsupportedVersion: Endpoint does not support RPC version 6.2. Attempted method: echo');
  });

  it('casts and fanout casts reach the handler', async () => {
    const c = await osloCall(topic, 'echo', { via: 'cast' }, ['--cast', '--version', '6.0']);
    assert.equal(c.out, 'sent');
    const f = await osloCall(topic, 'echo', { via: 'fanout' }, ['--fanout', '--version', '6.0']);
    assert.equal(f.out, 'sent');
    await pollUntil(() => (received.length >= 2 ? true : undefined), { timeoutMs: 10_000, what: 'two casts' });
    assert.deepEqual(
      received.map((r) => r.args).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b))),
      [{ via: 'cast' }, { via: 'fanout' }],
    );
  });

  it('a Python call that outlives its timeout gets MessagingTimeout', async () => {
    const r = await osloCall(topic, 'slow', {}, ['--version', '6.0', '--timeout', '1']);
    assert.equal(r.code, 1);
    assert.match(r.out, /^MessagingTimeout/);
  });
});
