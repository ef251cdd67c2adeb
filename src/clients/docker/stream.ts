/**
 * Helpers for the Engine's streamed bodies: the 8-byte-header multiplexed
 * stdout/stderr format of logs/attach (containers without a TTY), and the
 * JSON-lines format of events, pull and load progress.
 */

/** Stream ids in the multiplexed format's header byte 0. */
export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;

export interface Frame {
  stream: number;
  payload: Buffer;
}

/**
 * Incremental demultiplexer: push chunks as they arrive, get whole frames back.
 * Each frame is `[stream, 0, 0, 0, size(uint32 BE)]` followed by `size` bytes.
 */
export class FrameDemuxer {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    const out: Frame[] = [];
    let off = 0;
    while (this.pending.length - off >= 8) {
      const stream = this.pending.readUInt8(off);
      const size = this.pending.readUInt32BE(off + 4);
      if (this.pending.length - off - 8 < size) break;
      out.push({ stream, payload: this.pending.subarray(off + 8, off + 8 + size) });
      off += 8 + size;
    }
    this.pending = this.pending.subarray(off);
    return out;
  }

  /**
   * Whatever is left at end of stream: the payload part of a frame cut short
   * (a truncated stream), or empty. The header of a cut frame is dropped.
   */
  flush(): Frame | undefined {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    if (rest.length <= 8) return undefined;
    return { stream: rest.readUInt8(0), payload: rest.subarray(8) };
  }
}

/** Whether `buf` starts like a multiplexed frame header (stream 0..2, three zero bytes). */
export function looksMultiplexed(buf: Buffer): boolean {
  if (buf.length < 8) return false;
  const s = buf.readUInt8(0);
  return s <= 2 && buf.readUInt8(1) === 0 && buf.readUInt8(2) === 0 && buf.readUInt8(3) === 0;
}

/** Demultiplexes a whole buffer; stdout and stderr interleaved in arrival order. */
export function demuxBuffer(buf: Buffer): Buffer {
  const d = new FrameDemuxer();
  const frames = d.push(buf);
  const last = d.flush();
  if (last) frames.push(last);
  return Buffer.concat(frames.map((f) => f.payload));
}

/** Keeps only the last `max` bytes appended (a memory-bounded tail). */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly max: number) {}

  append(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.size += b.length;
    // Compact once we hold twice the cap, so appends stay amortised O(1).
    if (this.size > this.max * 2 || this.chunks.length > 1024) this.compact();
  }

  private compact(): void {
    const all = Buffer.concat(this.chunks);
    const kept = all.length > this.max ? all.subarray(all.length - this.max) : all;
    this.chunks = [Buffer.from(kept)];
    this.size = kept.length;
  }

  toBuffer(): Buffer {
    this.compact();
    return this.chunks[0] ?? Buffer.alloc(0);
  }
}

/** Thrown by `jsonLines` when the body ends inside a line that is not valid JSON. */
export class TruncatedStreamError extends Error {
  constructor(readonly fragment: string) {
    super(`stream ended inside a JSON line (${fragment.length} bytes: ${fragment.slice(0, 80)})`);
  }
}

/**
 * Parses a JSON-lines body (one JSON value per line, "\n" or "\r\n"). Blank
 * lines are skipped; a last line without newline is parsed if it is complete
 * JSON, otherwise `TruncatedStreamError`. Errors of the source propagate.
 */
export async function* jsonLines(source: AsyncIterable<Buffer | string>): AsyncGenerator<unknown> {
  let carry = '';
  const decoder = new TextDecoder('utf-8');
  for await (const chunk of source) {
    carry += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = carry.indexOf('\n')) >= 0) {
      const line = carry.slice(0, nl).trim();
      carry = carry.slice(nl + 1);
      if (line) yield parseLine(line);
    }
  }
  carry += decoder.decode();
  const last = carry.trim();
  if (last) {
    let v: unknown;
    try {
      v = JSON.parse(last);
    } catch {
      throw new TruncatedStreamError(last);
    }
    yield v;
  }
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    // A complete line that is not JSON: pass it on as a stream message.
    return { stream: line };
  }
}

/** One message of a container's log as `GET /logs?timestamps=1` gives it: the Engine's time, then the bytes untouched. */
export interface LogEntry {
  /** The Engine's RFC 3339 UTC timestamp of the message, '' when the message had none. */
  time: string;
  /** STDOUT, STDERR, or STDIN (0) for the raw stream of a TTY container. */
  stream: number;
  data: Buffer;
}

const LOG_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;

/** Splits the `<RFC 3339 time> ` prefix timestamps=1 puts on a message; without one the message is kept whole. */
export function splitLogTimestamp(payload: Buffer): { time: string; data: Buffer } {
  const sp = payload.indexOf(0x20);
  if (sp > 0 && sp <= 40) {
    const time = payload.subarray(0, sp).toString('latin1');
    if (LOG_TIME.test(time)) return { time, data: payload.subarray(sp + 1) };
  }
  return { time: '', data: payload };
}

/**
 * The newest log entries whose data add up to at most `maxBytes` (whole
 * entries; the newest one alone is cut to its last `maxBytes` bytes).
 */
export class LogEntryTail {
  private entries: LogEntry[] = [];
  private head = 0;
  private size = 0;

  constructor(private readonly maxBytes: number) {}

  push(e: LogEntry): void {
    const data = e.data.length > this.maxBytes ? e.data.subarray(e.data.length - this.maxBytes) : e.data;
    this.entries.push({ ...e, data });
    this.size += data.length;
    while (this.size > this.maxBytes && this.head < this.entries.length - 1) {
      this.size -= this.entries[this.head]?.data.length ?? 0;
      this.entries[this.head++] = EMPTY_ENTRY;
    }
    // drop the consumed head now and then, so the array stays as long as what is kept
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  toArray(): LogEntry[] {
    return this.entries.slice(this.head);
  }
}

const EMPTY_ENTRY: LogEntry = { time: '', stream: 0, data: Buffer.alloc(0) };

/**
 * The raw (TTY) stream of `GET /logs?timestamps=1`: no frames, so the
 * messages are found at line starts (the Engine prefixes each line).
 */
export class TimestampedLines {
  private carry: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): LogEntry[] {
    this.carry = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const out: LogEntry[] = [];
    let start = 0;
    let nl: number;
    while ((nl = this.carry.indexOf(0x0a, start)) >= 0) {
      out.push({ stream: STDIN, ...splitLogTimestamp(this.carry.subarray(start, nl + 1)) });
      start = nl + 1;
    }
    this.carry = this.carry.subarray(start);
    return out;
  }

  flush(): LogEntry[] {
    const rest = this.carry;
    this.carry = Buffer.alloc(0);
    return rest.length ? [{ stream: STDIN, ...splitLogTimestamp(rest) }] : [];
  }
}
