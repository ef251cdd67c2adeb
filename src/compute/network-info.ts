/**
 * An instance's network_info as the driver takes it, from its info cache
 * (Nova's instance.get_network_info(): instance.info_cache.network_info).
 * The InstanceInfoCache's NetworkModel field crosses the wire as a JSON
 * string; older or hand-made primitives carry the list itself. Absent (no
 * info_cache loaded, none saved yet, `--nic none`): empty.
 */
import { AgentError } from '../common/errors.js';
import type { NovaObject } from '../objects/base.js';
import { isObjectPrimitive } from '../objects/base.js';
import type { VifModel } from '../virt/network-model.js';
import type { NetworkInfo } from '../virt/types.js';

export class NetworkInfoFormatError extends AgentError {}

/** Parses a network_info value (JSON string, list, or null) into NetworkInfo. */
export function parseNetworkInfo(value: unknown): NetworkInfo {
  if (value === null || value === undefined || value === '') return [];
  let v: unknown = value;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch (err) {
      throw new NetworkInfoFormatError(`network_info is not JSON: ${(err as Error).message}`, { cause: err });
    }
  }
  if (v === null) return [];
  if (!Array.isArray(v)) throw new NetworkInfoFormatError(`network_info is not a list: ${JSON.stringify(v)}`);
  return v.map((vif, i) => {
    if (typeof vif !== 'object' || vif === null || typeof (vif as { id?: unknown }).id !== 'string') {
      throw new NetworkInfoFormatError(`network_info[${i}] is not a VIF: ${JSON.stringify(vif)}`);
    }
    return vif as VifModel;
  });
}

/**
 * The network_info of `instance` (an Instance object, with info_cache
 * loaded for anything but an empty answer).
 */
export function networkInfoOf(instance: NovaObject): NetworkInfo {
  const cache = instance.get('info_cache');
  if (!isObjectPrimitive(cache)) return [];
  return parseNetworkInfo(cache['nova_object.data']['network_info']);
}
