import assert from 'node:assert/strict';
import { adminContext } from '../../../src/rpc/context.js';
import { Dispatcher, dispatchTarget, versionIsCompatible, type Endpoint } from '../../../src/rpc/dispatcher.js';
import { MalformedMessageError, NoSuchMethodError, UnsupportedVersionError } from '../../../src/rpc/errors.js';
import { baseApiEndpoint } from '../../../src/rpc/baseapi.js';

describe('rpc/dispatcher', () => {
  const calls: string[] = [];
  const compute: Endpoint = {
    namespace: null,
    version: '6.1',
    methods: {
      get_host_uptime: () => 'up',
      echo: (_ctx, args) => {
        calls.push('echo');
        return args;
      },
    },
  };
  const v5: Endpoint = { namespace: null, version: '5.13', methods: { legacy: () => 'v5' } };
  const d = new Dispatcher([compute, v5, baseApiEndpoint('compute')]);
  const ctx = adminContext();
  const target = (method: string, version?: string, namespace?: string) =>
    dispatchTarget({ method, args: {}, ...(version ? { version } : {}), ...(namespace ? { namespace } : {}) });

  it('follows oslo’s version_is_compatible', () => {
    assert.ok(versionIsCompatible('6.1', '6.0'));
    assert.ok(versionIsCompatible('6.1', '6.1'));
    assert.ok(!versionIsCompatible('6.1', '6.2'));
    assert.ok(!versionIsCompatible('6.1', '5.0'));
    assert.ok(!versionIsCompatible('6.1', '7.0'));
    assert.ok(versionIsCompatible('1.1.2', '1.1.1'));
    assert.ok(!versionIsCompatible('1.1', '1.1.1'));
    assert.ok(!versionIsCompatible('6.1', 'x.y'));
  });

  it('dispatches to the compatible endpoint with the method', async () => {
    assert.equal(await d.dispatch(ctx, target('get_host_uptime', '6.0')), 'up');
    assert.equal(await d.dispatch(ctx, target('legacy', '5.0')), 'v5');
    assert.deepEqual(await d.dispatch(ctx, dispatchTarget({ method: 'echo', version: '6.1', args: { a: 1 } })), {
      a: 1,
    });
  });

  it('answers baseapi ping in its namespace', async () => {
    const r = await d.dispatch(ctx, dispatchTarget({ method: 'ping', namespace: 'baseapi', args: { arg: 'x' } }));
    assert.deepEqual(r, { service: 'compute', arg: 'x' });
  });

  it('NoSuchMethod when a compatible endpoint lacks the method', () => {
    assert.throws(
      () => d.resolve(target('resize_instance', '6.0')),
      (err) => {
        assert.ok(err instanceof NoSuchMethodError);
        assert.equal(err.message, 'Endpoint does not support RPC method resize_instance');
        assert.equal(err.novaModule, 'oslo_messaging.rpc.dispatcher');
        return true;
      },
    );
  });

  it('UnsupportedVersion when no endpoint is compatible, with oslo’s message', () => {
    assert.throws(
      () => d.resolve(target('get_host_uptime', '6.2')),
      (err) => {
        assert.ok(err instanceof UnsupportedVersionError);
        assert.equal(err.message, 'Endpoint does not support RPC version 6.2. Attempted method: get_host_uptime');
        return true;
      },
    );
    // a missing version means 1.0, which only baseapi-like endpoints serve
    assert.throws(() => d.resolve(target('get_host_uptime')), UnsupportedVersionError);
    // unknown namespace: nothing compatible
    assert.throws(() => d.resolve(target('ping', '1.0', 'nope')), UnsupportedVersionError);
  });

  it('never exposes private or inherited names', () => {
    assert.throws(() => d.resolve(target('constructor', '6.0')), NoSuchMethodError);
    assert.throws(() => d.resolve(target('__proto__', '6.0')), NoSuchMethodError);
  });

  it('rejects malformed targets', () => {
    assert.throws(() => dispatchTarget({ args: {} }), MalformedMessageError);
    assert.throws(() => dispatchTarget({ method: 'x', args: [1] }), MalformedMessageError);
    assert.throws(() => dispatchTarget({ method: 'x', version: 6 }), MalformedMessageError);
  });
});
