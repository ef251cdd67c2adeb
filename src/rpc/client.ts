/**
 * RPC client: `call` waits for the reply on this process's `reply_<uuid>`
 * queue (correlated by `_msg_id`), `cast` and fanout casts do not. Calls set
 * `expiration` to their timeout as oslo does, so a request nobody took in
 * time is dropped by the broker instead of being served late.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { errorMessage } from '../common/errors.js';
import { contextToMessageFields, type RequestContext } from './context.js';
import { decodeEnvelope, encodeEnvelope, type OsloMessage } from './envelope.js';
import { RpcTimeoutError } from './errors.js';
import { deserializeFailure } from './failure.js';
import { fanoutExchange, topicExchange, transientQueue, type QueueFlags } from './flags.js';
import type { Transport } from './transport.js';

const LOGGER = 'nova_docker.rpc.client';

function hexId(): string {
  return randomUUID().replace(/-/g, '');
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** The per-process reply queue shared by every client of a transport. */
export class ReplyListener {
  readonly queue = `reply_${hexId()}`;
  private readonly pending = new Map<string, Pending>();
  private cancel: (() => Promise<void>) | undefined;
  private starting: Promise<void> | undefined;

  constructor(
    private readonly transport: Transport,
    private readonly flags: QueueFlags,
    private readonly logger: Logger,
  ) {}

  /** Declares and consumes the reply queue once (and after each reconnect, via the transport). */
  ensureStarted(): Promise<void> {
    this.starting ??= this.transport
      .addConsumer({
        queue: transientQueue(this.queue, this.flags),
        bindings: [],
        onMessage: (d) => this.onReply(d.content),
      })
      .then((cancel) => {
        this.cancel = cancel;
      })
      .catch((err: unknown) => {
        this.starting = undefined;
        throw err;
      });
    return this.starting;
  }

  wait(msgId: string): { promise: Promise<unknown>; cancel: () => void } {
    let pending!: Pending;
    const promise = new Promise<unknown>((resolve, reject) => {
      pending = { resolve, reject };
    });
    this.pending.set(msgId, pending);
    return { promise, cancel: () => this.pending.delete(msgId) };
  }

  private onReply(body: Buffer): void {
    let msg: OsloMessage;
    try {
      msg = decodeEnvelope(body);
    } catch (err) {
      this.logger.error(`dropping an undecodable reply: ${errorMessage(err)}`, { logger: LOGGER });
      return;
    }
    const msgId = msg._msg_id;
    const pending = typeof msgId === 'string' ? this.pending.get(msgId) : undefined;
    if (!pending) {
      // late (after our timeout) or duplicate: oslo logs and drops these too
      this.logger.warn(`dropping a reply for unknown message ID ${String(msgId)}`, { logger: LOGGER });
      return;
    }
    // ending:false with no result/failure is a call-monitor heartbeat: keep waiting
    if (msg.ending === false && msg.failure == null && msg.result == null) return;
    this.pending.delete(msgId as string);
    if (msg.failure != null) pending.reject(deserializeFailure(msg.failure));
    else pending.resolve(msg.result ?? null);
  }

  async stop(): Promise<void> {
    await this.cancel?.();
    await this.transport.deleteQueue(this.queue);
  }
}

export interface RpcClientOptions {
  exchange: string;
  topic: string;
  flags: QueueFlags;
  /** rpc_response_timeout, seconds */
  defaultTimeoutS: number;
  logger: Logger;
}

export interface CallOptions {
  /** Sends to `<topic>.<server>` */
  server?: string | undefined;
  version?: string | undefined;
  namespace?: string | undefined;
  timeoutS?: number | undefined;
}

export class RpcClient {
  constructor(
    private readonly transport: Transport,
    private readonly replies: ReplyListener,
    private readonly opts: RpcClientOptions,
  ) {}

  private message(ctx: RequestContext, method: string, args: Record<string, unknown>, o: CallOptions): OsloMessage {
    return {
      method,
      args,
      ...(o.namespace ? { namespace: o.namespace } : {}),
      ...(o.version ? { version: o.version } : {}),
      _unique_id: hexId(),
      ...contextToMessageFields(ctx),
    };
  }

  private routingKey(o: CallOptions): string {
    return o.server ? `${this.opts.topic}.${o.server}` : this.opts.topic;
  }

  /** Sends a request and waits for its reply; throws RemoteError or RpcTimeoutError. */
  async call(
    ctx: RequestContext,
    method: string,
    args: Record<string, unknown>,
    o: CallOptions = {},
  ): Promise<unknown> {
    const timeoutS = o.timeoutS ?? this.opts.defaultTimeoutS;
    const deadline = Date.now() + timeoutS * 1000;
    const msgId = hexId();
    let timer: NodeJS.Timeout | undefined;
    const waiter = this.replies.wait(msgId);
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RpcTimeoutError(msgId, timeoutS)), timeoutS * 1000);
    });
    try {
      await Promise.race([this.replies.ensureStarted(), timeout]);
      const msg = {
        ...this.message(ctx, method, args, o),
        _msg_id: msgId,
        _reply_q: this.replies.queue,
        _timeout: null,
      };
      await Promise.race([
        this.transport.publish(this.opts.exchange, this.routingKey(o), encodeEnvelope(msg), {
          expirationMs: timeoutS * 1000,
          declare: topicExchange(this.opts.exchange, this.opts.flags),
          deadline,
        }),
        timeout,
      ]);
      return await Promise.race([waiter.promise, timeout]);
    } finally {
      clearTimeout(timer);
      waiter.cancel();
    }
  }

  /** Sends a request nobody answers. */
  async cast(ctx: RequestContext, method: string, args: Record<string, unknown>, o: CallOptions = {}): Promise<void> {
    const timeoutS = o.timeoutS ?? this.opts.defaultTimeoutS;
    await this.transport.publish(
      this.opts.exchange,
      this.routingKey(o),
      encodeEnvelope(this.message(ctx, method, args, o)),
      { declare: topicExchange(this.opts.exchange, this.opts.flags), deadline: Date.now() + timeoutS * 1000 },
    );
  }

  /** Casts to every server of the topic through `<topic>_fanout`. */
  async fanoutCast(
    ctx: RequestContext,
    method: string,
    args: Record<string, unknown>,
    o: Omit<CallOptions, 'server'> = {},
  ): Promise<void> {
    const timeoutS = o.timeoutS ?? this.opts.defaultTimeoutS;
    const ex = fanoutExchange(this.opts.topic);
    await this.transport.publish(ex.name, this.opts.topic, encodeEnvelope(this.message(ctx, method, args, o)), {
      declare: ex,
      deadline: Date.now() + timeoutS * 1000,
    });
  }
}
