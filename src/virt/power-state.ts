/**
 * Nova's power states (nova/compute/power_state.py), same integer values: they
 * travel to the conductor and into the instances table as these numbers.
 */
export enum PowerState {
  NOSTATE = 0,
  RUNNING = 1,
  PAUSED = 3,
  /** The guest is off (Nova shows "Shutdown"). */
  SHUTDOWN = 4,
  CRASHED = 6,
  SUSPENDED = 7,
}

/** Nova's display names (power_state.STATE_MAP). */
export const POWER_STATE_NAMES: Readonly<Record<PowerState, string>> = {
  [PowerState.NOSTATE]: 'pending',
  [PowerState.RUNNING]: 'running',
  [PowerState.PAUSED]: 'paused',
  [PowerState.SHUTDOWN]: 'shutdown',
  [PowerState.CRASHED]: 'crashed',
  [PowerState.SUSPENDED]: 'suspended',
};
