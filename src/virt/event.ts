/**
 * Events a driver emits about its guests (nova/virt/event.py): a lifecycle
 * transition seen on the hypervisor, or the news that some were missed (the
 * event source broke off), after which the compute manager reconciles all.
 */

/** nova.virt.event EVENT_LIFECYCLE_* (the same numbers). */
export enum LifecycleTransition {
  STARTED = 0,
  STOPPED = 1,
  PAUSED = 2,
  RESUMED = 3,
  SUSPENDED = 4,
}

export const LIFECYCLE_NAMES: Readonly<Record<LifecycleTransition, string>> = {
  [LifecycleTransition.STARTED]: 'Started',
  [LifecycleTransition.STOPPED]: 'Stopped',
  [LifecycleTransition.PAUSED]: 'Paused',
  [LifecycleTransition.RESUMED]: 'Resumed',
  [LifecycleTransition.SUSPENDED]: 'Suspended',
};

/** virtevent.LifecycleEvent. */
export interface LifecycleEvent {
  kind: 'lifecycle';
  uuid: string;
  transition: LifecycleTransition;
  /** ms since the epoch, when the hypervisor saw it. */
  timestamp: number;
  /** What the hypervisor said, for logs (e.g. `die exitCode=137`). */
  detail?: string;
}

/**
 * The event source reconnected after a break: transitions in between were
 * not seen, so the listener must compare every guest (a full power-state sync).
 */
export interface EventsMissed {
  kind: 'missed';
  reason: string;
}

export type DriverEvent = LifecycleEvent | EventsMissed;
export type DriverEventListener = (event: DriverEvent) => void;
