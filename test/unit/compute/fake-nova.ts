/**
 * A ComputeManager on a FakeDriver around the shared in-memory conductor
 * (test/support/fake-conductor.ts), for the lifecycle and recovery tests.
 */
import { randomUUID } from 'node:crypto';
import { nullLogger } from '../../../src/common/log.js';
import { ComputeManager, type ComputeManagerOptions, type PlacementReporter } from '../../../src/compute/manager.js';
import type { ConductorAPI } from '../../../src/objects/conductor.js';
import { RELEASES } from '../../../src/objects/releases.js';
import { FakeDriver } from '../../../src/virt/fake/driver.js';
import { PowerState } from '../../../src/virt/power-state.js';
import type { InstanceSpec } from '../../../src/virt/types.js';
import { FakeConductor } from '../../support/fake-conductor.js';

export const HOST = 'cmp-lc';

/** The shared conductor fake, plus the rows these tests start from. */
export class FakeNovaConductor extends FakeConductor {
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
