/**
 * Persistence through nova-conductor (protocol ref §4): object_class_action_versions
 * for classmethods, object_action for instance methods (reply [updates, result]).
 */
import type { RequestContext } from '../rpc/context.js';
import type { RpcClient } from '../rpc/client.js';
import { RemoteError } from '../rpc/errors.js';
import { NovaObject, isObjectPrimitive } from './base.js';
import { objectManifest, type NovaRelease } from './releases.js';

/**
 * What the compute service asks of nova-conductor: object persistence and a
 * ping. ConductorAPI is the one over RPC; the unit tests' in-memory
 * conductor (test/support/fake-conductor.ts) implements the same interface,
 * so the compiler checks it against what the manager calls.
 */
export interface Conductor {
  /** baseapi ping; nova-compute loops on it at start until the conductor answers. */
  ping(ctx: RequestContext, timeoutS?: number): Promise<unknown>;
  /** Calls an object classmethod on the conductor; returns the raw (primitive) result. */
  classAction(
    ctx: RequestContext,
    objname: string,
    objmethod: string,
    args: unknown[],
    kwargs?: Record<string, unknown>,
    opts?: { timeoutS?: number },
  ): Promise<unknown>;
  /** Like classAction, decoding an object result (null stays null). */
  classActionObject(
    ctx: RequestContext,
    objname: string,
    objmethod: string,
    args: unknown[],
    kwargs?: Record<string, unknown>,
  ): Promise<NovaObject | null>;
  /**
   * Runs `obj.<objmethod>(*args, **kwargs)` on the conductor and applies the
   * field updates it sends back to `obj`; returns the method's result.
   */
  objectAction(
    ctx: RequestContext,
    obj: NovaObject,
    objmethod: string,
    args?: unknown[],
    kwargs?: Record<string, unknown>,
  ): Promise<unknown>;
}

export class ConductorAPI implements Conductor {
  constructor(
    private readonly rpc: RpcClient,
    private readonly release: NovaRelease,
  ) {}

  /** baseapi ping; nova-compute loops on it at start until the conductor answers. */
  async ping(ctx: RequestContext, timeoutS = 10): Promise<unknown> {
    return await this.rpc.call(
      ctx,
      'ping',
      { arg: '1.21 GigaWatts' },
      { namespace: 'baseapi', version: '1.0', timeoutS },
    );
  }

  /** Calls an object classmethod on the conductor; returns the raw (primitive) result. */
  async classAction(
    ctx: RequestContext,
    objname: string,
    objmethod: string,
    args: unknown[],
    kwargs: Record<string, unknown> = {},
    opts: { timeoutS?: number } = {},
  ): Promise<unknown> {
    return await this.rpc.call(
      ctx,
      'object_class_action_versions',
      { objname, objmethod, object_versions: objectManifest(this.release, objname), args, kwargs },
      { version: this.release.conductorRpcVersion, timeoutS: opts.timeoutS },
    );
  }

  /** Like classAction, decoding an object result (null stays null). */
  async classActionObject(
    ctx: RequestContext,
    objname: string,
    objmethod: string,
    args: unknown[],
    kwargs: Record<string, unknown> = {},
  ): Promise<NovaObject | null> {
    const r = await this.classAction(ctx, objname, objmethod, args, kwargs);
    return isObjectPrimitive(r) ? NovaObject.fromPrimitive(r) : null;
  }

  /**
   * Runs `obj.<objmethod>(*args, **kwargs)` on the conductor and applies the
   * field updates it sends back to `obj`; returns the method's result.
   */
  async objectAction(
    ctx: RequestContext,
    obj: NovaObject,
    objmethod: string,
    args: unknown[] = [],
    kwargs: Record<string, unknown> = {},
  ): Promise<unknown> {
    const r = await this.rpc.call(
      ctx,
      'object_action',
      { objinst: obj.toPrimitive(), objmethod, args, kwargs },
      { version: this.release.conductorRpcVersion },
    );
    const [updates, result]: unknown[] = Array.isArray(r) ? (r as unknown[]) : [undefined, r];
    obj.applyUpdates(updates);
    return result;
  }
}

/** True when a conductor failure is the Nova exception `novaClass`. */
export function isRemote(err: unknown, ...novaClass: string[]): err is RemoteError {
  return err instanceof RemoteError && novaClass.includes(err.excType);
}

/**
 * build_instances' arguments as nova-compute's _do_build_and_run_instance
 * sends them back on a reschedule (ComputeTaskAPI.build_instances 1.19):
 * what the build received, with the instance as saved for the reschedule
 * and `filter_properties.retry` carrying the error.
 */
export interface BuildInstancesArgs {
  instances: unknown[];
  image: unknown;
  filter_properties: Record<string, unknown>;
  admin_password: unknown;
  injected_files: unknown;
  requested_networks: unknown;
  security_groups: unknown;
  block_device_mapping: unknown;
  request_spec: unknown;
  host_lists: unknown[];
}

/** The conductor's `compute_task` namespace, as far as a compute host casts to it. */
export interface ComputeTaskCaster {
  /** A failed build back to the conductor for another host (a cast: the conductor answers nobody). */
  buildInstances(ctx: RequestContext, args: BuildInstancesArgs): Promise<void>;
}

/** nova/conductor/rpcapi.py ComputeTaskAPI: topic `conductor`, namespace `compute_task`. */
export class ComputeTaskAPI implements ComputeTaskCaster {
  constructor(
    private readonly rpc: RpcClient,
    private readonly release: NovaRelease,
  ) {}

  async buildInstances(ctx: RequestContext, args: BuildInstancesArgs): Promise<void> {
    await this.rpc.cast(
      ctx,
      'build_instances',
      { ...args },
      {
        namespace: 'compute_task',
        version: this.release.computeTaskRpcVersion,
      },
    );
  }
}
