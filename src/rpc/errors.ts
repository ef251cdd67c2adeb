/** Errors of the messaging layer (see nova-compute-protocol.md §1.8–1.9). */
import { AgentError, NovaError } from '../common/errors.js';

export class RpcError extends AgentError {}

/** The broker connection is gone or a channel closed; retryable. */
export class TransportError extends RpcError {}

/** No reply before the deadline (oslo's MessagingTimeout). */
export class RpcTimeoutError extends RpcError {
  constructor(
    readonly msgId: string,
    readonly timeoutS: number,
  ) {
    super(`Timed out waiting for a reply to message ID ${msgId} (after ${timeoutS} s)`);
  }
}

/** The peer answered with a failure: the remote class, module and message. */
export class RemoteError extends RpcError {
  constructor(
    readonly excType: string,
    readonly excModule: string,
    readonly value: string,
    readonly remoteKwargs: Record<string, unknown> = {},
    readonly traceback: string[] = [],
  ) {
    super(`Remote error: ${excType} ${value}`);
  }
}

/** A message we cannot decode (not JSON, wrong envelope, missing keys, too big). */
export class MalformedMessageError extends RpcError {}

const DISPATCHER = 'oslo_messaging.rpc.dispatcher';

/** oslo_messaging.rpc.dispatcher.NoSuchMethod, with oslo's exact message. */
export class NoSuchMethodError extends NovaError {
  constructor(method: string) {
    super('NoSuchMethod', `Endpoint does not support RPC method ${method}`, {}, { novaModule: DISPATCHER });
  }
}

/** oslo_messaging.rpc.dispatcher.UnsupportedVersion, with oslo's exact message. */
export class UnsupportedVersionError extends NovaError {
  constructor(version: string, method?: string) {
    const msg = `Endpoint does not support RPC version ${version}`;
    super('UnsupportedVersion', method ? `${msg}. Attempted method: ${method}` : msg, {}, { novaModule: DISPATCHER });
  }
}

/** oslo_messaging._drivers.common.UnsupportedRpcEnvelopeVersion */
export class UnsupportedEnvelopeVersionError extends NovaError {
  constructor(version: string) {
    super(
      'UnsupportedRpcEnvelopeVersion',
      `Specified RPC envelope version, ${version}, not supported by this endpoint.`,
      {},
      { novaModule: 'oslo_messaging.exceptions' },
    );
  }
}
