import type { AmqpTransport, ConsumerSpec } from '../../../src/rpc/transport.js';

/** Just enough of AmqpTransport for an RpcServer: consumers and published replies. */
export class FakeTransport {
  consumers: ConsumerSpec[] = [];
  published: Array<{ routingKey: string; body: Buffer }> = [];
  addConsumer(spec: ConsumerSpec): Promise<() => Promise<void>> {
    this.consumers.push(spec);
    return Promise.resolve(() => Promise.resolve());
  }
  deleteQueue(): Promise<void> {
    return Promise.resolve();
  }
  publish(_exchange: string, routingKey: string, body: Buffer): Promise<void> {
    this.published.push({ routingKey, body });
    return Promise.resolve();
  }
  get asTransport(): AmqpTransport {
    return this as unknown as AmqpTransport;
  }
}
