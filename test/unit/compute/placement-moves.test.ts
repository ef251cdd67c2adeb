/** report.py move_allocations and delete_allocation_for_instance(force=False), on a fake placement client. */
import assert from 'node:assert/strict';
import { nullLogger } from '../../../src/common/log.js';
import { NovaError } from '../../../src/common/errors.js';
import type { PlacementAllocations } from '../../../src/clients/placement/index.js';
import type {
  AllocationWrite,
  AllocationWriteResult,
  ConsumerAllocations,
} from '../../../src/clients/placement/types.js';
import { deleteAllocationChecked, moveAllocations } from '../../../src/compute/placement-reporter.js';
import { adminContext } from '../../../src/rpc/context.js';

class FakeClient implements PlacementAllocations {
  consumers: Record<string, ConsumerAllocations> = {};
  posts: Array<Record<string, AllocationWrite>> = [];
  puts: Array<[string, AllocationWrite]> = [];
  answers: AllocationWriteResult[] = [];
  getAllocations(c: string): Promise<ConsumerAllocations> {
    return Promise.resolve(this.consumers[c] ?? { allocations: {} });
  }
  postAllocations(body: Record<string, AllocationWrite>): Promise<AllocationWriteResult> {
    this.posts.push(body);
    return Promise.resolve(this.answers.shift() ?? { ok: true });
  }
  putAllocations(c: string, body: AllocationWrite): Promise<AllocationWriteResult> {
    this.puts.push([c, body]);
    return Promise.resolve(this.answers.shift() ?? { ok: true });
  }
}

const ctx = adminContext();
const held = (gen: number): ConsumerAllocations => ({
  allocations: { rp1: { resources: { VCPU: 1, MEMORY_MB: 512 }, generation: 9 } },
  consumer_generation: gen,
  project_id: 'p',
  user_id: 'u',
});

describe('compute/placement-reporter: allocation moves', () => {
  it('move_allocations: one POST, source emptied with its generation, target gets the resources', async () => {
    const c = new FakeClient();
    c.consumers.mig = held(3);
    assert.equal(await moveAllocations(c, ctx, 'mig', 'inst', nullLogger()), true);
    assert.deepEqual(c.posts, [
      {
        mig: { allocations: {}, project_id: 'p', user_id: 'u', consumer_generation: 3 },
        inst: {
          allocations: { rp1: { resources: { VCPU: 1, MEMORY_MB: 512 } } },
          project_id: 'p',
          user_id: 'u',
          consumer_generation: null,
        },
      },
    ]);
  });

  it('already moved (source empty, target held): true without a POST', async () => {
    const c = new FakeClient();
    c.consumers.inst = held(1);
    assert.equal(await moveAllocations(c, ctx, 'mig', 'inst', nullLogger()), true);
    assert.equal(c.posts.length, 0);
  });

  it('a consumer generation conflict is AllocationMoveFailed; a provider one is retried', async () => {
    const c = new FakeClient();
    c.consumers.mig = held(3);
    c.answers = [
      { ok: false, status: 409, code: 'placement.concurrent_update', detail: 'consumer generation conflict' },
    ];
    await assert.rejects(
      moveAllocations(c, ctx, 'mig', 'inst', nullLogger()),
      (e: unknown) => e instanceof NovaError && e.novaClass === 'AllocationMoveFailed',
    );
    c.answers = [
      { ok: false, status: 409, code: 'placement.concurrent_update', detail: 'resource provider generation' },
    ];
    assert.equal(await moveAllocations(c, ctx, 'mig', 'inst', nullLogger()), true);
    assert.equal(c.posts.length, 3);
  });

  it('delete (force=False): PUT of empty allocations with the consumer generation; nothing held → false', async () => {
    const c = new FakeClient();
    assert.equal(await deleteAllocationChecked(c, ctx, 'mig'), false);
    c.consumers.mig = held(5);
    assert.equal(await deleteAllocationChecked(c, ctx, 'mig'), true);
    assert.deepEqual(c.puts, [['mig', { allocations: {}, project_id: 'p', user_id: 'u', consumer_generation: 5 }]]);
    c.answers = [{ ok: false, status: 409, detail: 'consumer generation conflict' }];
    await assert.rejects(
      deleteAllocationChecked(c, ctx, 'mig'),
      (e: unknown) => e instanceof NovaError && e.novaClass === 'AllocationDeleteFailed',
    );
  });
});
