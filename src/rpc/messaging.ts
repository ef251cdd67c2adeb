/**
 * One messaging stack per process: a transport, its reply listener, and the
 * clients and servers built on them.
 */
import type { Logger } from '../common/log.js';
import { RpcClient, ReplyListener } from './client.js';
import type { Endpoint } from './dispatcher.js';
import type { QueueFlags } from './flags.js';
import { RpcServer, type RpcObserver } from './server.js';
import { AmqpTransport, type TransportOptions } from './transport.js';

export interface MessagingOptions extends TransportOptions {
  /** control_exchange: `nova` for Nova */
  exchange: string;
  flags: QueueFlags;
  /** rpc_response_timeout, seconds */
  rpcResponseTimeoutS: number;
  /** Bodies above this are refused (failure reply for calls). */
  maxMessageBytes: number;
  /** Told about every message the servers handle (metrics). */
  rpcObserver?: RpcObserver | undefined;
}

export class Messaging {
  readonly transport: AmqpTransport;
  readonly replies: ReplyListener;
  private readonly servers: RpcServer[] = [];

  constructor(private readonly opts: MessagingOptions) {
    this.transport = new AmqpTransport(opts);
    this.replies = new ReplyListener(this.transport, opts.flags, opts.logger);
  }

  get logger(): Logger {
    return this.opts.logger;
  }

  start(): Promise<void> {
    return this.transport.start();
  }

  client(topic: string): RpcClient {
    return new RpcClient(this.transport, this.replies, {
      exchange: this.opts.exchange,
      topic,
      flags: this.opts.flags,
      defaultTimeoutS: this.opts.rpcResponseTimeoutS,
      logger: this.opts.logger,
    });
  }

  async server(topic: string, server: string, endpoints: readonly Endpoint[]): Promise<RpcServer> {
    const s = new RpcServer(this.transport, {
      exchange: this.opts.exchange,
      topic,
      server,
      endpoints,
      flags: this.opts.flags,
      maxMessageBytes: this.opts.maxMessageBytes,
      logger: this.opts.logger,
      replyTimeoutMs: this.opts.rpcResponseTimeoutS * 1000,
      observer: this.opts.rpcObserver,
    });
    await s.start();
    this.servers.push(s);
    return s;
  }

  /**
   * Graceful shutdown: servers stop consuming and drain (bounded by
   * `drainMs` in all), then the connection closes. Servers of `lastTopics`
   * stop only after the others drained: Nova 2026.1 stops `compute` first
   * and keeps `compute-alt` so the operations in flight can still receive
   * their next steps (nova/service.py stop()).
   */
  async close(drainMs = 30_000, lastTopics: readonly string[] = []): Promise<void> {
    const deadline = Date.now() + drainMs;
    const servers = this.servers.splice(0);
    const last = servers.filter((s) => lastTopics.includes(s.topic));
    await Promise.all(servers.filter((s) => !last.includes(s)).map((s) => s.stop(drainMs)));
    await Promise.all(last.map((s) => s.stop(Math.max(0, deadline - Date.now()))));
    await this.replies.stop().catch(() => undefined);
    await this.transport.close();
  }
}
