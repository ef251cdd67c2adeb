/** Instance primitives from RPC → what the driver needs. */
import type { NovaObject } from '../objects/base.js';
import type { Flavor, ImageMeta, InstanceSpec } from '../virt/types.js';

function strRecord(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  }
  return out;
}

export function flavorOf(instance: NovaObject): Flavor {
  const f = instance.obj('flavor');
  const n = (field: string): number => f?.num(field) ?? instance.num(field) ?? 0;
  return {
    flavorid: f?.str('flavorid') ?? '',
    name: f?.str('name') ?? '',
    memory_mb: n('memory_mb'),
    vcpus: n('vcpus'),
    root_gb: n('root_gb'),
    ephemeral_gb: n('ephemeral_gb'),
    swap: f?.num('swap') ?? 0,
    extra_specs: strRecord(f?.get('extra_specs')),
  };
}

export function instanceSpec(instance: NovaObject, host: string): InstanceSpec {
  const s = (k: string): string | undefined => instance.str(k) ?? undefined;
  const spec: InstanceSpec = {
    uuid: s('uuid') ?? '',
    host: s('host') ?? host,
    metadata: strRecord(instance.get('metadata')),
    flavor: flavorOf(instance),
  };
  for (const k of ['hostname', 'display_name', 'project_id', 'user_id', 'node', 'image_ref'] as const) {
    const v = s(k);
    if (v !== undefined) spec[k] = v;
  }
  return spec;
}

/** The system_metadata the caller sent, or undefined when it was not loaded (never overwrite what we cannot see). */
export function loadedSystemMetadata(instance: NovaObject): Record<string, unknown> | undefined {
  const v = instance.get('system_metadata');
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/**
 * _nil_out_instance_obj_host_and_node: the fields of an instance that has
 * left its host (a failed build, an offload, a failed unshelve). Without a
 * host it is in no aggregate, so in no availability zone either.
 */
export function nilHostAndNode(): Record<string, null> {
  return { host: null, node: null, launched_on: null, availability_zone: null };
}

/** The `image` dict of build_and_run_instance (Glance metadata) → ImageMeta. */
export function imageMetaOf(image: unknown, imageRef: string | null): ImageMeta {
  const img = image && typeof image === 'object' ? (image as Record<string, unknown>) : {};
  const str = (k: string): string | undefined => (typeof img[k] === 'string' ? img[k] : undefined);
  const meta: ImageMeta = {
    id: str('id') ?? imageRef ?? '',
    properties: img.properties && typeof img.properties === 'object' ? (img.properties as Record<string, unknown>) : {},
  };
  for (const k of ['name', 'container_format', 'disk_format', 'checksum', 'os_hash_algo', 'os_hash_value'] as const) {
    const v = str(k);
    if (v !== undefined) meta[k] = v;
  }
  if (typeof img.size === 'number') meta.size = img.size;
  return meta;
}

/** Python's int() of a str: surrounding whitespace, a sign, digits with single underscores between them. */
const PY_INT = /^\s*[+-]?\d+(?:_\d+)*\s*$/;

/**
 * _get_power_off_values (nova/compute/manager.py) for the one power-off
 * timeout every path uses (stop, rebuild, resize, revert): not a clean
 * shutdown → 0 (killed at once); else the image's os_shutdown_timeout
 * (system_metadata image_os_shutdown_timeout) read as Python's int() reads
 * it, a value int() refuses (empty, "5.0", "abc") meaning the default as in
 * get_value_from_system_metadata; undefined = the default, which is the
 * driver's ([docker] stop_timeout standing in for nova's shutdown_timeout).
 * A negative value gives no clean shutdown at all in libvirt's power_off
 * (`if timeout:` … `range(timeout)`), so it is 0 here.
 */
export function shutdownTimeout(instance: NovaObject, cleanShutdown: boolean): number | undefined {
  if (!cleanShutdown) return 0;
  const sysmeta = instance.get('system_metadata');
  const v =
    sysmeta && typeof sysmeta === 'object' && !Array.isArray(sysmeta)
      ? (sysmeta as Record<string, unknown>).image_os_shutdown_timeout
      : undefined;
  if (typeof v !== 'string' || !PY_INT.test(v)) return undefined;
  return Math.max(0, Number(v.trim().replace(/_/g, '')));
}
