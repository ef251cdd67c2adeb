import assert from 'node:assert/strict';
import { NovaError } from '../../../src/common/errors.js';
import { adminContext, contextFromMessage, contextToMessageFields } from '../../../src/rpc/context.js';
import { decodeEnvelope, encodeEnvelope } from '../../../src/rpc/envelope.js';
import { MalformedMessageError, UnsupportedEnvelopeVersionError } from '../../../src/rpc/errors.js';
import { deserializeFailure, serializeFailure } from '../../../src/rpc/failure.js';

describe('rpc/envelope', () => {
  it('wraps the message as a JSON string under oslo.message, version 2.0', () => {
    const body = JSON.parse(encodeEnvelope({ method: 'ping', args: { arg: 1 } }).toString()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['oslo.message', 'oslo.version']);
    assert.equal(body['oslo.version'], '2.0');
    assert.equal(typeof body['oslo.message'], 'string');
    assert.deepEqual(JSON.parse(body['oslo.message'] as string), { method: 'ping', args: { arg: 1 } });
  });

  it('round-trips', () => {
    const msg = { method: 'echo', args: { a: [1, 'x', null] }, _unique_id: 'u' };
    assert.deepEqual(decodeEnvelope(encodeEnvelope(msg)), msg);
  });

  it('decodes a message recorded from real Nova', () => {
    const raw =
      '{"oslo.version": "2.0", "oslo.message": "{\\"result\\": null, \\"failure\\": null, \\"ending\\": true, \\"_msg_id\\": \\"4962\\", \\"_unique_id\\": \\"814d\\"}"}';
    assert.deepEqual(decodeEnvelope(Buffer.from(raw)), {
      result: null,
      failure: null,
      ending: true,
      _msg_id: '4962',
      _unique_id: '814d',
    });
  });

  it('accepts an un-enveloped (1.0) dict as oslo does', () => {
    assert.deepEqual(decodeEnvelope(Buffer.from('{"method":"x"}')), { method: 'x' });
  });

  it('rejects non-JSON, non-objects, bad inner JSON', () => {
    assert.throws(() => decodeEnvelope(Buffer.from('not json')), MalformedMessageError);
    assert.throws(() => decodeEnvelope(Buffer.from('[1,2]')), MalformedMessageError);
    assert.throws(
      () => decodeEnvelope(Buffer.from('{"oslo.version":"2.0","oslo.message":"{broken"}')),
      MalformedMessageError,
    );
    assert.throws(
      () => decodeEnvelope(Buffer.from('{"oslo.version":"2.0","oslo.message":{"method":"x"}}')),
      MalformedMessageError,
    );
  });

  it('rejects envelope versions other than 2.0 with oslo’s class', () => {
    assert.throws(
      () => decodeEnvelope(Buffer.from('{"oslo.version":"2.1","oslo.message":"{}"}')),
      (err) => {
        assert.ok(err instanceof UnsupportedEnvelopeVersionError);
        assert.equal(err.novaClass, 'UnsupportedRpcEnvelopeVersion');
        return true;
      },
    );
    assert.throws(
      () => decodeEnvelope(Buffer.from('{"oslo.version":"3.0","oslo.message":"{}"}')),
      UnsupportedEnvelopeVersionError,
    );
  });
});

describe('rpc/context', () => {
  it('decodes _context_* keys and re-encodes them verbatim', () => {
    const msg = {
      method: 'build_and_run_instance',
      _context_request_id: 'req-1',
      _context_user_id: 'u1',
      _context_project_id: 'p1',
      _context_roles: ['member', 'reader'],
      _context_auth_token: 'gAAAA-secret',
      _context_is_admin: false,
      _context_service_catalog: [{ type: 'image' }],
    };
    const ctx = contextFromMessage(msg);
    assert.equal(ctx.request_id, 'req-1');
    assert.equal(ctx.user_id, 'u1');
    assert.equal(ctx.project_id, 'p1');
    assert.deepEqual(ctx.roles, ['member', 'reader']);
    assert.equal(ctx.auth_token, 'gAAAA-secret');
    assert.equal(ctx.is_admin, false);
    const { method: _m, ...ctxFields } = msg;
    assert.deepEqual(contextToMessageFields(ctx), ctxFields);
  });

  it('builds nova’s admin context', () => {
    const ctx = adminContext('req-x');
    assert.equal(ctx.is_admin, true);
    assert.equal(ctx.project_id, null);
    assert.equal(ctx.values.read_deleted, 'no');
    assert.match(String(ctx.values.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
    assert.equal(contextToMessageFields(ctx)._context_request_id, 'req-x');
  });
});

describe('rpc/failure', () => {
  it('serializes a NovaError as its Nova class with args [message] and kwargs', () => {
    const err = new NovaError('InstanceNotFound', 'Instance abc could not be found.', {
      instance_id: 'abc',
      code: 404,
    });
    const f = JSON.parse(serializeFailure(err)) as Record<string, unknown>;
    assert.equal(f.class, 'InstanceNotFound');
    assert.equal(f.module, 'nova.exception');
    assert.equal(f.message, 'Instance abc could not be found.');
    assert.deepEqual(f.args, ['Instance abc could not be found.']);
    assert.deepEqual(f.kwargs, { instance_id: 'abc', code: 404 });
    assert.ok(Array.isArray(f.tb));
  });

  it('serializes an unexpected error as builtins.Exception', () => {
    const f = JSON.parse(serializeFailure(new TypeError('oops'))) as Record<string, unknown>;
    assert.equal(f.class, 'Exception');
    assert.equal(f.module, 'builtins');
    assert.deepEqual(f.args, ['oops']);
  });

  it('deserializes a real nova failure into a RemoteError', () => {
    const e = deserializeFailure(
      '{"class": "ComputeHostNotFound", "module": "nova.exception", "message": "Compute host x could not be found.", "tb": ["Traceback"], "args": ["Compute host x could not be found."], "kwargs": {"host": "x", "code": 404}}',
    );
    assert.equal(e.excType, 'ComputeHostNotFound');
    assert.equal(e.excModule, 'nova.exception');
    assert.equal(e.value, 'Compute host x could not be found.');
    assert.deepEqual(e.remoteKwargs, { host: 'x', code: 404 });
  });

  it('survives a failure that is not JSON', () => {
    assert.equal(deserializeFailure('garbage{').excType, 'RemoteError');
  });
});
