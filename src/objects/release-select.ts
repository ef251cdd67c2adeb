/**
 * Which Nova release this agent speaks ([docker] nova_release): `auto` asks
 * nova-conductor for the control plane's service version and takes the
 * newest table the control plane accepts and understands; a fixed name is
 * checked against the same rules. A mismatch is a ReleaseMismatchError at
 * start, never a half-working agent: a compute older than the control
 * plane's oldest supported version blocks its services (TooOldComputeService),
 * and one newer than the control plane breaks every compute RPC it sends
 * (ServiceTooOld from its version cap), so both are refused here.
 */
import type { RequestContext } from '../rpc/context.js';
import type { Conductor } from './conductor.js';
import { CONTROL_PLANES, RELEASES, releaseNamed, type NovaRelease } from './releases.js';

/** The agent's release cannot join this control plane. */
export class ReleaseMismatchError extends Error {
  override name = 'ReleaseMismatchError';
}

export interface ControlPlane {
  /** nova-conductor's service version (its Service records; the minimum when several run). */
  serviceVersion: number;
  /** The release names with that service version (two releases may share one). */
  names: string[];
  /** The oldest compute service version it accepts (the strictest of `names`). */
  oldestSupported: number;
}

/** Names a control plane from its service version; `names` is empty for a version no table lists. */
export function controlPlaneFor(serviceVersion: number): ControlPlane {
  const known = CONTROL_PLANES.filter((c) => c.serviceVersion === serviceVersion);
  const below = CONTROL_PLANES.filter((c) => c.serviceVersion <= serviceVersion).at(-1);
  return {
    serviceVersion,
    names: known.map((c) => c.name),
    // an unlisted version between two releases accepts at least what the older of them needs
    oldestSupported: Math.max(0, ...known.map((c) => c.oldestSupported), below?.oldestSupported ?? 0),
  };
}

export function describeControlPlane(cp: ControlPlane): string {
  const name = cp.names.length > 0 ? `Nova ${cp.names.join('/')}` : 'a Nova control plane';
  return `${name} (service version ${cp.serviceVersion}, accepts computes from ${cp.oldestSupported})`;
}

function describe(r: NovaRelease): string {
  return `${r.name} (service version ${r.serviceVersion})`;
}

/** The release to speak for `setting` (auto or a table name) against control plane `cp`. */
export function selectRelease(setting: string, cp: ControlPlane): NovaRelease {
  const newest = RELEASES.at(-1);
  if (newest && cp.serviceVersion > newest.serviceVersion && cp.names.length === 0) {
    throw new ReleaseMismatchError(
      `${describeControlPlane(cp)} is newer than ${describe(newest)}, the newest Nova release this agent ` +
        'knows: upgrade nova-docker',
    );
  }
  const fits = (r: NovaRelease): boolean =>
    r.serviceVersion <= cp.serviceVersion && r.serviceVersion >= cp.oldestSupported;
  if (setting === 'auto') {
    const chosen = RELEASES.filter(fits).at(-1);
    if (chosen) return chosen;
    throw new ReleaseMismatchError(
      `no release this agent knows (${RELEASES.map(describe).join(', ')}) can join ${describeControlPlane(cp)}`,
    );
  }
  const release = releaseNamed(setting);
  if (!release) throw new ReleaseMismatchError(`unknown Nova release ${setting}`);
  if (release.serviceVersion > cp.serviceVersion) {
    throw new ReleaseMismatchError(
      `[docker] nova_release = ${describe(release)} is newer than ${describeControlPlane(cp)}: ` +
        'a compute reporting a higher service version than its control plane breaks every compute RPC ' +
        'the control plane sends; set nova_release = auto or an older release',
    );
  }
  if (release.serviceVersion < cp.oldestSupported) {
    throw new ReleaseMismatchError(
      `[docker] nova_release = ${describe(release)} is older than ${describeControlPlane(cp)} supports: ` +
        'its services would refuse to start (TooOldComputeService) while this host is registered; ' +
        'set nova_release = auto or a newer release',
    );
  }
  return release;
}

/**
 * Asks the conductor for the control plane's service version
 * (Service.get_minimum_version('nova-conductor'): every conductor runs the
 * control plane's code, so the oldest of them is what it understands) and
 * selects the release. Waits for the conductor as nova-compute does.
 */
export async function resolveRelease(
  conductor: Conductor,
  ctx: RequestContext,
  setting: string,
  onWait: (attempt: number, err: unknown) => void,
): Promise<{ release: NovaRelease; controlPlane: ControlPlane }> {
  for (let attempt = 1; ; attempt++) {
    try {
      await conductor.ping(ctx, 10);
      break;
    } catch (err) {
      onWait(attempt, err);
    }
  }
  const v = await conductor.classAction(ctx, 'Service', 'get_minimum_version', ['nova-conductor']);
  if (typeof v !== 'number' || v <= 0) {
    throw new ReleaseMismatchError(
      `nova-conductor answered no service version for itself (${JSON.stringify(v)}): cannot tell the Nova release`,
    );
  }
  const controlPlane = controlPlaneFor(v);
  return { release: selectRelease(setting, controlPlane), controlPlane };
}
