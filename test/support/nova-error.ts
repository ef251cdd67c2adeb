/** Assertions on the NovaErrors a call fails with (the image tests, unit and integration). */
import assert from 'node:assert/strict';
import { NovaError } from '../../src/common/errors.js';

/** `err`, asserted to be NovaError `klass`. */
export function novaError(err: unknown, klass: string): NovaError {
  assert.ok(err instanceof NovaError, `expected NovaError ${klass}, got ${String(err)}`);
  assert.equal(err.novaClass, klass, err.message);
  return err;
}

/** What `p` rejects with; fails the test when it resolves. */
export async function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => assert.fail('expected a failure'),
    (e: unknown) => e,
  );
}
