import assert from 'node:assert/strict';
import { SingleFlight, singleFlight } from '../../../src/common/single-flight.js';

function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: Error) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('common/single-flight', () => {
  it('shares one in-flight promise per key and runs other keys separately', async () => {
    const g = new SingleFlight<string, number>();
    let runs = 0;
    const d = deferred<number>();
    const fn = (): Promise<number> => {
      runs++;
      return d.promise;
    };
    const ps = [g.run('a', fn), g.run('a', fn), g.run('a', fn)];
    const other = g.run('b', () => Promise.resolve(7));
    assert.equal(runs, 1);
    assert.equal(g.size, 2);
    d.resolve(42);
    assert.deepEqual(await Promise.all(ps), [42, 42, 42]);
    assert.equal(await other, 7);
    assert.equal(g.size, 0);
  });

  it('removes the entry after success, so the next call runs again', async () => {
    const g = new SingleFlight<string, number>();
    let runs = 0;
    await g.run('k', () => Promise.resolve(++runs));
    assert.equal(g.has('k'), false);
    assert.equal(await g.run('k', () => Promise.resolve(++runs)), 2);
  });

  it('shares a failure with every waiter and does not cache it', async () => {
    const g = new SingleFlight<string, number>();
    const d = deferred<number>();
    const a = g.run('k', () => d.promise);
    const b = g.run('k', () => Promise.resolve(1));
    d.reject(new Error('boom'));
    await assert.rejects(a, /boom/);
    await assert.rejects(b, /boom/);
    assert.equal(g.has('k'), false);
    assert.equal(await g.run('k', () => Promise.resolve(5)), 5);
  });

  it('turns a synchronous throw into a rejection and keeps no entry', async () => {
    const g = new SingleFlight<string, number>();
    await assert.rejects(
      g.run('k', () => {
        throw new Error('sync');
      }),
      /sync/,
    );
    assert.equal(g.size, 0);
  });

  it('singleFlight() wraps a keyed function', async () => {
    let runs = 0;
    const f = singleFlight(async (k: string) => {
      runs++;
      await new Promise((r) => setTimeout(r, 5));
      return k.toUpperCase();
    });
    assert.deepEqual(await Promise.all([f('x'), f('x'), f('y')]), ['X', 'X', 'Y']);
    assert.equal(runs, 2);
  });
});
