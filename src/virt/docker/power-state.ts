/**
 * Docker container state → Nova power state (pure).
 *
 * | Docker                                   | Nova      |
 * | ---------------------------------------- | --------- |
 * | no container                             | NOSTATE   |
 * | running                                  | RUNNING   |
 * | paused (suspended by the driver)         | SUSPENDED |
 * | paused                                   | PAUSED    |
 * | created (never started)                  | SHUTDOWN  |
 * | exited, OOMKilled                        | CRASHED   |
 * | exited, stopped by the driver            | SHUTDOWN  |
 * | exited 0                                 | SHUTDOWN  |
 * | exited 143 (SIGTERM) / 137 (SIGKILL)     | SHUTDOWN  |
 * | exited with any other code               | CRASHED   |
 * | restarting (a restart policy re-runs it) | CRASHED   |
 * | removing                                 | SHUTDOWN  |
 * | dead (removal failed)                    | CRASHED   |
 *
 * 143/137 are what `docker stop` leaves (SIGTERM, then SIGKILL after the
 * timeout): a stop by the driver, by an operator or by the host shutting down
 * reads as a clean shutdown, as it would for a VM. A kill -9 from elsewhere is
 * indistinguishable and reads SHUTDOWN too; the OOM killer's SIGKILL is told
 * apart by State.OOMKilled.
 */
import type { DockerContainerState } from '../../clients/docker/types.js';
import { PowerState } from '../power-state.js';

export interface PowerStateHints {
  /** The driver suspended this container (Docker has no suspend; it is paused). */
  suspended?: boolean;
  /** The driver stopped this container since it last started it. */
  stoppedByDriver?: boolean;
}

export const STOP_EXIT_CODES: readonly number[] = [0, 128 + 15, 128 + 9];

export function powerStateOf(state: DockerContainerState | undefined, hints: PowerStateHints = {}): PowerState {
  if (!state) return PowerState.NOSTATE;
  switch (state.Status) {
    case 'paused':
      return hints.suspended ? PowerState.SUSPENDED : PowerState.PAUSED;
    case 'running':
      // Older Engines report paused containers as running + Paused.
      if (state.Paused) return hints.suspended ? PowerState.SUSPENDED : PowerState.PAUSED;
      return PowerState.RUNNING;
    case 'created':
    case 'removing':
      return PowerState.SHUTDOWN;
    case 'exited':
      if (state.OOMKilled) return PowerState.CRASHED;
      if (hints.stoppedByDriver) return PowerState.SHUTDOWN;
      return STOP_EXIT_CODES.includes(state.ExitCode) ? PowerState.SHUTDOWN : PowerState.CRASHED;
    case 'restarting':
    case 'dead':
      return PowerState.CRASHED;
    default:
      return PowerState.NOSTATE;
  }
}

/**
 * Power state from a container list entry (no inspect): State plus the exit
 * code in Status ("Exited (137) 5 seconds ago"). OOM kills are not visible
 * there; getInfo (inspect) reports them as CRASHED.
 */
export function powerStateOfSummary(state: string, status: string, hints: PowerStateHints = {}): PowerState {
  const exitCode = Number(/\((-?\d+)\)/.exec(status)?.[1] ?? -1);
  return powerStateOf(
    {
      Status: state,
      Running: state === 'running',
      Paused: state === 'paused',
      Restarting: state === 'restarting',
      OOMKilled: false,
      Dead: state === 'dead',
      ExitCode: exitCode,
    },
    hints,
  );
}
