/**
 * The AMQP connection: the only module that imports amqplib.
 *
 * One connection, two channels: a confirm channel for publishing (oslo sets
 * confirm_publish) and a plain channel for consumers. When the connection
 * drops, it reconnects to the next host of the transport URL with oslo's
 * backoff (rabbit_retry_interval + rabbit_retry_backoff × attempt, capped at
 * rabbit_interval_max) and re-runs every registered consumer's setup, so
 * queues, bindings and consumers come back. Publishing while disconnected
 * waits for the reconnect until the caller's deadline.
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import amqp from 'amqplib';
import type { Logger } from '../common/log.js';
import { errorMessage } from '../common/errors.js';
import { TransportError } from './errors.js';

export interface BrokerHost {
  host: string;
  port: number;
  username: string;
  password: string;
}

export interface TlsOptions {
  caFile?: string | undefined;
  certFile?: string | undefined;
  keyFile?: string | undefined;
}

export interface TransportOptions {
  hosts: readonly BrokerHost[];
  virtualHost: string;
  /** undefined = plain AMQP */
  tls?: TlsOptions | undefined;
  /** AMQP heartbeat requested, seconds (heartbeat_timeout_threshold). 0 disables. */
  heartbeatS: number;
  retryIntervalS: number;
  retryBackoffS: number;
  retryMaxS: number;
  connectionName: string;
  /** rabbit_qos_prefetch_count: 0 = no basic.qos, as oslo */
  prefetchCount?: number | undefined;
  logger: Logger;
}

/** Queue and exchange arguments, oslo's flags (protocol ref §1.2–1.3). */
export interface ExchangeSpec {
  name: string;
  type: 'topic' | 'fanout' | 'direct';
  durable: boolean;
  autoDelete: boolean;
}

export interface QueueSpec {
  name: string;
  durable: boolean;
  autoDelete: boolean;
  arguments: Record<string, unknown>;
}

export interface Delivery {
  content: Buffer;
  contentType: string | undefined;
  routingKey: string;
}

export interface ConsumerSpec {
  queue: QueueSpec;
  /** Bindings of the queue; the default exchange needs none. */
  bindings: ReadonlyArray<{ exchange: ExchangeSpec; routingKey: string }>;
  /** Called after the message was acked (oslo acks on receipt). Must not throw. */
  onMessage: (delivery: Delivery) => void;
}

export interface PublishOptions {
  /** ms; the message expires in the queue after it (oslo: calls only). */
  expirationMs?: number | undefined;
  mandatory?: boolean;
  /** Declare this exchange (once per connection) before publishing. */
  declare?: ExchangeSpec | undefined;
  /** Give up waiting for a connection at this time (epoch ms). */
  deadline: number;
}

interface ActiveConsumer {
  spec: ConsumerSpec;
  tag: string | undefined;
}

type State = 'idle' | 'connecting' | 'connected' | 'closing' | 'closed';

/**
 * What the RPC server and client need of the broker: consume a queue (again
 * after every reconnect), delete one, publish with a confirm. AmqpTransport
 * is the one over amqplib; the unit tests' FakeTransport implements the same
 * interface.
 */
export interface Transport {
  /** Declares, binds and consumes a queue now and after every reconnect; resolves to its cancel. */
  addConsumer(spec: ConsumerSpec): Promise<() => Promise<void>>;
  /** Deletes a queue; no-op when not connected. */
  deleteQueue(name: string): Promise<void>;
  /** Publishes and waits for the broker's confirm (TransportError past the deadline or on a nack). */
  publish(exchange: string, routingKey: string, body: Buffer, opts: PublishOptions): Promise<void>;
}

export class AmqpTransport extends EventEmitter implements Transport {
  private state: State = 'idle';
  private conn: amqp.ChannelModel | undefined;
  private pubChannel: amqp.ConfirmChannel | undefined;
  private subChannel: amqp.Channel | undefined;
  private readonly consumers = new Set<ActiveConsumer>();
  private declared = new Set<string>();
  private hostIndex = 0;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly waiters = new Set<() => void>();
  /** Increases with every connection, so late events of an old one are ignored. */
  private generation = 0;

  constructor(private readonly opts: TransportOptions) {
    super();
    if (opts.hosts.length === 0) throw new TransportError('no broker host configured');
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  /** Connects, retrying forever with backoff; resolves at the first connection. */
  async start(): Promise<void> {
    if (this.state === 'idle') void this.connectLoop();
    await this.waitConnected(Number.POSITIVE_INFINITY);
  }

  /** Resolves when connected; rejects with TransportError at `deadline` (epoch ms) or on close. */
  waitConnected(deadline: number): Promise<void> {
    if (this.state === 'connected') return Promise.resolve();
    if (this.state === 'closing' || this.state === 'closed') {
      return Promise.reject(new TransportError('transport is closed'));
    }
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        this.waiters.delete(done);
        if (timer) clearTimeout(timer);
        if (this.state === 'connected') resolve();
        else reject(new TransportError('transport closed while waiting for the broker'));
      };
      this.waiters.add(done);
      if (Number.isFinite(deadline)) {
        timer = setTimeout(
          () => {
            this.waiters.delete(done);
            reject(new TransportError('no connection to the message broker'));
          },
          Math.max(0, deadline - Date.now()),
        );
      }
    });
  }

  private wakeWaiters(): void {
    for (const w of [...this.waiters]) w();
  }

  private backoffMs(): number {
    const { retryIntervalS, retryBackoffS, retryMaxS } = this.opts;
    return Math.min(retryIntervalS + retryBackoffS * Math.max(0, this.attempt - 1), retryMaxS) * 1000;
  }

  private async connectLoop(): Promise<void> {
    this.state = 'connecting';
    for (;;) {
      const host = this.opts.hosts[this.hostIndex % this.opts.hosts.length]!;
      const where = `${host.host}:${host.port}`;
      try {
        await this.connectTo(host);
        this.attempt = 0;
        this.opts.logger.info(`Connected to AMQP server on ${where}`, { logger: 'nova_docker.rpc' });
        this.state = 'connected';
        this.emit('connected');
        this.wakeWaiters();
        return;
      } catch (err) {
        await this.dropConnection();
        if (this.isClosing()) return;
        this.attempt++;
        this.hostIndex++;
        const delay = this.backoffMs();
        // one-shot tools (nova-docker status) give up once every host has refused
        this.emit('connect_failed', err, this.attempt);
        this.opts.logger.error(
          `AMQP server on ${where} is unreachable: ${errorMessage(err)}. Trying again in ${delay / 1000} seconds.`,
          { logger: 'nova_docker.rpc' },
        );
        await new Promise<void>((resolve) => {
          this.reconnectTimer = setTimeout(resolve, delay);
        });
        this.reconnectTimer = undefined;
        if (this.isClosing()) return;
      }
    }
  }

  private isClosing(): boolean {
    return this.state === 'closing' || this.state === 'closed';
  }

  private async connectTo(host: BrokerHost): Promise<void> {
    const tls = this.opts.tls;
    const socketOptions: Record<string, unknown> = {
      clientProperties: { connection_name: this.opts.connectionName, product: 'nova-docker' },
      timeout: 10_000,
      // small request/reply frames: without this, Nagle + delayed ACK add ~40 ms per hop
      noDelay: true,
    };
    if (tls) {
      if (tls.caFile) socketOptions.ca = [readFileSync(tls.caFile)];
      if (tls.certFile) socketOptions.cert = readFileSync(tls.certFile);
      if (tls.keyFile) socketOptions.key = readFileSync(tls.keyFile);
    }
    const conn = await amqp.connect(
      {
        protocol: tls ? 'amqps' : 'amqp',
        hostname: host.host,
        port: host.port,
        username: host.username,
        password: host.password,
        vhost: this.opts.virtualHost,
        heartbeat: this.opts.heartbeatS,
      },
      socketOptions,
    );
    const gen = ++this.generation;
    this.conn = conn;
    this.declared = new Set();
    conn.on('error', (err: Error) => {
      this.opts.logger.warn(`AMQP connection error: ${err.message}`, { logger: 'nova_docker.rpc' });
    });
    conn.on('close', () => this.onConnectionLost(gen, 'connection closed'));
    conn.on('blocked', (reason: string) =>
      this.opts.logger.warn(`AMQP connection blocked by the broker: ${reason}`, { logger: 'nova_docker.rpc' }),
    );
    this.pubChannel = await conn.createConfirmChannel();
    this.subChannel = await conn.createChannel();
    if (this.opts.prefetchCount) await this.subChannel.prefetch(this.opts.prefetchCount);
    for (const ch of [this.pubChannel, this.subChannel]) {
      // A channel error (e.g. 406 on a redeclare) closes the channel: start over on a fresh connection.
      ch.on('error', (err: Error) =>
        this.opts.logger.error(`AMQP channel error: ${err.message}`, { logger: 'nova_docker.rpc' }),
      );
      ch.on('close', () => this.onConnectionLost(gen, 'channel closed'));
    }
    this.pubChannel.on('return', (msg: amqp.Message) =>
      this.opts.logger.warn(`reply to ${msg.fields.routingKey} was returned: the caller's reply queue is gone`, {
        logger: 'nova_docker.rpc',
      }),
    );
    for (const c of this.consumers) await this.setupConsumer(c);
  }

  private onConnectionLost(gen: number, why: string): void {
    if (gen !== this.generation || this.state !== 'connected') return;
    this.opts.logger.error(`AMQP ${why}; reconnecting`, { logger: 'nova_docker.rpc' });
    this.state = 'connecting';
    this.emit('disconnected');
    void this.dropConnection().then(() => {
      if (!this.isClosing()) {
        this.hostIndex++;
        void this.connectLoop();
      }
    });
  }

  private async dropConnection(): Promise<void> {
    this.generation++;
    const conn = this.conn;
    this.conn = undefined;
    this.pubChannel = undefined;
    this.subChannel = undefined;
    for (const c of this.consumers) c.tag = undefined;
    if (!conn) return;
    // close() of a connection the broker is already tearing down may never settle: bound it
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      conn.close().catch(() => undefined),
      new Promise((r) => {
        timer = setTimeout(r, 1000);
      }),
    ]);
    clearTimeout(timer);
  }

  private async declareExchange(ch: amqp.Channel, ex: ExchangeSpec): Promise<void> {
    if (ex.name === '' || this.declared.has(ex.name)) return;
    await ch.assertExchange(ex.name, ex.type, { durable: ex.durable, autoDelete: ex.autoDelete });
    this.declared.add(ex.name);
  }

  private async setupConsumer(c: ActiveConsumer): Promise<void> {
    const ch = this.subChannel;
    if (!ch) throw new TransportError('not connected');
    const q = c.spec.queue;
    await ch.assertQueue(q.name, {
      durable: q.durable,
      autoDelete: q.autoDelete,
      exclusive: false,
      arguments: q.arguments,
    });
    for (const b of c.spec.bindings) {
      await this.declareExchange(ch, b.exchange);
      await ch.bindQueue(q.name, b.exchange.name, b.routingKey);
    }
    const ok = await ch.consume(
      q.name,
      (msg) => {
        if (!msg) return; // consumer cancelled by the broker (queue deleted): the reconnect path re-declares
        // oslo acks on receipt, before dispatch (at-most-once, amqpdriver.py:401-426)
        ch.ack(msg);
        c.spec.onMessage({
          content: msg.content,
          contentType: msg.properties.contentType as string | undefined,
          routingKey: msg.fields.routingKey,
        });
      },
      { noAck: false },
    );
    c.tag = ok.consumerTag;
  }

  /** Declares, binds and consumes a queue now and after every reconnect. */
  async addConsumer(spec: ConsumerSpec): Promise<() => Promise<void>> {
    const c: ActiveConsumer = { spec, tag: undefined };
    this.consumers.add(c);
    if (this.state === 'connected') {
      try {
        await this.setupConsumer(c);
      } catch (err) {
        this.consumers.delete(c);
        throw new TransportError(`cannot consume from ${spec.queue.name}: ${errorMessage(err)}`, { cause: err });
      }
    }
    return async () => {
      this.consumers.delete(c);
      if (c.tag && this.subChannel) await this.subChannel.cancel(c.tag).catch(() => undefined);
      c.tag = undefined;
    };
  }

  /** Deletes a queue (tests and cleanup); no-op when not connected. */
  async deleteQueue(name: string): Promise<void> {
    if (this.subChannel) await this.subChannel.deleteQueue(name).catch(() => undefined);
  }

  /**
   * Publishes with oslo's properties and waits for the broker's confirm.
   * Throws TransportError if no connection comes before the deadline or the
   * broker nacks.
   */
  async publish(exchange: string, routingKey: string, body: Buffer, opts: PublishOptions): Promise<void> {
    for (;;) {
      await this.waitConnected(opts.deadline);
      const ch = this.pubChannel;
      if (!ch) continue;
      try {
        if (opts.declare) await this.declareExchange(ch, opts.declare);
        await new Promise<void>((resolve, reject) => {
          ch.publish(
            exchange,
            routingKey,
            body,
            {
              contentType: 'application/json',
              contentEncoding: 'utf-8',
              deliveryMode: 2,
              priority: 0,
              headers: {},
              mandatory: opts.mandatory ?? false,
              ...(opts.expirationMs === undefined ? {} : { expiration: String(Math.round(opts.expirationMs)) }),
            },
            (err: unknown) => (err ? reject(new TransportError('broker did not confirm the publish')) : resolve()),
          );
        });
        return;
      } catch (err) {
        // The channel died under us: wait for the reconnect, then try again until the deadline.
        if (this.isClosing() || Date.now() >= opts.deadline) {
          throw err instanceof TransportError ? err : new TransportError(errorMessage(err), { cause: err });
        }
        if (this.state === 'connected' && ch === this.pubChannel) {
          throw err instanceof TransportError ? err : new TransportError(errorMessage(err), { cause: err });
        }
      }
    }
  }

  /** Stops reconnecting, cancels consumers and closes the connection. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closing';
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.wakeWaiters();
    this.consumers.clear();
    await this.dropConnection();
    this.state = 'closed';
  }
}
