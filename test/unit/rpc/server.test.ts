import assert from 'node:assert/strict';
import { nullLogger } from '../../../src/common/log.js';
import { pollUntil } from '../../../src/common/poll.js';
import { encodeEnvelope } from '../../../src/rpc/envelope.js';
import { RpcServer } from '../../../src/rpc/server.js';
import { FakeTransport } from './fake-transport.js';

describe('rpc/server stop', () => {
  function serverWith(handler: () => Promise<unknown>): { server: RpcServer; transport: FakeTransport } {
    const transport = new FakeTransport();
    const server = new RpcServer(transport, {
      exchange: 'nova',
      topic: 'compute',
      server: 'h',
      endpoints: [{ namespace: null, version: '6.1', methods: { work: handler } }],
      flags: { durable: false, autoDelete: false, haQueues: false, quorum: false, transientQueuesTtlS: 1800 },
      maxMessageBytes: 1 << 20,
      logger: nullLogger(),
    });
    return { server, transport };
  }

  function deliver(transport: FakeTransport, message: Record<string, unknown>): void {
    transport.consumers[0]?.onMessage({
      content: encodeEnvelope({ version: '6.0', args: {}, ...message }),
      contentType: 'application/json',
      routingKey: 'compute.h',
    });
  }

  it('waits for a handler in flight and still sends its reply', async () => {
    const { server, transport } = serverWith(() => new Promise((r) => setTimeout(() => r('done'), 150)));
    await server.start();
    deliver(transport, { method: 'work', _msg_id: 'm1', _reply_q: 'reply_1' });
    await pollUntil(() => (server.inFlightCount === 1 ? true : undefined), { timeoutMs: 1000, intervalMs: 5 });
    assert.equal(await server.stop(5000), true);
    assert.equal(transport.published.length, 1);
    assert.equal(transport.published[0]?.routingKey, 'reply_1');
  });

  it('gives up after the drain bound on a handler that never ends, and takes no new message', async () => {
    let calls = 0;
    const { server, transport } = serverWith(() => {
      calls++;
      return new Promise(() => undefined);
    });
    await server.start();
    deliver(transport, { method: 'work' });
    await pollUntil(() => (server.inFlightCount === 1 ? true : undefined), { timeoutMs: 1000, intervalMs: 5 });
    const t0 = Date.now();
    assert.equal(await server.stop(200), false);
    const took = Date.now() - t0;
    assert.ok(took >= 190 && took < 2000, `stop took ${took} ms`);
    deliver(transport, { method: 'work' });
    await new Promise((r) => setImmediate(r));
    assert.equal(calls, 1, 'nothing is dispatched after stop');
  });
});
