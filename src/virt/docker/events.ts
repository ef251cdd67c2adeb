/**
 * The Engine's event stream (GET /events) as the driver's lifecycle feed:
 * container start/die/oom/pause/unpause/destroy of this host's containers
 * (label filter), parsed line by line as they arrive. When the stream breaks
 * (dockerd restarted, socket gone) it reconnects with a doubling backoff and,
 * once subscribed again, reports EventsMissed so the manager reconciles all.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { DockerClient } from '../../clients/docker/client.js';
import { isContainerEvent, type DockerContainerAction, type DockerEvent } from '../../clients/docker/types.js';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { type DriverEvent, type DriverEventListener, type LifecycleEvent, LifecycleTransition } from '../event.js';
import { LABELS, ROLE_NET, hostLabelFilter, ownedBy, ownedWithRole } from './labels.js';

export const FOLLOWED_ACTIONS: readonly DockerContainerAction[] = [
  'start',
  'die',
  'oom',
  'pause',
  'unpause',
  'destroy',
];

/** A stream up this long counts as healthy (the backoff restarts from its first step). */
const HEALTHY_MS = 5000;

export interface EventWatcherOptions {
  host: string;
  /** First reconnect delay, ms (doubles up to maxBackoffMs). Default 500. */
  initialBackoffMs?: number;
  /** Default 30 s. */
  maxBackoffMs?: number;
  /** Whether the driver suspended this guest (a pause then reads SUSPENDED). */
  isSuspended?: (uuid: string) => boolean;
  /** Every event of one of this host's instances, before the listener's (the console's lifecycle lines). */
  onContainerEvent?: (e: DockerEvent, uuid: string) => void;
  /** Events of this host's netns holders (not lifecycle events of instances). */
  onHolderEvent?: (e: DockerEvent, uuid: string) => void;
}

/** A Docker event → Nova's lifecycle transition, undefined for those that change no power state (oom). */
export function lifecycleOf(e: DockerEvent, suspended = false): LifecycleTransition | undefined {
  switch (e.Action) {
    case 'start':
      return LifecycleTransition.STARTED;
    case 'die':
    case 'destroy':
      // destroy: the container is gone (the listener then finds NOSTATE)
      return LifecycleTransition.STOPPED;
    case 'pause':
      return suspended ? LifecycleTransition.SUSPENDED : LifecycleTransition.PAUSED;
    case 'unpause':
      return LifecycleTransition.RESUMED;
    default:
      // oom: a process of the container was killed; `die` follows if it was the main one
      return undefined;
  }
}

export class ContainerEventWatcher {
  private ctrl: AbortController | undefined;
  private running: Promise<void> | undefined;
  /** Number of times the subscription was (re)opened (tests, metrics). */
  opened = 0;

  constructor(
    private readonly docker: Pick<DockerClient, 'events'>,
    private readonly listener: DriverEventListener,
    private readonly opts: EventWatcherOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.ctrl) return;
    const ctrl = new AbortController();
    this.ctrl = ctrl;
    this.running = this.run(ctrl.signal);
  }

  /** Closes the stream; resolves once the loop has ended. */
  async stop(): Promise<void> {
    this.ctrl?.abort(new Error('event watcher stopped'));
    this.ctrl = undefined;
    await this.running;
    this.running = undefined;
  }

  private emit(e: DriverEvent): void {
    try {
      this.listener(e);
    } catch (err) {
      this.log.error(`lifecycle event listener failed: ${errorMessage(err)}`);
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    const initial = this.opts.initialBackoffMs ?? 500;
    const max = this.opts.maxBackoffMs ?? 30_000;
    let delay = initial;
    let reason = 'subscribed';
    while (!signal.aborted) {
      // a stream that delivered events or stayed up a while resets the backoff; one that
      // opens and closes at once (an Engine shutting down) keeps doubling it
      let healthy = false;
      let openedAt = 0;
      try {
        const events = this.docker.events({
          filters: { type: ['container'], event: [...FOLLOWED_ACTIONS], label: hostLabelFilter(this.opts.host) },
          signal,
          onOpen: () => {
            this.opened++;
            openedAt = Date.now();
            if (this.opened > 1) this.log.info(`docker event stream reconnected (${reason})`);
            // whatever happened before this point was not seen: reconcile everything
            this.emit({ kind: 'missed', reason });
          },
        });
        for await (const e of events) {
          healthy = true;
          this.handle(e);
        }
        reason = 'the Engine ended the event stream';
      } catch (err) {
        if (signal.aborted) break;
        reason = errorMessage(err);
      }
      if (signal.aborted) break;
      if (healthy || (openedAt > 0 && Date.now() - openedAt >= HEALTHY_MS)) delay = initial;
      this.log.warn(`docker event stream lost: ${reason}; reconnecting in ${delay} ms`);
      try {
        await sleep(delay, undefined, { signal });
      } catch {
        break;
      }
      delay = Math.min(delay * 2, max);
    }
  }

  private handle(e: DockerEvent): void {
    if (!isContainerEvent(e)) return;
    const attrs = e.Actor.Attributes ?? {};
    if (ownedWithRole(attrs, this.opts.host, ROLE_NET)) {
      const holderOf = attrs[LABELS.instanceUuid];
      try {
        if (holderOf) this.opts.onHolderEvent?.(e, holderOf);
      } catch (err) {
        this.log.error(`holder event hook failed: ${errorMessage(err)}`, { instance_uuid: holderOf });
      }
      return;
    }
    // the filter already selects our host; checked again so a filter the Engine ignores cannot leak others
    if (!ownedBy(attrs, this.opts.host)) return;
    const uuid = attrs[LABELS.instanceUuid];
    if (!uuid) return;
    try {
      this.opts.onContainerEvent?.(e, uuid);
    } catch (err) {
      this.log.error(`container event hook failed: ${errorMessage(err)}`, { instance_uuid: uuid });
    }
    const transition = lifecycleOf(e, this.opts.isSuspended?.(uuid) ?? false);
    const detail = e.Action + (attrs.exitCode !== undefined ? ` exitCode=${attrs.exitCode}` : '');
    if (transition === undefined) {
      this.log.info(`container event ${detail}`, { instance_uuid: uuid });
      return;
    }
    const event: LifecycleEvent = {
      kind: 'lifecycle',
      uuid,
      transition,
      timestamp: typeof e.timeNano === 'number' ? Math.floor(e.timeNano / 1e6) : e.time * 1000,
      detail,
    };
    this.emit(event);
  }
}
