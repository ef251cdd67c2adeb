/**
 * The rest of Nova around a ComputeManager under unit test: Placement, the
 * scheduler's instance info, the manager itself on a FakeDriver around the
 * shared in-memory conductor (./fake-conductor.ts), and the instances and
 * guests tests start from. One set for every compute unit test.
 */
import { randomUUID } from 'node:crypto';
import { nullLogger, type Logger } from '../../src/common/log.js';
import { NotFoundError } from '../../src/clients/errors.js';
import type { ConsumerAllocations } from '../../src/clients/placement/types.js';
import type { PlacementReporter, SchedulerNotifier, SnapshotImageApi } from '../../src/compute/collaborators.js';
import { ComputeManager, type ComputeManagerOptions } from '../../src/compute/manager.js';
import { instanceSpec } from '../../src/compute/instance.js';
import { NovaObject, type ObjectPrimitive } from '../../src/objects/base.js';
import { ZED } from '../../src/objects/releases.js';
import { FakeDriver } from '../../src/virt/fake/driver.js';
import { PowerState } from '../../src/virt/power-state.js';
import type { NetworkInfo } from '../../src/virt/types.js';
import { FakeConductor } from './fake-conductor.js';

export const HOST = 'cmp1';

/** A Flavor 1.2 primitive, as Nova embeds it in the instance. */
export function flavor(id: number, name: string, memory_mb: number, vcpus: number): ObjectPrimitive {
  return NovaObject.create('Flavor', '1.2', {
    id,
    flavorid: String(id),
    name,
    memory_mb,
    vcpus,
    root_gb: 1,
    ephemeral_gb: 0,
    swap: 0,
    extra_specs: {},
  }).toPrimitive();
}

/** The flavor instances start with (newInstance gives each its own copy). */
export const TINY = flavor(1, 'm1.tiny', 512, 1);

/**
 * An instance row in the conductor: ACTIVE and running on HOST with
 * m1.tiny unless `fields` say otherwise (a build passes building/scheduling,
 * no host). `primitive` is the instance as the API casts it (nothing
 * changed); `row()` is the conductor's row as the flow leaves it.
 */
export function newInstance(conductor: FakeConductor, fields: Record<string, unknown> = {}, version = '2.7') {
  const uuid = typeof fields.uuid === 'string' ? fields.uuid : randomUUID();
  const data: Record<string, unknown> = {
    id: conductor.rows.size + 1,
    uuid,
    vm_state: 'active',
    task_state: null,
    power_state: PowerState.RUNNING,
    host: HOST,
    node: HOST,
    image_ref: 'img-1',
    instance_type_id: 1,
    memory_mb: 512,
    vcpus: 1,
    metadata: {},
    system_metadata: {},
    flavor: flavor(1, 'm1.tiny', 512, 1), // not TINY itself: no two rows share a mutable primitive
    ...fields,
  };
  conductor.rows.set(uuid, { ...data });
  const primitive = new NovaObject('Instance', version, data).toPrimitive();
  return { uuid, primitive, row: () => conductor.row(uuid) };
}

/**
 * Placement as the manager sees it: consumers (instance or migration uuid) →
 * { provider → resources }, moved and deleted as report.py does, and every
 * instance whose allocations were deleted. A test that does not seed
 * consumers sees none held, which is all the non-move flows need.
 */
export class FakePlacement implements PlacementReporter {
  readonly consumers = new Map<string, Record<string, Record<string, number>>>();
  /** deleteAllocations calls, in order. */
  readonly deleted: string[] = [];
  /** moveAllocations calls: [source, target]. */
  readonly moves: Array<[string, string]> = [];
  synced = 0;
  /** The `disabled` (COMPUTE_STATUS_DISABLED) of the last syncProvider. */
  disabled: boolean | undefined;
  syncProvider(_ctx: unknown, _node: unknown, _r: unknown, disabled: boolean): Promise<void> {
    this.synced++;
    this.disabled = disabled;
    return Promise.resolve();
  }
  deleteAllocations(_ctx: unknown, uuid: string): Promise<void> {
    this.deleted.push(uuid);
    this.consumers.delete(uuid);
    return Promise.resolve();
  }
  getAllocations(_ctx: unknown, uuid: string): Promise<ConsumerAllocations> {
    const a = this.consumers.get(uuid) ?? {};
    return Promise.resolve({
      allocations: Object.fromEntries(Object.entries(a).map(([rp, r]) => [rp, { resources: r }])),
    });
  }
  moveAllocations(_ctx: unknown, source: string, target: string): Promise<boolean> {
    this.moves.push([source, target]);
    const src = this.consumers.get(source);
    // already moved (a retried step) counts as moved, as in report.py
    if (!src) return Promise.resolve(this.consumers.has(target));
    this.consumers.set(target, src);
    this.consumers.delete(source);
    return Promise.resolve(true);
  }
  deleteMigrationAllocations(_ctx: unknown, uuid: string): Promise<boolean> {
    return Promise.resolve(this.consumers.delete(uuid));
  }
}

/** Glance as the manager sees it around a snapshot: records and what was deleted. */
export class FakeImages implements SnapshotImageApi {
  readonly records = new Map<string, { id: string; status: string; created_at?: string }>();
  readonly deleted: string[] = [];
  listed: unknown;
  showImage(_ctx: unknown, id: string) {
    const r = this.records.get(id);
    return r
      ? Promise.resolve(r)
      : Promise.reject(new NotFoundError('gone', { service: 'glance', method: 'GET', path: id }));
  }
  deleteImage(_ctx: unknown, id: string) {
    this.deleted.push(id);
    return this.records.delete(id)
      ? Promise.resolve()
      : Promise.reject(new NotFoundError('gone', { service: 'glance', method: 'DELETE', path: id }));
  }
  listImages(_ctx: unknown, q: unknown) {
    this.listed = q;
    return Promise.resolve(
      [...this.records.values()].sort((a, b) => String(b.created_at).localeCompare(String(a.created_at))),
    );
  }
}

/** The scheduler's instance-info casts, as `update|delete <uuid>` and `sync <count>`. */
export class FakeScheduler implements SchedulerNotifier {
  readonly casts: string[] = [];
  updateInstanceInfo(_c: unknown, _h: string, i: NovaObject): Promise<void> {
    this.casts.push(`update ${i.str('uuid')}`);
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

/** build_and_run_instance's `image`: a docker-format busybox with `properties`. */
export function bootImage(properties: Record<string, unknown> = {}) {
  return { id: 'img-1', name: 'busybox', container_format: 'docker', disk_format: 'raw', properties };
}

/** A NetworkRequestList primitive (build_and_run_instance's `requested_networks`) of NetworkRequest `items`. */
export function networkRequests(...items: Array<Partial<Record<string, string>>>): ObjectPrimitive {
  return {
    'nova_object.name': 'NetworkRequestList',
    'nova_object.namespace': 'nova',
    'nova_object.version': '1.1',
    'nova_object.data': {
      objects: items.map((d) => ({
        'nova_object.name': 'NetworkRequest',
        'nova_object.namespace': 'nova',
        'nova_object.version': '1.3',
        'nova_object.data': d,
      })),
    },
  };
}

/**
 * A guest on the fake hypervisor, spawned as the driver does (console and
 * all), then put in `state`. `instance` is the instance's row, so the guest
 * carries its flavor and host, or a bare uuid for a guest Nova may not know.
 * `networkInfo`: the VIFs spawn plugs (none unless given).
 */
export async function addGuest(
  driver: FakeDriver,
  instance: string | Record<string, unknown>,
  state: PowerState = PowerState.RUNNING,
  networkInfo: NetworkInfo = [],
): Promise<void> {
  const row = typeof instance === 'string' ? { uuid: instance } : instance;
  const spec = instanceSpec(new NovaObject('Instance', '2.7', row), HOST);
  await driver.spawn({}, spec, { id: 'img-1', properties: {} }, [], undefined, undefined, networkInfo);
  driver.guests.get(spec.uuid)!.state = state;
}

/** Glance, the image API and the compute caster a test may hand the manager (ComputeManager's last argument). */
export type ManagerServices = NonNullable<ConstructorParameters<typeof ComputeManager>[6]>;

/**
 * A ComputeManager for HOST on a FakeDriver, with the fakes above. The
 * intervals only matter once a test calls manager.start(): then recovery and
 * the power-state sync run, the periodic resource update does not (0).
 */
export function setup(
  opts: Partial<ComputeManagerOptions> = {},
  services: ManagerServices = {},
  logger: Logger = nullLogger(),
) {
  const conductor = new FakeConductor();
  const driver = new FakeDriver({ host: HOST });
  const placement = new FakePlacement();
  const scheduler = new FakeScheduler();
  const manager = new ComputeManager(
    conductor,
    driver,
    placement,
    scheduler,
    {
      host: HOST,
      release: ZED,
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
    logger,
    services,
  );
  return { conductor, driver, placement, scheduler, manager };
}

export type Env = ReturnType<typeof setup>;
