import assert from 'node:assert/strict';
import type { DockerContainerState } from '../../../src/clients/docker/types.js';
import { powerStateOf, type PowerStateHints } from '../../../src/virt/docker/power-state.js';
import { PowerState } from '../../../src/virt/power-state.js';

function st(over: Partial<DockerContainerState>): DockerContainerState {
  return {
    Status: 'running',
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    ExitCode: 0,
    ...over,
  };
}

describe('virt/docker/power-state', () => {
  it("keeps Nova's integer values", () => {
    assert.deepEqual(
      [
        PowerState.NOSTATE,
        PowerState.RUNNING,
        PowerState.PAUSED,
        PowerState.SHUTDOWN,
        PowerState.CRASHED,
        PowerState.SUSPENDED,
      ],
      [0, 1, 3, 4, 6, 7],
    );
  });

  const table: [string, DockerContainerState | undefined, PowerStateHints, PowerState][] = [
    ['missing', undefined, {}, PowerState.NOSTATE],
    ['running', st({ Status: 'running', Running: true }), {}, PowerState.RUNNING],
    ['running + Paused (old engines)', st({ Status: 'running', Running: true, Paused: true }), {}, PowerState.PAUSED],
    ['paused', st({ Status: 'paused', Running: true, Paused: true }), {}, PowerState.PAUSED],
    ['paused by suspend', st({ Status: 'paused', Paused: true }), { suspended: true }, PowerState.SUSPENDED],
    ['created', st({ Status: 'created' }), {}, PowerState.SHUTDOWN],
    ['exited 0', st({ Status: 'exited', ExitCode: 0 }), {}, PowerState.SHUTDOWN],
    ['exited 143 (docker stop, SIGTERM)', st({ Status: 'exited', ExitCode: 143 }), {}, PowerState.SHUTDOWN],
    ['exited 137 (docker stop, SIGKILL)', st({ Status: 'exited', ExitCode: 137 }), {}, PowerState.SHUTDOWN],
    ['exited 1', st({ Status: 'exited', ExitCode: 1 }), {}, PowerState.CRASHED],
    ['exited 139 (segfault)', st({ Status: 'exited', ExitCode: 139 }), {}, PowerState.CRASHED],
    [
      'exited 1 after a driver stop',
      st({ Status: 'exited', ExitCode: 1 }),
      { stoppedByDriver: true },
      PowerState.SHUTDOWN,
    ],
    ['OOM killed (137)', st({ Status: 'exited', ExitCode: 137, OOMKilled: true }), {}, PowerState.CRASHED],
    [
      'OOM killed after a driver stop',
      st({ Status: 'exited', ExitCode: 137, OOMKilled: true }),
      { stoppedByDriver: true },
      PowerState.CRASHED,
    ],
    ['restarting', st({ Status: 'restarting', Restarting: true }), {}, PowerState.CRASHED],
    ['dead', st({ Status: 'dead', Dead: true }), {}, PowerState.CRASHED],
    ['removing', st({ Status: 'removing' }), {}, PowerState.SHUTDOWN],
    ['unknown status', st({ Status: 'weird' }), {}, PowerState.NOSTATE],
  ];
  for (const [name, state, hints, want] of table) {
    it(`${name} → ${PowerState[want]}`, () => assert.equal(powerStateOf(state, hints), want));
  }
});
