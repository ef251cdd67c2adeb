/**
 * RPC server: consumes `<topic>`, `<topic>.<server>` and a per-process
 * `<topic>_fanout_<uuid>` queue, dispatches, and replies to calls on the
 * caller's reply queue. One bad message is logged and, for calls, answered
 * with a failure; it never stops the server.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { errorMessage, NovaError } from '../common/errors.js';
import { contextFromMessage, contextLogFields, type RequestContext } from './context.js';
import { Dispatcher, dispatchTarget, type Endpoint } from './dispatcher.js';
import { decodeEnvelope, encodeEnvelope, type OsloMessage } from './envelope.js';
import { MalformedMessageError } from './errors.js';
import { serializeFailure } from './failure.js';
import { fanoutExchange, topicExchange, topicQueue, transientQueue, type QueueFlags } from './flags.js';
import type { Delivery, Transport } from './transport.js';

/**
 * What the server reports as it works (metrics); implementations must not
 * throw. `method` is the message's method when an endpoint serves it, else
 * `other`, so a stray message cannot invent label values.
 */
export interface RpcObserver {
  received(kind: 'call' | 'cast', method: string): void;
  /** A handler (or dispatch) failed; `exception` is the Nova exception class or the error's name. */
  failed(kind: 'call' | 'cast', method: string, exception: string): void;
  /** A final reply went out (not the call-monitor heartbeats). */
  replied(outcome: 'result' | 'failure'): void;
}

/** The class name an error has on the wire (a Nova exception) or in JS. */
export function exceptionName(err: unknown): string {
  if (err instanceof NovaError) return err.novaClass;
  if (err instanceof Error) return err.name;
  return typeof err;
}

export interface RpcServerOptions {
  exchange: string;
  topic: string;
  /** The host name: queue `<topic>.<server>`. */
  server: string;
  endpoints: readonly Endpoint[];
  flags: QueueFlags;
  /** Bodies larger than this are refused with a failure reply. */
  maxMessageBytes: number;
  logger: Logger;
  /** How long a reply may wait for the broker to come back, ms. */
  replyTimeoutMs?: number;
  observer?: RpcObserver | undefined;
}

const LOGGER = 'nova_docker.rpc.server';
/** oslo keeps the last 16 `_unique_id`s to drop duplicates (om/_drivers/amqp.py). */
const DUP_CACHE_SIZE = 16;

export class RpcServer {
  private readonly dispatcher: Dispatcher;
  private readonly cancels: Array<() => Promise<void>> = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly seenIds: string[] = [];
  private stopping = false;
  readonly fanoutQueue: string;

  constructor(
    private readonly transport: Transport,
    private readonly opts: RpcServerOptions,
  ) {
    this.dispatcher = new Dispatcher(opts.endpoints);
    this.fanoutQueue = `${opts.topic}_fanout_${randomUUID().replace(/-/g, '')}`;
  }

  get topic(): string {
    return this.opts.topic;
  }

  get inFlightCount(): number {
    return this.inFlight.size;
  }

  async start(): Promise<void> {
    const { exchange, topic, server, flags } = this.opts;
    const ex = topicExchange(exchange, flags);
    const onMessage = (d: Delivery): void => this.onDelivery(d);
    for (const key of [topic, `${topic}.${server}`]) {
      this.cancels.push(
        await this.transport.addConsumer({
          queue: topicQueue(key, flags),
          bindings: [{ exchange: ex, routingKey: key }],
          onMessage,
        }),
      );
    }
    this.cancels.push(
      await this.transport.addConsumer({
        queue: transientQueue(this.fanoutQueue, flags),
        bindings: [{ exchange: fanoutExchange(topic), routingKey: topic }],
        onMessage,
      }),
    );
    this.opts.logger.info(`RPC server consuming ${topic}, ${topic}.${server} and ${this.fanoutQueue}`, {
      logger: LOGGER,
    });
  }

  /**
   * Graceful stop: no new messages, then wait up to `drainMs` for handlers in
   * flight (their replies still go out), then return.
   */
  async stop(drainMs = 30_000): Promise<boolean> {
    this.stopping = true;
    await Promise.all(this.cancels.splice(0).map((c) => c()));
    await this.transport.deleteQueue(this.fanoutQueue);
    if (this.inFlight.size === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      Promise.allSettled([...this.inFlight]).then(() => true),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(false), drainMs);
      }),
    ]);
    clearTimeout(timer);
    if (!drained) {
      this.opts.logger.warn(`stopped with ${this.inFlight.size} RPC handler(s) still running`, { logger: LOGGER });
    }
    return drained;
  }

  private isDuplicate(uniqueId: unknown): boolean {
    if (typeof uniqueId !== 'string') return false;
    if (this.seenIds.includes(uniqueId)) return true;
    this.seenIds.push(uniqueId);
    if (this.seenIds.length > DUP_CACHE_SIZE) this.seenIds.shift();
    return false;
  }

  private onDelivery(d: Delivery): void {
    if (this.stopping) return;
    const p = this.handle(d).catch((err: unknown) => {
      this.opts.logger.error(`unexpected error handling an RPC message: ${errorMessage(err)}`, { logger: LOGGER });
    });
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private async handle(d: Delivery): Promise<void> {
    let message: OsloMessage;
    try {
      message = decodeEnvelope(d.content);
    } catch (err) {
      this.opts.logger.error(`dropping undecodable message on ${d.routingKey}: ${errorMessage(err)}`, {
        logger: LOGGER,
      });
      return;
    }
    const msgId = typeof message._msg_id === 'string' ? message._msg_id : undefined;
    const replyQ = typeof message._reply_q === 'string' ? message._reply_q : undefined;
    const method = typeof message.method === 'string' ? message.method : '?';
    const ctx = contextFromMessage(message);
    const log = { logger: LOGGER, ...contextLogFields(ctx) };

    if (this.isDuplicate(message._unique_id)) {
      this.opts.logger.warn(`dropping duplicate message ${String(message._unique_id)} (${method})`, log);
      return;
    }
    const reply = msgId && replyQ ? { msgId, replyQ } : undefined;
    const kind = reply ? 'call' : 'cast';
    const known = this.dispatcher.serves(method) ? method : 'other';
    this.opts.observer?.received(kind, known);
    if (d.content.length > this.opts.maxMessageBytes) {
      const err = new MalformedMessageError(
        `message of ${d.content.length} bytes exceeds max_message_bytes (${this.opts.maxMessageBytes})`,
      );
      this.opts.logger.error(`refusing ${method}: ${err.message}`, log);
      this.opts.observer?.failed(kind, known, exceptionName(err));
      if (reply) await this.sendReply(reply, { failure: err });
      return;
    }
    if (d.contentType !== undefined && d.contentType !== 'application/json') {
      this.opts.logger.warn(`message ${method} has content type ${d.contentType}; decoding as JSON`, log);
    }
    const heartbeat = reply ? this.startCallMonitor(reply, message._timeout) : undefined;
    try {
      const target = dispatchTarget(message);
      this.opts.logger.debug(`dispatching ${target.method} (version ${target.version})`, log);
      const result = await this.dispatcher.dispatch(ctx, target);
      if (reply) await this.sendReply(reply, { result });
    } catch (err) {
      this.logFailure(ctx, method, err, reply !== undefined);
      this.opts.observer?.failed(kind, known, exceptionName(err));
      if (reply) await this.sendReply(reply, { failure: err });
    } finally {
      if (heartbeat) clearInterval(heartbeat);
    }
  }

  private logFailure(ctx: RequestContext, method: string, err: unknown, isCall: boolean): void {
    const log = { logger: LOGGER, ...contextLogFields(ctx) };
    // Expected errors (Nova exceptions for the caller) are not agent faults.
    const level = err instanceof NovaError ? 'warn' : 'error';
    const what = isCall ? 'call' : 'cast';
    this.opts.logger.log(level, `${what} ${method} failed: ${errorMessage(err)}`, {
      ...log,
      ...(level === 'error' && err instanceof Error ? { stack: err.stack } : {}),
    });
  }

  /**
   * Call-monitor heartbeats (om/rpc/dispatcher.py _watchdog): when the caller
   * sent an integral `_timeout` ≥ 2, an `ending: false` reply every timeout/2 s
   * keeps its monitor from firing while we work.
   */
  private startCallMonitor(reply: { msgId: string; replyQ: string }, timeout: unknown): NodeJS.Timeout | undefined {
    const t = typeof timeout === 'number' ? Math.trunc(timeout) : Number.NaN;
    const interval = t / 2;
    if (!(interval >= 1)) return undefined;
    return setInterval(() => {
      void this.sendReply(reply, { heartbeat: true }).catch(() => undefined);
    }, interval * 1000);
  }

  private async sendReply(
    reply: { msgId: string; replyQ: string },
    what: { result?: unknown; failure?: unknown; heartbeat?: boolean },
  ): Promise<void> {
    const body: OsloMessage = {
      result: what.heartbeat || what.failure !== undefined ? null : (what.result ?? null),
      failure: what.failure === undefined ? null : serializeFailure(what.failure),
      ending: !what.heartbeat,
      _msg_id: reply.msgId,
      _unique_id: randomUUID().replace(/-/g, ''),
    };
    let encoded: Buffer;
    try {
      encoded = encodeEnvelope(body);
    } catch (err) {
      // a result JSON cannot carry (a cycle, a BigInt): the caller gets a failure, not silence
      encoded = encodeEnvelope({ ...body, result: null, failure: serializeFailure(err), ending: true });
    }
    try {
      await this.transport.publish('', reply.replyQ, encoded, {
        mandatory: true,
        deadline: Date.now() + (this.opts.replyTimeoutMs ?? 60_000),
      });
      if (!what.heartbeat) this.opts.observer?.replied(what.failure === undefined ? 'result' : 'failure');
    } catch (err) {
      this.opts.logger.error(`could not send the reply to ${reply.replyQ}: ${errorMessage(err)}`, {
        logger: LOGGER,
      });
    }
  }
}
