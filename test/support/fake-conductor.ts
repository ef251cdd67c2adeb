/**
 * Nova's conductor, in memory, for unit tests of the compute manager and its
 * action modules: instance rows, saves that enforce expected_task_state the
 * way nova's Instance.save does, Migration rows and their saves, the
 * migration context, faults and instance action events. One fake for every
 * compute unit test, so each flow runs against the same conductor semantics.
 */
import { randomUUID } from 'node:crypto';
import { NovaObject } from '../../src/objects/base.js';
import type { Conductor } from '../../src/objects/conductor.js';
import { versionAtLeast } from '../../src/objects/releases.js';
import { RemoteError } from '../../src/rpc/errors.js';

/** One object_action save as the conductor received it. */
export interface Save {
  /** The object saved: 'Instance', 'Migration' or 'ShareMapping'. */
  obj: string;
  /** The object version it was sent at. */
  version: string;
  uuid: string;
  changes: string[];
  fields: Record<string, unknown>;
  /** The expected_task_state kwarg (undefined: the save was not guarded). */
  expected: unknown;
}

/** InstanceActionEvent.event_start / event_finish_with_failure, as called. */
export interface ActionEvent {
  kind: string;
  /** [context, event name, instance uuid, …] as the manager passes them. */
  args: unknown[];
  /** exc_val, exc_tb, want_result: null/undefined on success. */
  kwargs: Record<string, unknown>;
}

function notFound(uuid: string): RemoteError {
  return new RemoteError('InstanceNotFound', 'nova.exception', `Instance ${uuid} could not be found.`);
}

function instanceList(rows: Array<Record<string, unknown>>) {
  return {
    'nova_object.name': 'InstanceList',
    'nova_object.namespace': 'nova',
    'nova_object.version': '2.6',
    'nova_object.data': { objects: rows.map((r) => NovaObject.create('Instance', '2.7', r).toPrimitive()) },
  };
}

/** Nova's conductor, in memory: instance and migration rows, guarded saves, faults, events. */
export class FakeConductor implements Conductor {
  readonly rows = new Map<string, Record<string, unknown>>();
  /** Migration rows by id (what prep_resize and the resize steps save). */
  readonly migrations = new Map<number, Record<string, unknown>>();
  readonly saves: Save[] = [];
  readonly faults: Array<Record<string, unknown>> = [];
  readonly events: ActionEvent[] = [];
  readonly destroyed: string[] = [];
  /** `Object.method` of each class action, and the object actions tests look for. */
  readonly calls: string[] = [];
  /** Instances that vanish at their next save: a delete racing the flow under test. */
  readonly deleteOnSave = new Set<string>();
  /** ComputeNode rows by uuid (ComputeNode.create, get_by_uuid, get_by_host_and_nodename). */
  readonly nodes = new Map<string, Record<string, unknown>>();
  /** The Service row (create, then every save's fields applied), as Service.get_by_host_and_binary finds it. */
  service: Record<string, unknown> | undefined;
  /** Service saves with their changed fields (report_state's and any other). */
  readonly serviceWrites: Array<Record<string, unknown>> = [];
  /** ComputeNode create/save calls: the method and the fields it sent. */
  readonly computeNodeWrites: Array<{ method: string; fields: Record<string, unknown> }> = [];
  /** Soft-deleted rows (deleted_at set): what read_deleted="yes" still finds. */
  readonly deletedRows = new Map<string, Record<string, unknown>>();
  /** VirtualInterface rows by port uuid (VirtualInterface.create, destroy, delete_by_instance_uuid). */
  readonly vifs = new Map<string, Record<string, unknown>>();
  /** instance_info_caches.network_info by instance uuid, as saved (Nova's JSON string). */
  readonly infoCaches = new Map<string, string | null>();

  /** The API's own delete (the host looked down): the row is deleted, the host is not told. */
  localDelete(uuid: string, deletedAt = new Date()): void {
    const row = this.rows.get(uuid);
    if (!row) return;
    this.rows.delete(uuid);
    this.deletedRows.set(uuid, { ...row, vm_state: 'deleted', deleted: true, deleted_at: deletedAt.toISOString() });
  }

  ping(): Promise<unknown> {
    return Promise.resolve({ service: 'conductor' });
  }

  classAction(
    _ctx: unknown,
    objname: string,
    objmethod: string,
    args: unknown[],
    kwargs: Record<string, unknown> = {},
  ): Promise<unknown> {
    this.calls.push(`${objname}.${objmethod}`);
    if (objname === 'InstanceActionEvent') this.events.push({ kind: objmethod, args, kwargs });
    if (objname === 'VirtualInterface' && objmethod === 'delete_by_instance_uuid') {
      for (const [k, v] of this.vifs) if (v.instance_uuid === args[0]) this.vifs.delete(k);
      return Promise.resolve(null);
    }
    if (objname === 'InstanceList' && objmethod === 'get_by_host') {
      return Promise.resolve(instanceList([...this.rows.values()].filter((r) => r.host === args[0])));
    }
    if (objname === 'InstanceList' && objmethod === 'get_by_host_and_node') {
      return Promise.resolve(
        instanceList([...this.rows.values()].filter((r) => r.host === args[0] && r.node === args[1])),
      );
    }
    if (objname === 'InstanceList' && objmethod === 'get_by_filters') {
      // instance_get_all_by_filters_sort: without a `deleted` filter deleted rows come too (read_deleted is not applied)
      const f = args[0] as { uuid?: string[]; deleted?: boolean } & Record<string, unknown>;
      const rows =
        f.deleted === true
          ? [...this.deletedRows.values()]
          : f.deleted === false
            ? [...this.rows.values()]
            : [...this.rows.values(), ...this.deletedRows.values()];
      // the column filters the manager uses (_poll_shelved_instances), as exact matches
      const columns = ['vm_state', 'task_state', 'host'].filter((k) => k in f);
      const match = (r: Record<string, unknown>) =>
        (!f.uuid || f.uuid.includes(String(r.uuid))) && columns.every((k) => (r[k] ?? null) === f[k]);
      return Promise.resolve(instanceList(rows.filter(match)));
    }
    return Promise.resolve(null);
  }

  classActionObject(_ctx: unknown, objname: string, objmethod: string, args: unknown[]): Promise<NovaObject | null> {
    this.calls.push(`${objname}.${objmethod}`);
    if (objname === 'Instance' && objmethod === 'get_by_uuid') {
      const row = this.rows.get(String(args[0]));
      if (!row) return Promise.reject(notFound(String(args[0])));
      // as loaded from the DB: nothing changed yet
      return Promise.resolve(new NovaObject('Instance', '2.7', { ...row }));
    }
    if (objname === 'Service' && objmethod === 'get_by_host_and_binary') {
      const row = this.service;
      return Promise.resolve(row && row.host === args[0] ? new NovaObject('Service', '1.22', { ...row }) : null);
    }
    if (objname === 'ComputeNode') {
      const found = [...this.nodes.values()].find((n) =>
        objmethod === 'get_by_uuid' ? n.uuid === args[0] : n.host === args[0] && n.hypervisor_hostname === args[1],
      );
      if (!found) return Promise.reject(new RemoteError('ComputeHostNotFound', 'nova.exception', 'not found'));
      return Promise.resolve(new NovaObject('ComputeNode', '1.19', { ...found }));
    }
    if (objname === 'InstanceInfoCache' && objmethod === 'get_by_instance_uuid') {
      const uuid = String(args[0]);
      if (!this.infoCaches.has(uuid)) {
        return Promise.reject(new RemoteError('InstanceInfoCacheNotFound', 'nova.exception', `no cache for ${uuid}`));
      }
      return Promise.resolve(
        new NovaObject('InstanceInfoCache', '1.5', { instance_uuid: uuid, network_info: this.infoCaches.get(uuid) }),
      );
    }
    if (objname === 'VirtualInterface' && objmethod === 'get_by_uuid') {
      const row = this.vifs.get(String(args[0]));
      return Promise.resolve(row ? new NovaObject('VirtualInterface', '1.3', { ...row }) : null);
    }
    if (objname === 'MigrationContext') {
      const mc = this.rows.get(String(args[0]))?.migration_context;
      return Promise.resolve(mc ? NovaObject.fromPrimitive(mc) : null);
    }
    return Promise.resolve(null);
  }

  objectAction(
    _ctx: unknown,
    obj: NovaObject,
    objmethod: string,
    _args: unknown[] = [],
    kwargs: Record<string, unknown> = {},
  ): Promise<null> {
    if (obj.name === 'Service' || obj.name === 'ComputeNode') {
      if (obj.name === 'Service') {
        this.calls.push(`Service.${objmethod} report_count=${String(obj.get('report_count'))}`);
        const fields = Object.fromEntries(obj.changes.map((c) => [c, obj.get(c)]));
        this.serviceWrites.push(fields);
        if (objmethod === 'create') this.service = { id: 1, disabled: false, ...obj.toPrimitive()['nova_object.data'] };
        else Object.assign(this.service ?? {}, fields);
      } else
        this.computeNodeWrites.push({
          method: objmethod,
          fields: Object.fromEntries(obj.changes.map((c) => [c, obj.get(c)])),
        });
      if (objmethod === 'create') {
        const id = obj.name === 'ComputeNode' ? this.nodes.size + 1 : 1;
        // as ComputeNode.create: the uuid the compute chose (its compute_id file), else a new one
        obj.applyUpdates({ id, uuid: obj.str('uuid') ?? randomUUID(), obj_what_changed: [] });
      }
      if (obj.name === 'ComputeNode') this.nodes.set(obj.str('uuid') ?? '', obj.toPrimitive()['nova_object.data']);
      return Promise.resolve(null);
    }
    if (obj.name === 'VirtualInterface') {
      const uuid = obj.str('uuid') ?? '';
      this.calls.push(`VirtualInterface.${objmethod}`);
      if (objmethod === 'create') {
        const id = this.vifs.size + 1;
        this.vifs.set(uuid, { ...obj.toPrimitive()['nova_object.data'], id });
        obj.applyUpdates({ id, obj_what_changed: [] });
      } else if (objmethod === 'destroy') {
        this.vifs.delete(uuid);
      }
      return Promise.resolve(null);
    }
    if (obj.name === 'InstanceInfoCache') {
      const uuid = obj.str('instance_uuid') ?? '';
      this.calls.push(`InstanceInfoCache.${objmethod}`);
      if (objmethod === 'save') {
        if (!this.rows.has(uuid)) return Promise.reject(notFound(uuid));
        this.infoCaches.set(uuid, obj.str('network_info'));
      } else if (objmethod === 'refresh' && this.infoCaches.has(uuid)) {
        obj.applyUpdates({ network_info: this.infoCaches.get(uuid), obj_what_changed: [] });
        return Promise.resolve(null);
      }
      obj.applyUpdates({ obj_what_changed: [] });
      return Promise.resolve(null);
    }
    if (obj.name === 'InstanceFault') {
      this.faults.push(obj.toPrimitive()['nova_object.data']);
      return Promise.resolve(null);
    }
    const fields: Record<string, unknown> = {};
    for (const c of obj.changes) fields[c] = obj.get(c);
    if (obj.name === 'ShareMapping' || obj.name === 'Migration') {
      if (obj.name === 'Migration') Object.assign(this.migrations.get(obj.num('id') ?? 0) ?? {}, fields);
      this.saves.push({
        obj: obj.name,
        version: obj.version,
        uuid: obj.str('uuid') ?? '',
        changes: obj.changes,
        fields,
        expected: undefined,
      });
      obj.applyUpdates({ obj_what_changed: [] });
      return Promise.resolve(null);
    }
    const uuid = obj.str('uuid') ?? '';
    const row = this.rows.get(uuid);
    if (!row || this.deleteOnSave.has(uuid)) return Promise.reject(notFound(uuid));
    if (objmethod === 'destroy') {
      this.localDelete(uuid);
      this.destroyed.push(uuid);
      return Promise.resolve(null);
    }
    if (objmethod === 'drop_migration_context') {
      row.migration_context = null;
      this.calls.push('drop_migration_context');
      obj.applyUpdates({ migration_context: null, obj_what_changed: [] });
      return Promise.resolve(null);
    }
    const expected = kwargs.expected_task_state;
    if (expected !== undefined) {
      const allowed = Array.isArray(expected) ? expected : [expected];
      if (!allowed.includes(row.task_state ?? null)) {
        const klass = row.task_state === 'deleting' ? 'UnexpectedDeletingTaskStateError' : 'UnexpectedTaskStateError';
        return Promise.reject(
          new RemoteError(
            klass,
            'nova.exception',
            `Unexpected task state: expecting ${JSON.stringify(allowed)} but the actual state is ${String(row.task_state)}`,
          ),
        );
      }
    }
    // Instance.save in nova 2023.1+: a 2.8 object must pair every node change with compute_id
    if (versionAtLeast(obj.version, '2.8') && obj.changes.includes('node') && !obj.changes.includes('compute_id')) {
      return Promise.reject(
        new RemoteError('ObjectActionError', 'nova.exception', 'Instance.node is being updated but compute_id is not'),
      );
    }
    Object.assign(row, fields);
    this.saves.push({ obj: 'Instance', version: obj.version, uuid, changes: obj.changes, fields, expected });
    obj.applyUpdates({ obj_what_changed: [] });
    return Promise.resolve(null);
  }

  /** The row of `uuid`; throws when there is none, so a test fails where it looks. */
  row(uuid: string): Record<string, unknown> {
    const r = this.rows.get(uuid);
    if (!r) throw new Error(`no row ${uuid}`);
    return r;
  }
}
