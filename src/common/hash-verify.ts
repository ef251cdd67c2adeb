/**
 * A pass-through stream that hashes what flows through it and fails at the
 * end when the digest (or the byte count) is not the expected one.
 *
 * The last chunk is held back until the digest is checked, so a consumer
 * never sees a complete stream whose hash did not match: on a mismatch the
 * stream errors instead of ending. A stream longer than the expected size
 * fails as soon as it grows past it.
 */
import { createHash, getHashes, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { AgentError } from './errors.js';

export interface ExpectedDigest {
  /** Glance's os_hash_algo spelling ('sha512', 'sha3_512', …) or 'md5'. */
  algo: string;
  /** Hex digest. */
  value: string;
}

export class HashMismatchError extends AgentError {
  constructor(
    message: string,
    readonly algo: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(message);
  }
}

export class SizeMismatchError extends AgentError {
  constructor(
    message: string,
    readonly expectedSize: number,
    readonly actualSize: number,
  ) {
    super(message);
  }
}

/** Node's name for a Glance/hashlib algorithm name, or undefined when Node lacks it. */
export function nodeHashName(algo: string): string | undefined {
  const a = algo.toLowerCase().replace(/_/g, '-');
  const available = getHashes();
  if (available.includes(a)) return a;
  const dashless = a.replace(/-/g, '');
  return available.includes(dashless) ? dashless : undefined;
}

export class HashVerifier extends Transform {
  readonly expected: ExpectedDigest;
  readonly expectedSize: number | undefined;
  #hash: Hash;
  #held: Buffer | undefined;
  #bytes = 0;
  #digest: string | undefined;
  #verified = false;

  constructor(expected: ExpectedDigest, opts: { expectedSize?: number | undefined } = {}) {
    super();
    const name = nodeHashName(expected.algo);
    if (!name) throw new AgentError(`unsupported hash algorithm ${expected.algo}`);
    this.expected = { algo: expected.algo, value: expected.value.toLowerCase() };
    this.expectedSize = opts.expectedSize;
    this.#hash = createHash(name);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The computed hex digest, once the input ended. */
  get digest(): string | undefined {
    return this.#digest;
  }

  /** True once the whole input was seen and matched. */
  get verified(): boolean {
    return this.#verified;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#hash.update(chunk);
    this.#bytes += chunk.length;
    if (this.expectedSize !== undefined && this.#bytes > this.expectedSize) {
      cb(
        new SizeMismatchError(
          `data is longer than the expected ${this.expectedSize} bytes`,
          this.expectedSize,
          this.#bytes,
        ),
      );
      return;
    }
    const prev = this.#held;
    this.#held = chunk;
    if (prev) this.push(prev);
    cb();
  }

  override _flush(cb: TransformCallback): void {
    this.#digest = this.#hash.digest('hex');
    if (this.expectedSize !== undefined && this.#bytes !== this.expectedSize) {
      cb(
        new SizeMismatchError(
          `data ended after ${this.#bytes} of the expected ${this.expectedSize} bytes`,
          this.expectedSize,
          this.#bytes,
        ),
      );
      return;
    }
    if (this.#digest !== this.expected.value) {
      cb(
        new HashMismatchError(
          `${this.expected.algo} of the data is ${this.#digest.slice(0, 16)}…, expected ${this.expected.value.slice(0, 16)}…`,
          this.expected.algo,
          this.expected.value,
          this.#digest,
        ),
      );
      return;
    }
    this.#verified = true;
    if (this.#held) this.push(this.#held);
    this.#held = undefined;
    cb();
  }
}
