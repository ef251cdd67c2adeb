/**
 * What the lab benches (boot, actions, image-load) share: percentiles and the
 * row they print, incompressible test data and the busybox + N MB image built
 * from it, and waiting for the agent's log to settle. REST, the lab's agent and its log lines come from
 * test/support (nova-api.ts, lab.ts, agent-log.ts), as the e2e tests and the fault suite use them.
 */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pollUntil } from '../src/common/poll.js';
import { docker, type AgentProcess } from '../test/support/lab.js';

export function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

export interface Stat {
  p50: number;
  p95: number;
  min: number;
  max: number;
}

export function stat(values: number[]): Stat {
  const s = [...values].sort((a, b) => a - b);
  return { p50: pct(s, 50), p95: pct(s, 95), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN };
}

/** Prints `what  p50 … ms  p95 … ms  (min, max, n)`; `digits` decimals, `what` padded to `width`. */
export function row(what: string, values: number[], width = 52, digits = 1): Stat {
  const r = stat(values);
  const f = (v: number): string => v.toFixed(digits).padStart(digits === 0 ? 7 : 8);
  console.log(
    `  ${what.padEnd(width)} p50 ${f(r.p50)} ms  p95 ${f(r.p95)} ms  (min ${r.min.toFixed(digits)}, max ${r.max.toFixed(digits)}, n=${values.length})`,
  );
  return r;
}

/** `len` bytes of xorshift32 data in 1 MiB chunks: incompressible, never held whole, faster than randomBytes. */
export function randomData(len: number): Readable {
  let left = len;
  let seed = Date.now() >>> 0;
  return new Readable({
    read() {
      if (left === 0) {
        this.push(null);
        return;
      }
      const n = Math.min(left, 1 << 20);
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i + 4 <= n; i += 4) {
        seed ^= seed << 13;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        b.writeUInt32LE(seed >>> 0, i);
      }
      left -= n;
      this.push(b);
    },
  });
}

/** busybox + `mb` MB of random data in a layer of its own, committed as `ref` (no network); `changes` as `commit --change`. */
export async function buildBigImage(ref: string, mb: number, changes: string[] = []): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'nd-bench-big-'));
  try {
    const blob = join(dir, 'big.bin');
    await pipeline(randomData(mb * 1e6), createWriteStream(blob));
    const cid = await docker(['create', 'busybox:latest']);
    try {
      await docker(['cp', blob, `${cid}:/big.bin`]);
      await docker(['commit', ...changes.flatMap((c) => ['--change', c]), cid, ref]);
    } finally {
      await docker(['rm', cid]);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `read(agent.log())` once it holds a value and the log stopped growing between two looks: the agent's
 * lines reach us through a pipe after what the API showed, so the bench reads them once they are in.
 */
export async function settledLog<T>(agent: AgentProcess, read: (log: string) => T | undefined): Promise<T | undefined> {
  let last = -1;
  return await pollUntil(
    () => {
      const log = agent.log();
      const v = read(log);
      const still = log.length === last;
      last = log.length;
      return v !== undefined && still ? { v } : undefined;
    },
    { timeoutMs: 5000, intervalMs: 100, what: 'the agent log to settle' },
  )
    .then((x) => x.v)
    .catch(() => read(agent.log()));
}
