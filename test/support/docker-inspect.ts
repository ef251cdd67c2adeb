/** Engine answers for the driver's unit tests that read a container's inspect. */
import type { DockerContainerInspect } from '../../src/clients/docker/types.js';

/** A running container's inspect, `over` replacing the fields a test cares about. */
export function runningContainer(over: Partial<DockerContainerInspect> & { Id: string }): DockerContainerInspect {
  return {
    Name: `/nova-${over.Id}`,
    Created: '2026-01-01T00:00:00Z',
    Image: 'sha256:0',
    State: {
      Status: 'running',
      Running: true,
      Paused: false,
      Restarting: false,
      OOMKilled: false,
      Dead: false,
      ExitCode: 0,
    },
    Config: {},
    HostConfig: {},
    ...over,
  };
}
