/**
 * Nova's conductor, in memory, for unit tests of the compute manager and its
 * action modules: instance rows, saves that enforce expected_task_state the
 * way nova's Instance.save does, faults and instance action events.
 */
import { randomUUID } from 'node:crypto';
import { NovaObject } from '../../src/objects/base.js';
import { RemoteError } from '../../src/rpc/errors.js';

export interface Save {
  uuid: string;
  changes: string[];
  fields: Record<string, unknown>;
  expected: unknown;
}

/** Nova's conductor, in memory: instance rows, saves with expected_task_state, faults, events. */
export class FakeConductor {
  readonly rows = new Map<string, Record<string, unknown>>();
  readonly saves: Save[] = [];
  readonly faults: Array<Record<string, unknown>> = [];
  readonly events: Array<{ kind: string; args: unknown[]; kwargs: Record<string, unknown> }> = [];
  readonly destroyed: string[] = [];
  deleteOnSave = new Set<string>();

  ping(): Promise<unknown> {
    return Promise.resolve({ service: 'conductor' });
  }

  classAction(
    _ctx: unknown,
    objname: string,
    objmethod: string,
    args: unknown[],
    kwargs: Record<string, unknown> = {},
  ) {
    if (objname === 'InstanceActionEvent') this.events.push({ kind: objmethod, args, kwargs });
    if (objname === 'InstanceList' && objmethod === 'get_by_host') {
      return Promise.resolve({
        'nova_object.name': 'InstanceList',
        'nova_object.namespace': 'nova',
        'nova_object.version': '2.6',
        'nova_object.data': {
          objects: [...this.rows.values()]
            .filter((r) => r.host === args[0])
            .map((r) => NovaObject.create('Instance', '2.7', r).toPrimitive()),
        },
      });
    }
    return Promise.resolve(null);
  }

  classActionObject(): Promise<NovaObject | null> {
    return Promise.resolve(null);
  }

  objectAction(
    _ctx: unknown,
    obj: NovaObject,
    objmethod: string,
    _args: unknown[] = [],
    kwargs: Record<string, unknown> = {},
  ) {
    if (obj.name === 'Service' || obj.name === 'ComputeNode') {
      if (objmethod === 'create') obj.applyUpdates({ id: 1, uuid: randomUUID(), obj_what_changed: [] });
      return Promise.resolve(null);
    }
    if (obj.name === 'InstanceFault') {
      this.faults.push(obj.toPrimitive()['nova_object.data']);
      return Promise.resolve(null);
    }
    const uuid = obj.str('uuid') ?? '';
    const row = this.rows.get(uuid);
    if (!row || this.deleteOnSave.has(uuid)) {
      return Promise.reject(
        new RemoteError('InstanceNotFound', 'nova.exception', `Instance ${uuid} could not be found.`),
      );
    }
    if (objmethod === 'destroy') {
      this.rows.delete(uuid);
      this.destroyed.push(uuid);
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
    const fields: Record<string, unknown> = {};
    for (const c of obj.changes) fields[c] = obj.get(c);
    Object.assign(row, fields);
    this.saves.push({ uuid, changes: obj.changes, fields, expected });
    obj.applyUpdates({ obj_what_changed: [] });
    return Promise.resolve(null);
  }
}
