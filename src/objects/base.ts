/**
 * oslo.versionedobjects primitives (protocol ref §2.1): a NovaObject keeps
 * the data exactly as received and records which fields we changed, so a
 * save sends back everything loaded plus `nova_object.changes`.
 */
export const NS = 'nova';

export interface ObjectPrimitive {
  'nova_object.name': string;
  'nova_object.namespace': string;
  'nova_object.version': string;
  'nova_object.data': Record<string, unknown>;
  'nova_object.changes'?: string[];
}

export function isObjectPrimitive(v: unknown): v is ObjectPrimitive {
  return (
    typeof v === 'object' &&
    v !== null &&
    typeof (v as Record<string, unknown>)['nova_object.name'] === 'string' &&
    typeof (v as Record<string, unknown>)['nova_object.data'] === 'object'
  );
}

export class ObjectFormatError extends Error {}

export class NovaObject {
  private readonly changed = new Set<string>();

  constructor(
    readonly name: string,
    readonly version: string,
    private data: Record<string, unknown>,
    changes: Iterable<string> = [],
  ) {
    for (const c of changes) this.changed.add(c);
  }

  static fromPrimitive(p: unknown, expectName?: string): NovaObject {
    if (!isObjectPrimitive(p)) throw new ObjectFormatError(`not a versioned object primitive: ${JSON.stringify(p)}`);
    if (p['nova_object.namespace'] !== NS) {
      throw new ObjectFormatError(`unsupported object namespace ${String(p['nova_object.namespace'])}`);
    }
    const name = p['nova_object.name'];
    if (expectName && name !== expectName) throw new ObjectFormatError(`expected a ${expectName}, got a ${name}`);
    // 1.2.3 → 1.2, as nova's serializer does
    const version = String(p['nova_object.version']).split('.').slice(0, 2).join('.');
    return new NovaObject(name, version, { ...p['nova_object.data'] }, p['nova_object.changes'] ?? []);
  }

  static create(name: string, version: string, fields: Record<string, unknown>): NovaObject {
    return new NovaObject(name, version, { ...fields }, Object.keys(fields));
  }

  has(field: string): boolean {
    return Object.hasOwn(this.data, field);
  }

  get(field: string): unknown {
    return this.data[field];
  }

  str(field: string): string | null {
    const v = this.data[field];
    return typeof v === 'string' ? v : null;
  }

  num(field: string): number | null {
    const v = this.data[field];
    return typeof v === 'number' ? v : null;
  }

  /** A nested object field, decoded. */
  obj(field: string): NovaObject | null {
    const v = this.data[field];
    return isObjectPrimitive(v) ? NovaObject.fromPrimitive(v) : null;
  }

  set(field: string, value: unknown): this {
    this.data[field] = value;
    this.changed.add(field);
    return this;
  }

  /** Sets several fields; only those whose value differs are marked changed. */
  update(fields: Record<string, unknown>): this {
    for (const [k, v] of Object.entries(fields)) {
      if (!this.has(k) || JSON.stringify(this.data[k]) !== JSON.stringify(v)) this.set(k, v);
    }
    return this;
  }

  get changes(): string[] {
    return [...this.changed].sort();
  }

  /**
   * Applies the `updates` of an object_action reply (ovo/base.py:208-224):
   * new field values, then changes = exactly `obj_what_changed`.
   */
  applyUpdates(updates: unknown): void {
    if (typeof updates !== 'object' || updates === null) return;
    const u = updates as Record<string, unknown>;
    for (const [k, v] of Object.entries(u)) if (k !== 'obj_what_changed') this.data[k] = v;
    this.changed.clear();
    if (Array.isArray(u.obj_what_changed)) for (const c of u.obj_what_changed) this.changed.add(String(c));
  }

  resetChanges(): void {
    this.changed.clear();
  }

  toPrimitive(): ObjectPrimitive {
    const p: ObjectPrimitive = {
      'nova_object.name': this.name,
      'nova_object.namespace': NS,
      'nova_object.version': this.version,
      'nova_object.data': { ...this.data },
    };
    if (this.changed.size > 0) p['nova_object.changes'] = this.changes;
    return p;
  }
}

/** DateTimeField encoding: UTC, no microseconds, `Z` (ovo/_utils.py). */
export function novaDateTime(d = new Date()): string {
  return `${d.toISOString().slice(0, 19)}Z`;
}

/** ListOfObjects primitive → its member objects. */
export function listObjects(p: unknown): NovaObject[] {
  if (!isObjectPrimitive(p)) return [];
  const objects = p['nova_object.data'].objects;
  return Array.isArray(objects) ? objects.map((o) => NovaObject.fromPrimitive(o)) : [];
}
