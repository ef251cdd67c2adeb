/**
 * Load fault: 20 boots at once, half of them deleted while they are still
 * building (the API deletes a server without a host itself, so the agent's
 * build meets InstanceNotFound half-way), the rest deleted together once
 * ACTIVE. Nothing may be stuck, orphaned or leaked. Two cores: deadlines are
 * generous.
 */
import assert from 'node:assert/strict';
import {
  createServer,
  deleteAndWaitGone,
  deleteServer,
  Scenario,
  secondsSince,
  settled,
  waitServer,
} from './fault-lab.js';

const N = 20;

describe('faults: 20 concurrent boots and deletes', function () {
  this.timeout(900_000);
  const s = new Scenario('nd-faults-many');

  before(async () => {
    await s.setUp();
    // load the image once, so the 20 boots measure the agent and not the first docker load
    const warm = await s.bootActive('warm');
    await deleteAndWaitGone([warm.id]);
  });
  after(async () => await s.tearDown());

  it(`${N} boots at once, half deleted while building: all settle, no orphan container, no leaked allocation`, async () => {
    const t0 = performance.now();
    const ids = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const id = await createServer(s.host, s.imageId, `${s.host}-${i}`);
        s.created.add(id);
        // every other one is deleted right away, while it is still being built
        if (i % 2 === 1) await deleteServer(id);
        return id;
      }),
    );
    s.measured.postAllS = secondsSince(t0);
    const kept = ids.filter((_, i) => i % 2 === 0);
    const dropped = ids.filter((_, i) => i % 2 === 1);

    const ends = await Promise.all(kept.map((id) => waitServer(id, settled, 'settled', 600_000, 1000)));
    s.measured.keptSettledS = secondsSince(t0);
    const byStatus = ends.map((e) => `${e?.status}${e?.fault ? `: ${e.fault.message}` : ''}`);
    assert.deepEqual(
      byStatus.filter((x) => x !== 'ACTIVE'),
      [],
      'every boot that was not deleted is ACTIVE',
    );
    await Promise.all(dropped.map((id) => waitServer(id, (x) => x === undefined, 'gone', 600_000, 1000)));
    s.measured.droppedGoneS = secondsSince(t0);
    await s.consistent({ errorMeansNoContainer: true });

    const t1 = performance.now();
    await deleteAndWaitGone(kept, 600_000);
    s.measured.deleteKeptS = secondsSince(t1);
    const report = await s.consistent();
    assert.equal(report.live.length, 0);
    assert.equal(report.containers.length, 0);
  });
});
