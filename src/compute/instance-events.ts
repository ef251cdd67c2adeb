/**
 * External instance events (nova/compute/manager.py InstanceEvents,
 * ComputeVirtAPI.wait_for_instance_event, external_instance_event).
 *
 * Neutron tells Nova's API when a port goes up or down or changes; the API
 * casts `external_instance_event` to the instance's host (compute-alt in
 * 2026.1, which serves the same endpoint). `network-vif-plugged` and
 * `-unplugged` wake whoever waits for them (a spawn waiting before it starts
 * the container); `network-changed` refreshes the info cache;
 * `network-vif-deleted` drops the VIF from the cache and detaches it. An
 * event nobody waits for is logged and dropped, as Nova does, so waiters must
 * be registered before the plug that makes Neutron send it.
 */
import { errorMessage, NovaError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import { NovaObject, isObjectPrimitive } from '../objects/base.js';
import { contextLogFields, type RequestContext } from '../rpc/context.js';
import { isRemote } from '../objects/conductor.js';
import type { RpcArgs, RpcHandler } from '../rpc/dispatcher.js';
import type { ComputeDriver } from '../virt/driver.js';
import { virtualInterfaceCreateException } from '../virt/errors.js';
import type { DriverContext } from '../virt/types.js';
import { TaskState } from './states.js';
import { type NetworkAPI } from './network.js';
import { networkInfoOf } from './network-info.js';
import { driverContext, type InstanceStore } from './instance-store.js';

const LOGGER = 'nova_docker.compute.manager';

/** nova.objects.InstanceExternalEvent (1.5). */
export interface InstanceExternalEvent {
  instance_uuid: string;
  /** network-changed, network-vif-plugged|unplugged|deleted, volume-extended, power-update, … */
  name: string;
  status: 'completed' | 'failed' | 'in-progress';
  tag: string | null;
  data: Record<string, unknown>;
}

/** InstanceExternalEvent.make_key: `name-tag`, or the name alone. */
export function eventKey(name: string, tag: string | null): string {
  return tag === null ? name : `${name}-${tag}`;
}

/** An InstanceExternalEvent primitive (or plain dict) → the event. */
export function parseExternalEvent(v: unknown): InstanceExternalEvent {
  const d = isObjectPrimitive(v)
    ? v['nova_object.data']
    : v && typeof v === 'object'
      ? (v as Record<string, unknown>)
      : {};
  const status = d.status === 'failed' || d.status === 'in-progress' ? d.status : 'completed';
  return {
    instance_uuid: typeof d.instance_uuid === 'string' ? d.instance_uuid : '',
    name: typeof d.name === 'string' ? d.name : '',
    status,
    tag: typeof d.tag === 'string' ? d.tag : null,
    data: d.data && typeof d.data === 'object' ? (d.data as Record<string, unknown>) : {},
  };
}

/** One registered wait (eventlet.event.Event): resolved with the event that arrived. */
interface Waiter {
  name: string;
  tag: string | null;
  promise: Promise<InstanceExternalEvent>;
  send(event: InstanceExternalEvent): void;
}

function newWaiter(name: string, tag: string | null): Waiter {
  let send!: (e: InstanceExternalEvent) => void;
  const promise = new Promise<InstanceExternalEvent>((resolve) => (send = resolve));
  return { name, tag, promise, send };
}

/** Per instance, the (name, tag) events someone waits for. */
export class InstanceEvents {
  /** null once shut down: no new waits. */
  #events: Map<string, Map<string, Waiter>> | null = new Map();

  constructor(private readonly logger: Logger) {}

  #log(level: 'debug' | 'warn', msg: string, uuid?: string): void {
    this.logger.log(level, msg, { logger: LOGGER, ...(uuid ? { instance_uuid: uuid } : {}) });
  }

  /** prepare_for_instance_event: registers (or joins) the wait for `name-tag`. */
  prepare(uuid: string, name: string, tag: string | null): Promise<InstanceExternalEvent> {
    if (this.#events === null) throw new NovaError('NovaException', 'In shutdown, no new events can be scheduled');
    this.#log('debug', `Preparing to wait for external event ${eventKey(name, tag)}`, uuid);
    let forInstance = this.#events.get(uuid);
    if (!forInstance) this.#events.set(uuid, (forInstance = new Map<string, Waiter>()));
    const key = eventKey(name, tag);
    let w = forInstance.get(key);
    if (!w) forInstance.set(key, (w = newWaiter(name, tag)));
    return w.promise;
  }

  /** pop_instance_event: the waiter of `event`, removed; undefined when nobody waits. */
  pop(event: InstanceExternalEvent): Waiter | undefined {
    const uuid = event.instance_uuid;
    const key = eventKey(event.name, event.tag);
    if (this.#events === null) {
      this.#log('debug', 'Unexpected attempt to pop events during shutdown', uuid);
      return undefined;
    }
    const forInstance = this.#events.get(uuid);
    if (!forInstance) {
      this.#log('debug', `No waiting events found dispatching ${key}`, uuid);
      return undefined;
    }
    const w = forInstance.get(key);
    forInstance.delete(key);
    if (forInstance.size === 0) this.#events.delete(uuid);
    if (!w) this.#log('debug', `No event matching ${key} in ${JSON.stringify([...forInstance.keys()])}`, uuid);
    return w;
  }

  /** Drops the waits for the given keys (a plug that failed, a wait that timed out). */
  forget(uuid: string, keys: readonly string[]): void {
    const forInstance = this.#events?.get(uuid);
    if (!forInstance) return;
    for (const k of keys) forInstance.delete(k);
    if (forInstance.size === 0) this.#events?.delete(uuid);
  }

  /** clear_events_for_instance: every pending wait of the instance, removed; their keys. */
  clearForInstance(uuid: string): string[] {
    const forInstance = this.#events?.get(uuid);
    this.#events?.delete(uuid);
    return forInstance ? [...forInstance.keys()] : [];
  }

  /** cancel_all_events (service stop): every waiter gets a `failed` event; no new waits. */
  cancelAll(): void {
    const events = this.#events;
    if (events === null) return;
    this.#events = null;
    for (const [uuid, forInstance] of events) {
      for (const [key, w] of forInstance) {
        this.#log('debug', `Canceling in-flight event ${key} for instance ${uuid}`);
        w.send({ instance_uuid: uuid, name: w.name, status: 'failed', tag: w.tag, data: {} });
      }
    }
  }

  /** Pending keys of an instance (tests, logs). */
  pending(uuid: string): string[] {
    return [...(this.#events?.get(uuid)?.keys() ?? [])];
  }
}

/** How VIF plug events are awaited ([DEFAULT] vif_plugging_*), and who hears how long it took. */
export interface VifPlugging {
  /** `[DEFAULT] vif_plugging_timeout`, s; 0: do not wait. */
  timeoutS: number;
  /** `[DEFAULT] vif_plugging_is_fatal` */
  fatal: boolean;
  /** Told after each wait that began (the plug went through): seconds from plug to the last event, and how it ended. Must not throw. */
  onWaited?: ((seconds: number, outcome: VifWaitOutcome) => void) | undefined;
}

export type VifWaitOutcome = 'completed' | 'failed' | 'timeout';

export interface EventWaitOptions extends VifPlugging {
  logger: Logger;
}

/**
 * DriverContext.waitForInstanceEvents for one instance: Nova's
 * wait_for_instance_event with libvirt's error callback and timeout handling
 * (_neutron_failed_callback, _create_guest_with_network). Waiters are
 * registered before `body` runs; a failed event or a timeout is a
 * VirtualInterfaceCreateException naming the port when
 * `vif_plugging_is_fatal`, else logged and the spawn goes on.
 */
export function eventWaiter(
  events: InstanceEvents,
  instance: NovaObject,
  o: EventWaitOptions,
): NonNullable<DriverContext['waitForInstanceEvents']> {
  const uuid = instance.str('uuid') ?? '';
  const log = (level: 'debug' | 'info' | 'warn' | 'error', msg: string): void => {
    o.logger.log(level, msg, { logger: LOGGER, instance_uuid: uuid });
  };
  return async (wanted, body) => {
    if (o.timeoutS <= 0 || wanted.length === 0) {
      await body();
      return;
    }
    const keys = wanted.map(([name, tag]) => eventKey(name, tag));
    const waits = new Map<string, { promise: Promise<InstanceExternalEvent>; received?: number }>();
    let failedToPrepare = false;
    for (const [i, [name, tag]] of wanted.entries()) {
      try {
        waits.set(keys[i]!, { promise: events.prepare(uuid, name, tag) });
      } catch (err) {
        // in shutdown: Nova calls the error callback and does not wait
        log('error', `Neutron Reported failure on event ${keys[i]!} for instance ${uuid}: ${errorMessage(err)}`);
        if (o.fatal) throw virtualInterfaceCreateException(`the agent is shutting down (${keys[i]!})`, uuid);
        failedToPrepare = true;
      }
    }
    try {
      await body();
    } catch (err) {
      events.forget(uuid, keys);
      throw err;
    }
    if (failedToPrepare) return;
    const started = performance.now();
    const waited = (): number => (performance.now() - started) / 1000;
    for (const w of waits.values()) {
      void w.promise.then(() => (w.received = performance.now() - started));
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), o.timeoutS * 1000);
    });
    try {
      for (const [key, w] of waits) {
        const got = await Promise.race([w.promise, timeout]);
        if (got === 'timeout') {
          const states = [...waits].map(([k, x]) =>
            x.received === undefined
              ? `${k}: timed out after ${((performance.now() - started) / 1000).toFixed(2)} seconds`
              : `${k}: received after waiting ${(x.received / 1000).toFixed(2)} seconds`,
          );
          log(
            'warn',
            `Timeout waiting for ${JSON.stringify(keys)} for instance with vm_state ${String(instance.str('vm_state'))} and task_state ${String(instance.str('task_state'))}. Event states are: ${states.join(', ')}`,
          );
          events.forget(uuid, keys);
          o.onWaited?.(waited(), 'timeout');
          if (o.fatal) {
            const missing = [...waits].filter(([, x]) => x.received === undefined).map(([k]) => k);
            throw virtualInterfaceCreateException(
              `${missing.join(', ')} did not arrive within ${o.timeoutS} s (vif_plugging_timeout)`,
              uuid,
            );
          }
          return;
        }
        if (got.status !== 'completed') {
          log('error', `Neutron Reported failure on event ${key} for instance ${uuid}`);
          o.onWaited?.(waited(), 'failed');
          if (o.fatal) {
            events.forget(uuid, keys);
            throw virtualInterfaceCreateException(`Neutron reported ${key} with status ${got.status}`, uuid);
          }
        }
      }
      o.onWaited?.(waited(), 'completed');
      log(
        'debug',
        `Instance event wait completed in ${Math.floor((performance.now() - started) / 1000)} seconds for ${wanted.map(([n]) => n).join(',')}`,
      );
    } finally {
      clearTimeout(timer);
    }
  };
}

/** What the external-event handler works with. */
export interface ExternalEventDeps {
  store: InstanceStore;
  events: InstanceEvents;
  driver: ComputeDriver;
  /** Absent when `[neutron]` is not configured. */
  network: NetworkAPI | undefined;
  logger: Logger;
}

/** True for Nova's NotFound family (InstanceNotFound, PortNotFound, …), raised here or by the conductor. */
function isNotFound(err: unknown): boolean {
  if (err instanceof NovaError) return err.novaClass.endsWith('NotFound');
  return isRemote(err, 'InstanceNotFound', 'InstanceInfoCacheNotFound', 'PortNotFound', 'NetworkNotFound');
}

/** The external_instance_event RPC method (compute RPC 5.0+: `instances`, `events`). */
export class ExternalEvents {
  constructor(private readonly d: ExternalEventDeps) {}

  methods(): Record<string, RpcHandler> {
    return { external_instance_event: (ctx, a) => this.externalInstanceEvent(ctx, a) };
  }

  #log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, ctx: RequestContext, uuid: string): void {
    this.d.logger.log(level, msg, { logger: LOGGER, ...contextLogFields(ctx), instance_uuid: uuid });
  }

  async externalInstanceEvent(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const instances = (Array.isArray(args.instances) ? args.instances : []).map((p) => NovaObject.fromPrimitive(p));
    const events = (Array.isArray(args.events) ? args.events : []).map(parseExternalEvent);
    for (const event of events) {
      const instance = instances.find((i) => i.str('uuid') === event.instance_uuid);
      const key = eventKey(event.name, event.tag);
      if (!instance) {
        this.#log('warn', `Received event ${key} for an instance that was not sent with it`, ctx, event.instance_uuid);
        continue;
      }
      this.#log('debug', `Received event ${key}`, ctx, event.instance_uuid);
      if (event.name === 'network-changed') {
        await this.#networkChanged(ctx, instance, event, key);
      } else if (event.name === 'network-vif-deleted') {
        try {
          await this.#vifDeleted(ctx, instance, event.tag ?? '');
        } catch (err) {
          if (!isNotFound(err)) throw err;
          this.#log(
            'info',
            `Failed to process external instance event ${key} due to: ${errorMessage(err)}`,
            ctx,
            event.instance_uuid,
          );
        }
      } else {
        this.processInstanceEvent(ctx, instance, event);
      }
    }
  }

  async #networkChanged(
    ctx: RequestContext,
    instance: NovaObject,
    event: InstanceExternalEvent,
    key: string,
  ): Promise<void> {
    const uuid = event.instance_uuid;
    if (!this.d.network) {
      this.#log('warn', `Ignoring ${key}: networking ([neutron]) is not configured on this host`, ctx, uuid);
      return;
    }
    try {
      this.#log('debug', `Refreshing instance network info cache due to event ${key}.`, ctx, uuid);
      await this.d.network.getInstanceNwInfo(ctx, instance, event.tag ? { refreshVifId: event.tag } : {});
    } catch (err) {
      if (!isNotFound(err)) throw err;
      this.#log('info', `Failed to process external instance event ${key} due to: ${errorMessage(err)}`, ctx, uuid);
    }
  }

  /** _process_instance_event: wakes the waiter, or logs the event nobody waited for. */
  processInstanceEvent(ctx: RequestContext, instance: NovaObject, event: InstanceExternalEvent): void {
    const key = eventKey(event.name, event.tag);
    const w = this.d.events.pop(event);
    if (w) {
      this.#log('debug', `Processing event ${key}`, ctx, event.instance_uuid);
      w.send(event);
      return;
    }
    const taskState = instance.str('task_state');
    if (event.name === 'network-vif-unplugged' && (taskState === TaskState.DELETING || taskState === 'migrating')) {
      this.#log('debug', `Received event ${key} for instance with task_state ${taskState}.`, ctx, event.instance_uuid);
    } else {
      this.#log(
        'warn',
        `Received unexpected event ${key} for instance with vm_state ${String(instance.str('vm_state'))} and task_state ${String(taskState)}.`,
        ctx,
        event.instance_uuid,
      );
    }
  }

  /** _process_instance_vif_deleted_event: the VIF out of the cache, then detached from the guest. */
  async #vifDeleted(ctx: RequestContext, instance: NovaObject, portId: string): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    const nwInfo = networkInfoOf(instance);
    const index = nwInfo.findIndex((v) => v.id === portId);
    if (index < 0) return;
    const vif = nwInfo[index]!;
    this.#log(
      'info',
      `Neutron deleted interface ${portId}; detaching it from the instance and deleting it from the info cache`,
      ctx,
      uuid,
    );
    const allocation = (vif.profile ?? {}).allocation;
    if (allocation) {
      const rps =
        typeof allocation === 'string' ? allocation : Object.values(allocation as Record<string, string>).join(',');
      this.#log(
        'error',
        `The bound port ${portId} is deleted in Neutron but the resource allocation on the resource providers ${rps} are leaked until the server ${uuid} is deleted.`,
        ctx,
        uuid,
      );
    }
    nwInfo.splice(index, 1);
    if (this.d.network) await this.d.network.updateInstanceCache(ctx, instance, nwInfo);
    const detach = this.d.driver.detachInterface?.bind(this.d.driver);
    // a driver without interface detach (NotImplementedError in Nova) keeps the device until the instance goes
    if (!detach) return;
    try {
      await detach(driverContext(ctx), this.d.store.spec(instance), vif);
    } catch (err) {
      if (err instanceof NovaError && err.novaClass === 'NotImplementedError') return;
      if (!(err instanceof NovaError)) throw err;
      this.#log(
        err.novaClass === 'InstanceNotFound' ? 'debug' : 'warn',
        `Detach interface failed, port_id=${portId}, reason: ${err.message}`,
        ctx,
        uuid,
      );
    }
  }
}
