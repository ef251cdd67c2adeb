/**
 * Nova's conductor in memory for the lifecycle and recovery tests: instance
 * rows, Instance.get_by_uuid, InstanceList.get_by_host / get_by_filters,
 * saves with expected_task_state (as Instance.save enforces it), destroy,
 * faults and action events. Plus a ComputeManager on a FakeDriver around it.
 */
import { randomUUID } from 'node:crypto';
import { nullLogger } from '../../../src/common/log.js';
import { ComputeManager, type ComputeManagerOptions, type PlacementReporter } from '../../../src/compute/manager.js';
import { NovaObject } from '../../../src/objects/base.js';
import type { ConductorAPI } from '../../../src/objects/conductor.js';
import { RELEASES } from '../../../src/objects/releases.js';
import { RemoteError } from '../../../src/rpc/errors.js';
import { FakeDriver } from '../../../src/virt/fake/driver.js';
import { PowerState } from '../../../src/virt/power-state.js';
import type { InstanceSpec } from '../../../src/virt/types.js';

export const HOST = 'cmp-lc';

export interface Save {
  uuid: string;
  fields: Record<string, unknown>;
  expected: unknown;
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

export class FakeNovaConductor {
  readonly rows = new Map<string, Record<string, unknown>>();
  readonly saves: Save[] = [];
  readonly faults: Array<Record<string, unknown>> = [];
  readonly events: Array<{ kind: string; args: unknown[] }> = [];
  readonly destroyed: string[] = [];
  readonly calls: string[] = [];

  ping(): Promise<unknown> {
    return Promise.resolve({ service: 'conductor' });
  }

  classAction(_ctx: unknown, objname: string, objmethod: string, args: unknown[]): Promise<unknown> {
    this.calls.push(`${objname}.${objmethod}`);
    if (objname === 'InstanceActionEvent') this.events.push({ kind: objmethod, args });
    if (objname === 'InstanceList' && objmethod === 'get_by_host') {
      return Promise.resolve(instanceList([...this.rows.values()].filter((r) => r.host === args[0])));
    }
    if (objname === 'InstanceList' && objmethod === 'get_by_filters') {
      const f = args[0] as { uuid?: string[] };
      return Promise.resolve(
        instanceList([...this.rows.values()].filter((r) => !f.uuid || f.uuid.includes(String(r.uuid)))),
      );
    }
    return Promise.resolve(null);
  }

  classActionObject(_ctx: unknown, objname: string, objmethod: string, args: unknown[]): Promise<NovaObject | null> {
    this.calls.push(`${objname}.${objmethod}`);
    if (objname === 'Instance' && objmethod === 'get_by_uuid') {
      const row = this.rows.get(String(args[0]));
      if (!row) return Promise.reject(notFound(String(args[0])));
      const o = NovaObject.create('Instance', '2.7', row);
      o.resetChanges();
      return Promise.resolve(o);
    }
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
    if (!row) return Promise.reject(notFound(uuid));
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
          new RemoteError(klass, 'nova.exception', `Unexpected task state ${String(row.task_state)}`),
        );
      }
    }
    const fields: Record<string, unknown> = {};
    for (const c of obj.changes) fields[c] = obj.get(c);
    Object.assign(row, fields);
    this.saves.push({ uuid, fields, expected });
    obj.applyUpdates({ obj_what_changed: [] });
    return Promise.resolve(null);
  }

  /** An instance row on `host` (default: ours), ACTIVE and running unless told. */
  addInstance(fields: Record<string, unknown> = {}): string {
    const uuid = (fields.uuid as string | undefined) ?? randomUUID();
    this.rows.set(uuid, {
      id: this.rows.size + 1,
      uuid,
      vm_state: 'active',
      task_state: null,
      power_state: PowerState.RUNNING,
      host: HOST,
      node: HOST,
      image_ref: 'img-1',
      ...fields,
    });
    return uuid;
  }

  row(uuid: string): Record<string, unknown> {
    const r = this.rows.get(uuid);
    if (!r) throw new Error(`no row ${uuid}`);
    return r;
  }
}

export class FakePlacement implements PlacementReporter {
  readonly deleted: string[] = [];
  syncProvider(): Promise<void> {
    return Promise.resolve();
  }
  deleteAllocations(_ctx: unknown, uuid: string): Promise<void> {
    this.deleted.push(uuid);
    return Promise.resolve();
  }
  getAllocations() {
    return Promise.resolve({ allocations: {} });
  }
  moveAllocations(): Promise<boolean> {
    return Promise.resolve(true);
  }
  deleteMigrationAllocations(): Promise<boolean> {
    return Promise.resolve(false);
  }
}

export class FakeScheduler {
  readonly casts: string[] = [];
  updateInstanceInfo(): Promise<void> {
    return Promise.resolve();
  }
  deleteInstanceInfo(_c: unknown, _h: string, uuid: string): Promise<void> {
    this.casts.push(`delete ${uuid}`);
    return Promise.resolve();
  }
  syncInstanceInfo(_c: unknown, _h: string, uuids: string[]): Promise<void> {
    this.casts.push(`sync ${uuids.length}`);
    return Promise.resolve();
  }
}

export function spec(uuid: string): InstanceSpec {
  return {
    uuid,
    host: HOST,
    metadata: {},
    flavor: {
      flavorid: '1',
      name: 'm1',
      memory_mb: 64,
      vcpus: 1,
      root_gb: 1,
      ephemeral_gb: 0,
      swap: 0,
      extra_specs: {},
    },
  };
}

/** A guest on the fake hypervisor in `state`. */
export function addGuest(driver: FakeDriver, uuid: string, state: PowerState = PowerState.RUNNING): void {
  driver.guests.set(uuid, {
    instance: spec(uuid),
    image: { id: 'img-1', properties: {} },
    state,
    console: [],
    networkInfo: [],
  });
}

export function setup(opts: Partial<ComputeManagerOptions> = {}) {
  const conductor = new FakeNovaConductor();
  const driver = new FakeDriver({ host: HOST });
  const placement = new FakePlacement();
  const scheduler = new FakeScheduler();
  const manager = new ComputeManager(
    conductor as unknown as ConductorAPI,
    driver,
    placement,
    scheduler,
    {
      host: HOST,
      release: RELEASES.zed!,
      reportIntervalS: 3600,
      resourceIntervalS: 0,
      syncPowerStateIntervalS: 3600,
      schedulerSyncIntervalS: 0,
      myIp: '127.0.0.1',
      allocationRatios: { cpu: 16, ram: 1.5, disk: 1 },
      reservedHostMemoryMb: 0,
      reservedHostDiskMb: 0,
      ...opts,
    },
    nullLogger(),
  );
  return { conductor, driver, placement, scheduler, manager };
}
