/** Bad input, duplicates, graceful stop and a broker restart, on the real broker. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { pollUntil } from '../../../src/common/poll.js';
import { adminContext } from '../../../src/rpc/context.js';
import type { Endpoint } from '../../../src/rpc/dispatcher.js';
import { encodeEnvelope } from '../../../src/rpc/envelope.js';
import { RemoteError, RpcTimeoutError, TransportError } from '../../../src/rpc/errors.js';
import type { Messaging } from '../../../src/rpc/messaging.js';
import { osloCall, rabbitmqctl, startMessaging, uniqueTopic } from '../../support/broker.js';

const hex = (): string => randomUUID().replace(/-/g, '');

function echoEndpoint(seen: unknown[]): Endpoint {
  return {
    namespace: null,
    version: '6.1',
    methods: {
      echo: (_ctx, args) => {
        seen.push(args);
        return args;
      },
      slow: async (_ctx, args) => {
        await new Promise((r) => setTimeout(r, Number(args.ms ?? 500)));
        return 'done';
      },
    },
  };
}

describe('rpc server: bad input never stops it', function () {
  this.timeout(30_000);
  let m: Messaging;
  let topic: string;
  const seen: unknown[] = [];

  beforeEach(async () => {
    seen.length = 0;
    topic = uniqueTopic();
    m = await startMessaging({ maxMessageBytes: 64 * 1024 });
    await m.server(topic, 'h1', [echoEndpoint(seen)]);
    await m.replies.ensureStarted();
  });
  afterEach(async () => {
    await m.transport.deleteQueue(topic);
    await m.transport.deleteQueue(`${topic}.h1`);
    await m.close();
  });

  /** Publishes a raw body to the server's topic queue. */
  const raw = (body: Buffer): Promise<void> =>
    m.transport.publish('nova', topic, body, { deadline: Date.now() + 5000 });
  /** Publishes a call-shaped message and waits for its reply. */
  async function rawCall(message: Record<string, unknown>, body?: Buffer): Promise<unknown> {
    const msgId = hex();
    const w = m.replies.wait(msgId);
    const msg = { ...message, _msg_id: msgId, _reply_q: m.replies.queue, _unique_id: hex() };
    await raw(body ?? encodeEnvelope(msg));
    try {
      return await Promise.race([
        w.promise,
        new Promise((_, rej) => setTimeout(() => rej(new Error('no reply')), 5000)),
      ]);
    } finally {
      w.cancel();
    }
  }

  it('drops non-JSON, non-object and wrong-envelope bodies and keeps serving', async () => {
    await raw(Buffer.from('this is not json'));
    await raw(Buffer.from('[1,2,3]'));
    await raw(Buffer.from(JSON.stringify({ 'oslo.version': '2.1', 'oslo.message': '{}' })));
    await raw(Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': '{not json' })));
    assert.deepEqual(await m.client(topic).call(adminContext(), 'echo', { still: 'alive' }, { version: '6.0' }), {
      still: 'alive',
    });
  });

  it('answers a call without a method, or with bad args, with a failure', async () => {
    await assert.rejects(rawCall({ args: {} }), (err) => {
      assert.ok(err instanceof RemoteError);
      assert.match(err.value, /no method/);
      return true;
    });
    await assert.rejects(rawCall({ method: 'echo', version: '6.0', args: [1] }), (err) => {
      assert.ok(err instanceof RemoteError);
      assert.match(err.value, /args is not an object/);
      return true;
    });
  });

  it('refuses a message over max_message_bytes with a failure naming the cap', async () => {
    const big = { method: 'echo', version: '6.0', args: { blob: 'x'.repeat(100 * 1024) } };
    await assert.rejects(rawCall(big), (err) => {
      assert.ok(err instanceof RemoteError);
      assert.match(err.value, /exceeds max_message_bytes \(65536\)/);
      return true;
    });
    assert.equal(seen.length, 0, 'the handler never ran');
  });

  it('drops a message whose _unique_id it has just seen', async () => {
    const body = encodeEnvelope({ method: 'echo', version: '6.0', args: { n: 1 }, _unique_id: hex() });
    await raw(body);
    await raw(body);
    // a call after both: once it is answered, both casts were consumed (one queue, in order)
    await m.client(topic).call(adminContext(), 'echo', { n: 'sentinel' }, { version: '6.0' });
    assert.deepEqual(seen, [{ n: 1 }, { n: 'sentinel' }]);
  });

  it('stop() finishes handlers in flight: their replies still go out', async () => {
    const client = await startMessaging();
    try {
      const pending = client.client(topic).call(adminContext(), 'slow', { ms: 800 }, { version: '6.0' });
      await pollUntil(() => (m.transport.connected ? true : undefined), { timeoutMs: 1000 });
      // wait until the server has taken the message, then shut it down
      await new Promise((r) => setTimeout(r, 200));
      await m.close(5000);
      assert.equal(await pending, 'done');
    } finally {
      await client.close();
      m = await startMessaging(); // for afterEach's cleanup
    }
  });
});

describe('rpc: graceful stop with a second topic (2026.1 compute-alt)', function () {
  this.timeout(30_000);

  it('close() stops the main topic first: an operation in flight still gets its next step on the alt topic', async () => {
    const topic = uniqueTopic();
    const alt = `${topic}-alt`;
    const m = await startMessaging();
    const client = await startMessaging();
    let started!: () => void;
    const inFlight = new Promise<void>((r) => (started = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const methods = {
      // a resize step: works, then casts (here: calls) its next step to this host's compute-alt
      step1: async (): Promise<unknown> => {
        started();
        await gate;
        return await m.client(alt).call(adminContext(), 'step2', {}, { server: 'h1', version: '6.0', timeoutS: 3 });
      },
      step2: (): string => 'next step done',
    };
    const endpoint: Endpoint = { namespace: null, version: '6.1', methods };
    try {
      await m.server(topic, 'h1', [endpoint]);
      await m.server(alt, 'h1', [endpoint]);
      await m.replies.ensureStarted();
      const pending = client.client(topic).call(adminContext(), 'step1', {}, { server: 'h1', version: '6.0' });
      await inFlight;
      const closing = m.close(10_000, [alt]);
      release();
      assert.equal(await pending, 'next step done');
      await closing;
    } finally {
      for (const q of [topic, `${topic}.h1`, alt, `${alt}.h1`])
        await client.transport.deleteQueue(q).catch(() => undefined);
      await client.close();
      await m.close(0);
    }
  });
});

describe('rpc: broker restart in the middle of a stream of calls', function () {
  this.timeout(180_000);

  it('reconnects; every call is answered once or fails cleanly; service resumes', async () => {
    const topic = uniqueTopic();
    const handled = new Map<number, number>();
    const server = await startMessaging();
    await server.server(topic, 'h1', [
      {
        namespace: null,
        version: '6.1',
        methods: {
          echo: (_ctx, args) => {
            const i = Number(args.i);
            handled.set(i, (handled.get(i) ?? 0) + 1);
            return args;
          },
        },
      },
    ]);
    const client = await startMessaging();
    const outcomes: Array<'ok' | 'timeout' | 'transport'> = [];
    let restart: Promise<void> | undefined;
    let okAfterRestart = 0;
    let restarted = false;
    try {
      for (let i = 0; okAfterRestart < 10; i++) {
        assert.ok(i < 2000, `service did not resume: ${JSON.stringify(outcomes.slice(-20))}`);
        if (i === 5) {
          restart = (async () => {
            await rabbitmqctl('stop_app');
            await rabbitmqctl('start_app');
            restarted = true;
          })();
        }
        try {
          const r = await client.client(topic).call(adminContext(), 'echo', { i }, { version: '6.0', timeoutS: 3 });
          assert.deepEqual(r, { i }, 'a reply belongs to its own call');
          outcomes.push('ok');
          if (restarted) okAfterRestart++;
        } catch (err) {
          if (err instanceof RpcTimeoutError) outcomes.push('timeout');
          else if (err instanceof TransportError) outcomes.push('transport');
          else throw err;
        }
      }
      await restart;
      for (const [i, n] of handled) assert.equal(n, 1, `call ${i} handled ${n} times`);
      assert.ok(outcomes.includes('ok'));
      // Python's oslo.messaging reaches our re-declared queues too
      const py = await osloCall(topic, 'echo', { after: 'restart' }, ['--server', 'h1', '--version', '6.0']);
      assert.equal(py.code, 0, py.out);
      assert.deepEqual(JSON.parse(py.out), { after: 'restart' });
    } finally {
      await restart?.catch(() => undefined);
      await server.transport.deleteQueue(topic).catch(() => undefined);
      await server.transport.deleteQueue(`${topic}.h1`).catch(() => undefined);
      await client.close();
      await server.close();
    }
  });
});
