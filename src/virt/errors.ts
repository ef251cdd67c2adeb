/**
 * The Nova exceptions drivers raise, as NovaError factories: class name and
 * kwargs fit nova/exception.py's message templates, so the Python side
 * re-raises the right class with a sensible message.
 */
import { AgentError, NovaError } from '../common/errors.js';

function opts(cause: unknown, instanceUuid?: string, imageId?: string) {
  return {
    ...(cause === undefined ? {} : { cause }),
    fields: {
      ...(instanceUuid ? { instance_uuid: instanceUuid } : {}),
      ...(imageId ? { image_id: imageId } : {}),
    },
  };
}

export function instanceNotFound(uuid: string, cause?: unknown): NovaError {
  return new NovaError(
    'InstanceNotFound',
    `Instance ${uuid} could not be found.`,
    { instance_id: uuid },
    opts(cause, uuid),
  );
}

export function instanceExists(name: string, uuid: string): NovaError {
  return new NovaError('InstanceExists', `Instance ${name} already exists.`, { name }, opts(undefined, uuid));
}

export function imageNotFound(imageId: string, cause?: unknown): NovaError {
  return new NovaError(
    'ImageNotFound',
    `Image ${imageId} could not be found.`,
    { image_id: imageId },
    opts(cause, undefined, imageId),
  );
}

/** Glance did not answer or failed (nova.exception.GlanceConnectionFailed); the image itself may be fine. */
export function imageServiceUnavailable(imageId: string, cause?: unknown): NovaError {
  const reason = `the image service (Glance) is unavailable: ${cause instanceof Error ? cause.message : String(cause)}`;
  return new NovaError(
    'GlanceConnectionFailed',
    `Connection to glance host failed: ${reason}; image ${imageId} could not be fetched`,
    { server: 'glance', reason },
    opts(cause, undefined, imageId),
  );
}

export function instanceDeployFailure(uuid: string, reason: string, cause?: unknown): NovaError {
  return new NovaError('InstanceDeployFailure', `Failed to deploy instance: ${reason}`, { reason }, opts(cause, uuid));
}

/** Power and lifecycle failures: InstancePowerOnFailure, InstancePowerOffFailure, InstanceRebootFailure, … */
export type LifecycleFailure =
  | 'InstancePowerOnFailure'
  | 'InstancePowerOffFailure'
  | 'InstanceRebootFailure'
  | 'InstanceSuspendFailure'
  | 'InstanceResumeFailure'
  | 'InstanceTerminationFailure';

const VERB: Record<LifecycleFailure, string> = {
  InstancePowerOnFailure: 'power on',
  InstancePowerOffFailure: 'power off',
  InstanceRebootFailure: 'reboot',
  InstanceSuspendFailure: 'suspend',
  InstanceResumeFailure: 'resume',
  InstanceTerminationFailure: 'terminate',
};

export function lifecycleFailure(klass: LifecycleFailure, uuid: string, reason: string, cause?: unknown): NovaError {
  return new NovaError(klass, `Failed to ${VERB[klass]} instance: ${reason}`, { reason }, opts(cause, uuid));
}

export function instanceInvalidState(uuid: string, state: string, method: string): NovaError {
  return new NovaError(
    'InstanceInvalidState',
    `Instance ${uuid} in power_state ${state}. Cannot ${method} while the instance is in this state.`,
    { instance_uuid: uuid, attr: 'power_state', state, method },
    opts(undefined, uuid),
  );
}

/** The hypervisor (dockerd) does not answer: waiting may help (it is starting, or restarting). */
export function hypervisorUnavailable(host: string, cause?: unknown): NovaError {
  return new NovaError(
    'HypervisorUnavailable',
    `Connection to the hypervisor is broken on host ${host}`,
    { host },
    opts(cause),
  );
}

/** Whether `err` is hypervisorUnavailable's: the hypervisor did not answer (as opposed to refusing us). */
export function isHypervisorUnavailable(err: unknown): err is NovaError {
  return err instanceof NovaError && err.novaClass === 'HypervisorUnavailable';
}

/**
 * The hypervisor answered, or its endpoint refused us, in a way waiting will
 * not change (permission denied on the socket, a certificate that does not
 * verify, something other than a Docker Engine at the address): the
 * configuration or the host must change first.
 */
export class HypervisorRefusedError extends AgentError {}

/** Python's builtin NotImplementedError: the compute manager treats it as "driver does not support this". */
export function notImplemented(what: string): NovaError {
  return new NovaError(
    'NotImplementedError',
    `${what} is not implemented by this driver`,
    {},
    { novaModule: 'builtins' },
  );
}

/** nova.exception.ResizeError: "Resize error: %(reason)s". */
export function resizeError(uuid: string, reason: string, cause?: unknown): NovaError {
  return new NovaError('ResizeError', `Resize error: ${reason}`, { reason }, opts(cause, uuid));
}

/**
 * nova.exception.VirtualInterfacePlugException ("Virtual interface plugin
 * failed"), with the port(s) and the reason in the message, so the instance
 * fault says which port and why.
 */
export function vifPlugFailure(uuid: string, portId: string, reason: string, cause?: unknown): NovaError {
  return new NovaError(
    'VirtualInterfacePlugException',
    `Virtual interface plugin failed for port ${portId}: ${reason}`,
    {},
    opts(cause, uuid),
  );
}

/** nova.exception.InterfaceAttachFailed: "Failed to attach network adapter device to %(instance_uuid)s". */
export function interfaceAttachFailed(uuid: string, cause?: unknown): NovaError {
  return new NovaError(
    'InterfaceAttachFailed',
    `Failed to attach network adapter device to ${uuid}`,
    { instance_uuid: uuid },
    opts(cause, uuid),
  );
}

/** nova.exception.InterfaceDetachFailed: "Failed to detach network adapter device from %(instance_uuid)s". */
export function interfaceDetachFailed(uuid: string, reason: string, cause?: unknown): NovaError {
  return new NovaError(
    'InterfaceDetachFailed',
    `Failed to detach network adapter device from ${uuid}: ${reason}`,
    { instance_uuid: uuid },
    opts(cause, uuid),
  );
}

/**
 * nova.exception.VirtualInterfaceCreateException ("Virtual Interface creation
 * failed"): a VIF plug event failed or never came (vif_plugging_is_fatal).
 * `detail` names the port and why, for the fault the user sees; Nova's own
 * message stops at the template.
 */
export function virtualInterfaceCreateException(detail?: string, uuid?: string): NovaError {
  const message = detail ? `Virtual Interface creation failed: ${detail}` : 'Virtual Interface creation failed';
  return new NovaError('VirtualInterfaceCreateException', message, {}, opts(undefined, uuid));
}

/**
 * The guest's own command ended within the spawn check (InstanceDeployFailure
 * on the wire): the image and the flavor make it fail on any host, so the
 * build ends in ERROR instead of being rescheduled (Nova's libvirt has no
 * such check; its nearest cases, an image or flavor the guest cannot run
 * with, are BuildAbortException).
 */
export class GuestExitedError extends NovaError {}

export function guestExited(uuid: string, reason: string): GuestExitedError {
  return new GuestExitedError(
    'InstanceDeployFailure',
    `Failed to deploy instance: ${reason}`,
    { reason },
    opts(undefined, uuid),
  );
}
