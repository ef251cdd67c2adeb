/**
 * Docker Engine errors → Nova's, one mapping for every part of the driver
 * (the ComputeDriver methods in driver.ts and the snapshot pipeline).
 */
import { NotFoundError, UnavailableError } from '../../clients/errors.js';
import { AgentError, NovaError, errorMessage, findCause } from '../../common/errors.js';
import { hypervisorUnavailable, instanceNotFound, lifecycleFailure, type LifecycleFailure } from '../errors.js';

/** Engine down → HypervisorUnavailable; anything else keeps its class, tagged with the instance. */
export function engineError(host: string, uuid: string | undefined, err: unknown): Error {
  if (err instanceof NovaError) return err;
  if (findCause(err, UnavailableError)) return hypervisorUnavailable(host, err);
  if (err instanceof AgentError) return err;
  return new AgentError(errorMessage(err), { cause: err, fields: uuid ? { instance_uuid: uuid } : {} });
}

/**
 * Runs a docker operation on an instance's container, mapping its errors to
 * Nova's: the container gone is InstanceNotFound, a refusal is `klass` (when
 * given; the Engine down stays HypervisorUnavailable), the rest engineError.
 */
export async function guardEngineCall(
  host: string,
  uuid: string,
  klass: LifecycleFailure | undefined,
  fn: () => Promise<void>,
): Promise<void> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof NovaError) throw err;
    if (err instanceof NotFoundError) throw instanceNotFound(uuid, err);
    if (klass && !(err instanceof UnavailableError)) throw lifecycleFailure(klass, uuid, errorMessage(err), err);
    throw engineError(host, uuid, err);
  }
}
