import type { ConsumerSpec, Transport } from '../../../src/rpc/transport.js';

/** The broker in memory, for an RpcServer under test: its consumers and the replies it published. */
export class FakeTransport implements Transport {
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
}
