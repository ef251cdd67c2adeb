/**
 * A streaming filter for `docker save` archives on their way to `docker load`.
 *
 * It walks the tar headers as the bytes pass (no buffering beyond one header,
 * extended headers and manifest.json), and rewrites manifest.json so that its
 * RepoTags are empty: a Glance image then never moves a tag on the host (an
 * archive tagged `busybox:latest`, or `nova-glance/<someone else's id>:…`,
 * would otherwise retag whatever the host had under that name). The agent
 * tags the loaded image itself. The manifest's single entry tells which image
 * the archive holds (its config digest = the image ID).
 *
 * It fails, instead of passing the bytes on, when the data is not a tar
 * archive, when manifest.json is missing (legacy or OCI-only archives) or
 * names other than exactly one image, and when the archive is cut short.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { AgentError } from '../../common/errors.js';

export class ArchiveError extends AgentError {}

export interface ArchiveManifest {
  /** manifest.json Config path (`<hex>.json` or `blobs/sha256/<hex>`). */
  config: string;
  /** `sha256:<hex>` derived from the config path, when it has that shape. */
  imageId: string | undefined;
  /** RepoTags the archive carried (removed before docker sees them). */
  repoTags: string[];
  layers: number;
}

const BLOCK = 512;
const MAX_MANIFEST = 4 * 1024 * 1024;
const MAX_EXTENDED = 1024 * 1024;
/** Types whose size field does not announce data (as Go's archive/tar, which dockerd uses). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

function padded(size: number): number {
  return Math.ceil(size / BLOCK) * BLOCK;
}

function cstring(b: Buffer, start: number, end: number): string {
  const field = b.subarray(start, end);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? field.length : nul).toString('utf8');
}

function parseNumeric(field: Buffer, what: string, offset: number): number {
  const first = field[0] ?? 0;
  if (first & 0x80) {
    // GNU base-256: big-endian, the top bit of the first byte is the marker.
    let n = first & 0x7f;
    for (let i = 1; i < field.length; i++) n = n * 256 + (field[i] ?? 0);
    if (!Number.isSafeInteger(n)) throw new ArchiveError(`tar ${what} too large at byte ${offset}`);
    return n;
  }
  const s = field
    .toString('latin1')
    .replace(/[\0 ]+$/g, '')
    .replace(/^[\0 ]+/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new ArchiveError(`not a tar archive: bad ${what} field at byte ${offset}`);
  return parseInt(s, 8);
}

function checksumOf(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
  return sum;
}

function signedChecksumOf(header: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header.readInt8(i);
  return sum;
}

function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp === -1) break;
    const len = parseInt(data.toString('latin1', pos, sp), 10);
    if (!Number.isFinite(len) || len <= 0 || pos + len > data.length) break;
    const rec = data.toString('utf8', sp + 1, pos + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0) out.set(rec.slice(0, eq), rec.slice(eq + 1));
    pos += len;
  }
  return out;
}

function normalizeName(name: string): string {
  return name.replace(/^(\.\/|\/)+/, '');
}

/** `sha256:<hex>` from a manifest Config path. */
export function imageIdFromConfig(config: string): string | undefined {
  const base = config.split('/').pop() ?? '';
  const hex = base.replace(/\.json$/, '');
  return /^[a-f0-9]{64}$/.test(hex) ? `sha256:${hex}` : undefined;
}

/** A ustar header for `name` (≤ 100 bytes) based on `orig`, with a new size and checksum. */
function rewriteHeader(orig: Buffer, name: string, size: number): Buffer {
  const h = Buffer.from(orig);
  h.fill(0, 0, 100);
  h.write(name, 0, 100, 'utf8');
  h.fill(0, 345, 500); // prefix
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 12, 'latin1');
  h.write('0', 156, 1, 'latin1');
  h.write(`${checksumOf(h).toString(8).padStart(6, '0')}\0 `, 148, 8, 'latin1');
  return h;
}

type State =
  | { kind: 'header' }
  | { kind: 'pass'; remaining: number }
  | {
      kind: 'collect';
      size: number;
      remaining: number;
      chunks: Buffer[];
      for: 'pax' | 'gnu-name' | 'hold' | 'manifest';
    }
  | { kind: 'end' };

export class DockerArchiveFilter extends Transform {
  #state: State = { kind: 'header' };
  #header = Buffer.alloc(BLOCK);
  #headerFill = 0;
  #offset = 0;
  /** Raw bytes of extended headers waiting for the entry they describe. */
  #pendingRaw: Buffer[] = [];
  #pax = new Map<string, string>();
  #gnuName: string | undefined;
  #entryHeader: Buffer | undefined;
  #manifest: ArchiveManifest | undefined;

  /** The archive's manifest, once it has passed. */
  get manifest(): ArchiveManifest | undefined {
    return this.#manifest;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.#consume(chunk);
      cb();
    } catch (err) {
      cb(err instanceof Error ? err : new ArchiveError(String(err)));
    }
  }

  override _flush(cb: TransformCallback): void {
    const s = this.#state;
    const atBoundary = s.kind === 'end' || (s.kind === 'header' && this.#headerFill === 0);
    if (!atBoundary) {
      cb(new ArchiveError(`archive truncated at byte ${this.#offset}`));
      return;
    }
    if (!this.#manifest) {
      cb(new ArchiveError('archive has no manifest.json: not a `docker save` archive'));
      return;
    }
    cb();
  }

  #consume(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      const s = this.#state;
      if (s.kind === 'end') {
        this.push(pos === 0 ? chunk : chunk.subarray(pos));
        this.#offset += chunk.length - pos;
        return;
      }
      if (s.kind === 'pass') {
        const n = Math.min(s.remaining, chunk.length - pos);
        this.push(chunk.subarray(pos, pos + n));
        pos += n;
        this.#offset += n;
        s.remaining -= n;
        if (s.remaining === 0) this.#state = { kind: 'header' };
        continue;
      }
      if (s.kind === 'collect') {
        const n = Math.min(s.remaining, chunk.length - pos);
        s.chunks.push(Buffer.from(chunk.subarray(pos, pos + n)));
        pos += n;
        this.#offset += n;
        s.remaining -= n;
        if (s.remaining === 0) this.#collected(s);
        continue;
      }
      // header
      const n = Math.min(BLOCK - this.#headerFill, chunk.length - pos);
      chunk.copy(this.#header, this.#headerFill, pos, pos + n);
      this.#headerFill += n;
      pos += n;
      this.#offset += n;
      if (this.#headerFill === BLOCK) {
        this.#headerFill = 0;
        this.#onHeader(Buffer.from(this.#header));
      }
    }
  }

  #onHeader(h: Buffer): void {
    const at = this.#offset - BLOCK;
    if (h.every((b) => b === 0)) {
      if (this.#pendingRaw.length > 0) throw new ArchiveError(`tar extended header without an entry at byte ${at}`);
      this.push(h);
      this.#state = { kind: 'end' };
      return;
    }
    const stored = parseNumeric(h.subarray(148, 156), 'checksum', at);
    if (stored !== checksumOf(h) && stored !== signedChecksumOf(h)) {
      throw new ArchiveError(`not a tar archive: bad header checksum at byte ${at}`);
    }
    const type = String.fromCharCode(h[156] ?? 0);
    const size = parseNumeric(h.subarray(124, 136), 'size', at);
    if (type === 'x' || type === 'L' || type === 'K') {
      if (size > MAX_EXTENDED) throw new ArchiveError(`tar extended header too large at byte ${at}`);
      this.#pendingRaw.push(h);
      const forWhat = type === 'x' ? 'pax' : type === 'L' ? 'gnu-name' : 'hold';
      this.#startCollect(padded(size), size, forWhat);
      return;
    }
    if (type === 'g') {
      this.push(h);
      this.#startPass(padded(size));
      return;
    }
    const ustarPosix = h.toString('latin1', 257, 263) === 'ustar\0';
    const prefix = ustarPosix ? cstring(h, 345, 500) : '';
    const base = cstring(h, 0, 100);
    const name = normalizeName(this.#pax.get('path') ?? this.#gnuName ?? (prefix ? `${prefix}/${base}` : base));
    const paxSize = this.#pax.get('size');
    const effSize = HEADER_ONLY.has(type) ? 0 : paxSize !== undefined ? Number(paxSize) : size;
    if (!Number.isSafeInteger(effSize) || effSize < 0) throw new ArchiveError(`bad tar entry size at byte ${at}`);
    this.#pax = new Map();
    this.#gnuName = undefined;
    if (name === 'manifest.json' && (type === '0' || type === '\0' || type === '7')) {
      if (this.#manifest) throw new ArchiveError('archive has more than one manifest.json');
      if (effSize > MAX_MANIFEST) throw new ArchiveError('manifest.json is too large');
      this.#pendingRaw = []; // the rewritten header replaces them
      this.#entryHeader = h;
      this.#startCollect(padded(effSize), effSize, 'manifest');
      return;
    }
    for (const raw of this.#pendingRaw) this.push(raw);
    this.#pendingRaw = [];
    this.push(h);
    this.#startPass(padded(effSize));
  }

  #startPass(n: number): void {
    this.#state = n === 0 ? { kind: 'header' } : { kind: 'pass', remaining: n };
  }

  #startCollect(total: number, size: number, forWhat: 'pax' | 'gnu-name' | 'hold' | 'manifest'): void {
    const s: State = { kind: 'collect', size, remaining: total, chunks: [], for: forWhat };
    if (total === 0) this.#collected(s);
    else this.#state = s;
  }

  #collected(s: Extract<State, { kind: 'collect' }>): void {
    const raw = Buffer.concat(s.chunks);
    const data = raw.subarray(0, s.size);
    this.#state = { kind: 'header' };
    switch (s.for) {
      case 'pax':
        this.#pendingRaw.push(raw);
        for (const [k, v] of parsePax(data)) this.#pax.set(k, v);
        return;
      case 'gnu-name':
        this.#pendingRaw.push(raw);
        this.#gnuName = cstring(data, 0, data.length);
        return;
      case 'hold':
        this.#pendingRaw.push(raw);
        return;
      case 'manifest':
        this.#onManifest(data);
        return;
    }
  }

  #onManifest(data: Buffer): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(data.toString('utf8'));
    } catch {
      throw new ArchiveError('manifest.json is not valid JSON');
    }
    if (!Array.isArray(parsed)) throw new ArchiveError('manifest.json is not a list');
    if (parsed.length !== 1) {
      throw new ArchiveError(`archive holds ${parsed.length} images; exactly one is expected`);
    }
    const entry = parsed[0] as Record<string, unknown> | null;
    if (entry === null || typeof entry !== 'object' || typeof entry.Config !== 'string') {
      throw new ArchiveError('manifest.json entry has no Config');
    }
    const layers = Array.isArray(entry.Layers) ? entry.Layers.length : 0;
    const repoTags = Array.isArray(entry.RepoTags)
      ? (entry.RepoTags as unknown[]).filter((t): t is string => typeof t === 'string')
      : [];
    this.#manifest = { config: entry.Config, imageId: imageIdFromConfig(entry.Config), repoTags, layers };
    entry.RepoTags = [];
    const out = Buffer.from(JSON.stringify(parsed), 'utf8');
    const header = rewriteHeader(this.#entryHeader ?? Buffer.alloc(BLOCK), 'manifest.json', out.length);
    this.#entryHeader = undefined;
    this.push(header);
    this.push(out);
    const pad = padded(out.length) - out.length;
    if (pad > 0) this.push(Buffer.alloc(pad));
  }
}
