/**
 * Exchange and queue declarations exactly as oslo.messaging's rabbit driver
 * makes them (protocol ref §1.2–1.3), so our agent and real Nova services can
 * share a broker: a redeclare with other flags fails with 406.
 */
import type { ExchangeSpec, QueueSpec } from './transport.js';

export interface QueueFlags {
  /** amqp_durable_queues (forced on by rabbit_quorum_queue) */
  durable: boolean;
  /** amqp_auto_delete */
  autoDelete: boolean;
  /** rabbit_ha_queues */
  haQueues: boolean;
  /** rabbit_quorum_queue */
  quorum: boolean;
  /** rabbit_transient_queues_ttl, seconds */
  transientQueuesTtlS: number;
}

export const DEFAULT_QUEUE_FLAGS: QueueFlags = {
  durable: false,
  autoDelete: false,
  haQueues: false,
  quorum: false,
  transientQueuesTtlS: 1800,
};

export function topicExchange(name: string, f: QueueFlags): ExchangeSpec {
  return { name, type: 'topic', durable: f.durable || f.quorum, autoDelete: f.autoDelete };
}

export function fanoutExchange(topic: string): ExchangeSpec {
  return { name: `${topic}_fanout`, type: 'fanout', durable: false, autoDelete: true };
}

/** The `compute` / `compute.<host>` queues. */
export function topicQueue(name: string, f: QueueFlags): QueueSpec {
  const args: Record<string, unknown> = {};
  if (f.quorum) args['x-queue-type'] = 'quorum';
  else if (f.haQueues) args['x-ha-policy'] = 'all';
  return { name, durable: f.durable || f.quorum, autoDelete: f.quorum ? false : f.autoDelete, arguments: args };
}

/** Per-process fanout and reply queues: never durable, expire when unused. */
export function transientQueue(name: string, f: QueueFlags): QueueSpec {
  const args: Record<string, unknown> = { 'x-expires': f.transientQueuesTtlS * 1000 };
  if (f.haQueues) args['x-ha-policy'] = 'all';
  return { name, durable: false, autoDelete: false, arguments: args };
}
