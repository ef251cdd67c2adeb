/**
 * What a failed build becomes, by Nova's rules (nova/compute/manager.py
 * _build_and_run_instance and _do_build_and_run_instance, the same in Zed,
 * 2025.1 and 2026.1): the instance was deleted meanwhile (stop quietly), the
 * build would fail on any host (BuildAbortException: ERROR here), or another
 * host may do better (RescheduledException: back to the conductor when the
 * request carries retry information, else ERROR here).
 */
import { findCause, NovaError } from '../common/errors.js';
import { RemoteError } from '../rpc/errors.js';
import { GuestExitedError } from '../virt/errors.js';
import { deletedMeanwhile } from './instance-store.js';

export type BuildFailure =
  | { kind: 'deleted' }
  /** BuildAbortException: ERROR with `error` as the fault. */
  | { kind: 'abort'; error: unknown }
  /** RescheduledException: `reason` goes to the conductor as retry.exc_reason (or to the fault without retry). */
  | { kind: 'reschedule'; reason: string; error: unknown };

/**
 * The network failures _build_and_run_instance turns into
 * BuildAbortException "Failed to allocate the network(s), not rescheduling."
 */
const NETWORK_ABORT = [
  'VirtualInterfaceCreateException',
  'NoMoreFixedIps',
  'ExternalNetworkAttachForbidden',
  'VirtualInterfaceMacAddressException',
  'FixedIpInvalidOnHost',
  'UnableToAutoAllocateNetwork',
  'NetworksWithQoSPolicyNotSupported',
];

/**
 * The other exceptions _build_and_run_instance (and _build_resources, for
 * UnexpectedTaskStateError) turns into BuildAbortException: the image, the
 * flavor or the request is wrong, so no host would do better.
 */
const ABORT = [
  'BuildAbortException',
  'FlavorDiskTooSmall',
  'FlavorMemoryTooSmall',
  'ImageNotActive',
  'ImageUnacceptable',
  'InvalidDiskInfo',
  'InvalidDiskFormat',
  'SignatureVerificationError',
  'CertificateValidationFailed',
  'VolumeEncryptionNotSupported',
  'InvalidInput',
  'RequestedVRamTooHigh',
  'UnexpectedTaskStateError',
];

/** The Nova exception class of `err`: raised here (NovaError, also as a cause) or answered by the conductor. */
function novaClassOf(err: unknown): string | undefined {
  if (err instanceof RemoteError) return err.excType;
  return findCause(err, NovaError)?.novaClass;
}

/**
 * _build_and_run_instance's network failures that end a build without a
 * reschedule (BuildAbortException "Failed to allocate the network(s), not
 * rescheduling."); the inner error is appended, so the fault names the port
 * and why. Anything else is the fault as it is.
 */
export function buildAbort(uuid: string, err: unknown): unknown {
  const inner = findCause(err, NovaError);
  if (!inner || !NETWORK_ABORT.includes(inner.novaClass)) return err;
  const reason = `Failed to allocate the network(s), not rescheduling. ${inner.message}`;
  return new NovaError(
    'BuildAbortException',
    `Build of instance ${uuid} aborted: ${reason}`,
    { instance_uuid: uuid, reason },
    { cause: err, fields: { instance_uuid: uuid } },
  );
}

/**
 * Nova's classification of a build failure. The instance's own fault keeps
 * the error as raised (its class and message), as this agent always
 * recorded it; only the network aborts get Nova's "not rescheduling" text.
 * Everything not listed is rescheduled, as Nova's `except Exception`:
 * dockerd unavailable (HypervisorUnavailable), an image that cannot be
 * pulled here, a container the Engine would not create or start. A guest
 * whose command exits at once (GuestExitedError) would do so anywhere: abort.
 */
export function classifyBuildFailure(uuid: string, err: unknown): BuildFailure {
  if (deletedMeanwhile(err)) return { kind: 'deleted' };
  const klass = novaClassOf(err);
  if (klass !== undefined && NETWORK_ABORT.includes(klass)) return { kind: 'abort', error: buildAbort(uuid, err) };
  if ((klass !== undefined && ABORT.includes(klass)) || findCause(err, GuestExitedError)) {
    return { kind: 'abort', error: err };
  }
  const inner = findCause(err, NovaError);
  const reason = err instanceof RemoteError ? err.value : (inner ?? (err instanceof Error ? err : undefined))?.message;
  return { kind: 'reschedule', reason: reason ?? String(err), error: err };
}

/**
 * filter_properties['retry'] of the build (num_attempts, hosts), or
 * undefined: no retry information (a host forced, or
 * `[scheduler] max_attempts = 1`) means no reschedule.
 */
export function retryOf(filterProperties: unknown): Record<string, unknown> | undefined {
  if (!filterProperties || typeof filterProperties !== 'object' || Array.isArray(filterProperties)) return undefined;
  const retry = (filterProperties as Record<string, unknown>).retry;
  if (!retry || typeof retry !== 'object' || Array.isArray(retry)) return undefined;
  return Object.keys(retry).length > 0 ? (retry as Record<string, unknown>) : undefined;
}
