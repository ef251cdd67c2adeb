/**
 * Dispatch by namespace + method with oslo's version rules (protocol ref §1.9,
 * om/rpc/dispatcher.py): the first endpoint of the message's namespace whose
 * version is compatible (same major, our minor ≥ requested) and that has the
 * method handles it; otherwise NoSuchMethod if some endpoint was compatible,
 * else UnsupportedVersion. The method table is the access policy.
 */
import type { RequestContext } from './context.js';
import { MalformedMessageError, NoSuchMethodError, UnsupportedVersionError } from './errors.js';
import type { OsloMessage } from './envelope.js';

export type RpcArgs = Record<string, unknown>;
export type RpcHandler = (ctx: RequestContext, args: RpcArgs) => unknown;

export interface Endpoint {
  /** null = no namespace (the compute manager); 'baseapi' for ping. */
  readonly namespace: string | null;
  /** The highest version served, e.g. "6.1"; serves 6.0 … 6.1. */
  readonly version: string;
  readonly methods: Readonly<Record<string, RpcHandler>>;
}

/** oslo_messaging._utils.version_is_compatible(imp_version, version). */
export function versionIsCompatible(impVersion: string, version: string): boolean {
  const parse = (v: string): number[] => v.split('.').map((p) => Number(p));
  const [iMaj = 0, iMin = 0, iRev = 0] = parse(impVersion);
  const [maj = 0, min = 0, rev = 0] = parse(version);
  if ([iMaj, iMin, iRev, maj, min, rev].some((n) => Number.isNaN(n))) return false;
  if (maj !== iMaj) return false;
  if (min > iMin) return false;
  if (min === iMin && rev > iRev) return false;
  return true;
}

export interface DispatchTarget {
  method: string;
  version: string;
  namespace: string | null;
  args: RpcArgs;
}

/** Reads method/version/namespace/args from a decoded message. */
export function dispatchTarget(message: OsloMessage): DispatchTarget {
  const method = message.method;
  if (typeof method !== 'string' || method === '') throw new MalformedMessageError('message has no method');
  const version = message.version ?? '1.0';
  if (typeof version !== 'string') throw new MalformedMessageError(`method ${method}: version is not a string`);
  const namespace = message.namespace ?? null;
  if (namespace !== null && typeof namespace !== 'string') {
    throw new MalformedMessageError(`method ${method}: namespace is not a string`);
  }
  const args = message.args ?? {};
  if (typeof args !== 'object' || args === null || Array.isArray(args)) {
    throw new MalformedMessageError(`method ${method}: args is not an object`);
  }
  return { method, version, namespace, args: args as RpcArgs };
}

export class Dispatcher {
  constructor(private readonly endpoints: readonly Endpoint[]) {}

  /** Whether some endpoint has a method of this name (any namespace or version). */
  serves(method: string): boolean {
    return !method.startsWith('_') && this.endpoints.some((ep) => Object.hasOwn(ep.methods, method));
  }

  /** Finds the handler, or throws NoSuchMethod / UnsupportedVersion. */
  resolve(target: DispatchTarget): RpcHandler {
    let foundCompatible = false;
    for (const ep of this.endpoints) {
      if (ep.namespace !== target.namespace) continue;
      const compatible = versionIsCompatible(ep.version, target.version);
      const handler = Object.hasOwn(ep.methods, target.method) ? ep.methods[target.method] : undefined;
      if (compatible && handler && !target.method.startsWith('_')) return handler;
      foundCompatible ||= compatible;
    }
    if (foundCompatible) throw new NoSuchMethodError(target.method);
    throw new UnsupportedVersionError(target.version, target.method);
  }

  async dispatch(ctx: RequestContext, target: DispatchTarget): Promise<unknown> {
    return await this.resolve(target)(ctx, target.args);
  }
}
