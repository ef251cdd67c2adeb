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
