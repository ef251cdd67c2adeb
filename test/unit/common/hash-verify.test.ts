import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HashMismatchError, HashVerifier, SizeMismatchError, nodeHashName } from '../../../src/common/hash-verify.js';

const DATA = Buffer.from('a'.repeat(100_000));
const SHA512 = createHash('sha512').update(DATA).digest('hex');

function chunks(buf: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) out.push(buf.subarray(i, i + size));
  return out;
}

async function run(v: HashVerifier, input: Buffer[]): Promise<{ out: Buffer; err?: unknown; ended: boolean }> {
  const got: Buffer[] = [];
  const sink = new PassThrough();
  let ended = false;
  sink.on('data', (c: Buffer) => got.push(c));
  sink.on('end', () => (ended = true));
  try {
    await pipeline(Readable.from(input), v, sink);
    return { out: Buffer.concat(got), ended };
  } catch (err) {
    return { out: Buffer.concat(got), err, ended };
  }
}

describe('common/hash-verify', () => {
  it('passes the data through and marks it verified', async () => {
    const v = new HashVerifier({ algo: 'sha512', value: SHA512.toUpperCase() }, { expectedSize: DATA.length });
    const r = await run(v, chunks(DATA, 7000));
    assert.equal(r.err, undefined);
    assert.ok(r.out.equals(DATA));
    assert.equal(v.verified, true);
    assert.equal(v.bytes, DATA.length);
  });

  it('fails on a mismatch without ever passing the last chunk', async () => {
    const v = new HashVerifier({ algo: 'sha512', value: 'ab'.repeat(64) });
    const input = chunks(DATA, 7000);
    const r = await run(v, input);
    assert.ok(r.err instanceof HashMismatchError);
    assert.equal(v.verified, false);
    assert.equal(r.ended, false);
    assert.equal(r.out.length, DATA.length - (input.at(-1)?.length ?? 0));
  });

  it('fails a short stream on size and a long one as soon as it grows past the size', async () => {
    const short = new HashVerifier({ algo: 'sha512', value: SHA512 }, { expectedSize: DATA.length + 1 });
    const r1 = await run(short, chunks(DATA, 10_000));
    assert.ok(r1.err instanceof SizeMismatchError);
    assert.equal(r1.err.actualSize, DATA.length);
    const long = new HashVerifier({ algo: 'sha512', value: SHA512 }, { expectedSize: 50_000 });
    const r2 = await run(long, chunks(DATA, 10_000));
    assert.ok(r2.err instanceof SizeMismatchError);
    assert.equal(long.bytes, 60_000);
  });

  it('supports md5 and hashlib spellings', () => {
    assert.equal(nodeHashName('md5'), 'md5');
    assert.equal(nodeHashName('SHA512'), 'sha512');
    assert.equal(nodeHashName('sha3_512'), 'sha3-512');
    assert.equal(nodeHashName('nosuch'), undefined);
    assert.throws(() => new HashVerifier({ algo: 'nosuch', value: 'x' }), /unsupported/);
  });
});
