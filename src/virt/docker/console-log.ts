/**
 * The console of a container instance (`openstack console log show`): the
 * container's own output, bytes untouched, with the lifecycle as the host saw
 * it interleaved by time, the way a VM's console shows firmware and kernel
 * lines before the guest's own. A silent container (a web server, a `sleep`)
 * still has a console then: when it was created, started (image, command),
 * how it exited (status, OOM killed), restarted, and what Nova asked of it.
 *
 * Pure functions: the records are kept by LifecycleJournal, the log entries
 * come from the Engine (`GET /logs?timestamps=1`).
 */
import type { DockerContainerInspect } from '../../clients/docker/types.js';
import type { LogEntry } from '../../clients/docker/stream.js';

export type LifecycleKind = 'action' | 'started' | 'exited' | 'oom';

/** One lifecycle line, as stored. */
export interface LifecycleRecord {
  /** When, as `fixedTime` (UTC, nanoseconds, fixed width): records and log entries order as strings. */
  t: string;
  kind: LifecycleKind;
  /** The line after its timestamp. */
  text: string;
  /** The Engine's own time this record stands for (State.StartedAt, State.FinishedAt, an oom event's): one record each. */
  ref?: string;
  /** The container (a second start of the same container reads "restarted"). */
  cid?: string;
  /** An exit whose status the Engine no longer had; a later die event fills it in. */
  partial?: boolean;
}

/** Marks the lines that are not the container's own. */
export const LINE_PREFIX = '[nova-docker]';

/** A start moves before output logged at most this long before it (see mergeConsole). */
export const START_FLOAT_MS = 5000;

const RFC3339 = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/;

/**
 * An Engine time (RFC 3339 with 0 to 9 fraction digits) as
 * `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, which sorts as a string; undefined for
 * Docker's zero time (`0001-01-01T00:00:00Z`: never happened) and garbage.
 */
export function fixedTime(s: string | undefined): string | undefined {
  if (!s || s.startsWith('0001-01-01T')) return undefined;
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const [, base = '', frac = '', zone = 'Z'] = m;
  if (zone === 'Z') return `${base}.${frac.padEnd(9, '0')}Z`;
  // an offset (the Engine writes UTC, a proxy might not): whole minutes, so the fraction stays
  const ms = Date.parse(`${base}${zone}`);
  if (!Number.isFinite(ms)) return undefined;
  return `${new Date(ms).toISOString().slice(0, 19)}.${frac.padEnd(9, '0')}Z`;
}

/** An event's timeNano (JSON gives it as a double: about 0.25 µs off, plenty to order by). */
export function timeFromNanos(ns: number): string {
  const ms = Math.floor(ns / 1e6);
  const sub = Math.min(999_999, Math.max(0, Math.round(ns - ms * 1e6)));
  return `${new Date(ms).toISOString().slice(0, 23)}${String(sub).padStart(6, '0')}Z`;
}

export function timeFromMs(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 23)}000000Z`;
}

function msOf(t: string): number {
  return Date.parse(`${t.slice(0, 23)}Z`);
}

/** `[nova-docker] 2026-12-03T07:00:00.123Z container started: …` (milliseconds, as consoles print). */
export function formatRecord(r: LifecycleRecord): string {
  return `${LINE_PREFIX} ${r.t.slice(0, 23)}Z ${r.text}\n`;
}

/** What `docker inspect` tells about the container's current (or last) run. */
export interface ObservedRun {
  containerId: string;
  image: string;
  command: readonly string[];
  running: boolean;
  startedAt?: string | undefined;
  finishedAt?: string | undefined;
  exitCode: number;
  oomKilled: boolean;
}

export function observedRun(c: Pick<DockerContainerInspect, 'Id' | 'Image' | 'Config' | 'State'>): ObservedRun {
  return {
    containerId: c.Id,
    image: c.Config.Image || c.Image,
    command: [...(c.Config.Entrypoint ?? []), ...(c.Config.Cmd ?? [])],
    running: c.State.Running,
    startedAt: c.State.StartedAt,
    finishedAt: c.State.FinishedAt,
    exitCode: c.State.ExitCode,
    oomKilled: c.State.OOMKilled,
  };
}

/** What an event or a read adds to an inspect. */
export interface ExitHint {
  /**
   * The die event's time: after all the run's output (the Engine waits for
   * its log copier before it reports the exit), unlike State.FinishedAt,
   * which is the process's exit and may precede the last lines by a few ms.
   */
  dieAt?: string;
  /** The die event's exitCode: the Engine resets State.ExitCode when the container starts again. */
  exitCode?: number;
  /** An oom event came during the run. */
  oom?: boolean;
  /** The newest log message's time (a read has the log at hand). */
  lastOutputAt?: string;
}

/**
 * Brings `records` in line with what the Engine says now: the current run's
 * start, its exit once it is over, and the exit of the run before (the Engine
 * keeps only its time). One record per Engine timestamp, so events and reads
 * may both call this, in any order, as often as they like. Runs that began
 * and ended while nobody was watching leave no trace: the Engine keeps only
 * the last one. Returns whether anything changed.
 */
export function reconcile(records: LifecycleRecord[], run: ObservedRun, hint: ExitHint = {}): boolean {
  const started = fixedTime(run.startedAt);
  if (started === undefined) return false; // created, never started: nothing happened yet
  const finished = fixedTime(run.finishedAt);
  hint = { ...hint, dieAt: fixedTime(hint.dieAt), lastOutputAt: fixedTime(hint.lastOutputAt) };
  // a die belongs to the exit at or before it; a later exit is another run's
  const dieFits = hint.dieAt !== undefined && finished !== undefined && hint.dieAt >= finished;
  const oom = dieFits && hint.oom === true;
  let changed = false;
  if (finished !== undefined && finished < started) {
    changed = ensureExit(records, finished, dieFits ? hint.dieAt : finished, dieFits ? hint.exitCode : undefined, oom);
  }
  changed = ensureStart(records, started, run) || changed;
  if (!run.running && finished !== undefined && finished >= started) {
    const at = [finished, dieFits ? hint.dieAt : undefined, hint.lastOutputAt].reduce<string>(
      (a, b) => (b !== undefined && b > a ? b : a),
      finished,
    );
    const code = dieFits ? (hint.exitCode ?? run.exitCode) : run.exitCode;
    changed = ensureExit(records, finished, at, code, run.oomKilled || oom) || changed;
  }
  return changed;
}

function ensureStart(records: LifecycleRecord[], ref: string, run: ObservedRun): boolean {
  if (records.some((r) => r.kind === 'started' && r.ref === ref)) return false;
  const again = records.some((r) => r.kind === 'started' && r.cid === run.containerId);
  records.push({
    t: ref,
    kind: 'started',
    ref,
    cid: run.containerId,
    text: `container ${again ? 'restarted' : 'started'}: image ${run.image}, command ${JSON.stringify(run.command)}`,
  });
  return true;
}

function ensureExit(
  records: LifecycleRecord[],
  ref: string,
  t: string | undefined,
  code: number | undefined,
  oom: boolean,
): boolean {
  const text =
    code === undefined
      ? 'container exited: status unknown (the agent was not watching)'
      : `container exited: status ${code}${oom ? ', OOM killed' : ''}`;
  const at = t ?? ref;
  const old = records.find((r) => r.kind === 'exited' && r.ref === ref);
  if (!old) {
    records.push({ t: at, kind: 'exited', ref, text, ...(code === undefined ? { partial: true } : {}) });
    return true;
  }
  if (!old.partial || code === undefined) return false;
  old.t = at;
  old.text = text;
  delete old.partial;
  return true;
}

/** Sorted by time (stable), the newest `max` kept. */
export function normalize(records: LifecycleRecord[], max: number): LifecycleRecord[] {
  const sorted = records
    .map((r, i) => ({ r, i }))
    .sort((a, b) => (a.r.t < b.r.t ? -1 : a.r.t > b.r.t ? 1 : a.i - b.i))
    .map((x) => x.r);
  return sorted.length > max ? sorted.slice(sorted.length - max) : sorted;
}

interface Item {
  t: string;
  ms: number;
  record?: LifecycleRecord;
  data?: Buffer;
}

/**
 * The console text: the log entries' bytes untouched, the records as
 * `formatRecord` lines, by time (a record first on a tie). A record that
 * would land inside a line the container has not finished gets a newline
 * before it, so each record is a line of its own.
 *
 * A start moves up before the output logged at most `floatMs` before it,
 * never past another record: the Engine notes State.StartedAt once the
 * process runs, so a quick command's first lines can carry earlier times,
 * while anything logged after the record before (the exit of the run before)
 * belongs to this run.
 */
export function mergeConsole(
  entries: readonly LogEntry[],
  records: readonly LifecycleRecord[],
  floatMs = START_FLOAT_MS,
): string {
  const out: Item[] = [];
  let last = '';
  const es: Item[] = entries.map((e) => {
    // a message without a time (a raw stream's cut) stays where it came
    const t = fixedTime(e.time) ?? last;
    last = t;
    return { t, ms: t ? msOf(t) : Number.NEGATIVE_INFINITY, data: e.data };
  });
  let i = 0;
  let j = 0;
  while (i < es.length || j < records.length) {
    const e = es[i];
    const r = records[j];
    if (r && (!e || r.t <= e.t)) {
      out.push({ t: r.t, ms: msOf(r.t), record: r });
      j++;
    } else if (e) {
      out.push(e);
      i++;
    }
  }
  for (let k = 0; k < out.length; k++) {
    const it = out[k];
    if (it?.record?.kind !== 'started') continue;
    let m = k;
    for (let prev = out[m - 1]; prev?.data && prev.ms >= it.ms - floatMs; prev = out[m - 1]) {
      out[m] = prev;
      m--;
    }
    out[m] = it;
  }
  let text = '';
  let pending: Buffer[] = [];
  const flush = (): void => {
    // decoded together: a character may be split across the Engine's messages
    if (pending.length) text += Buffer.concat(pending).toString('utf8');
    pending = [];
  };
  for (const it of out) {
    if (it.data) {
      pending.push(it.data);
      continue;
    }
    flush();
    if (text && !text.endsWith('\n')) text += '\n';
    if (it.record) text += formatRecord(it.record);
  }
  flush();
  return text;
}

/** The last `n` lines of `text` (a last line without newline counts as one). */
export function lastLines(text: string, n: number): string {
  if (n <= 0) return '';
  let end = text.endsWith('\n') ? text.length - 1 : text.length;
  for (let k = 0; k < n; k++) {
    const nl = text.lastIndexOf('\n', end - 1);
    if (nl < 0) return text;
    end = nl;
  }
  return text.slice(end + 1);
}

/**
 * The newest whole lines of `text` within `maxBytes` of UTF-8; when the
 * newest line alone is longer, its end, cut at a character boundary.
 */
export function capBytes(text: string, maxBytes: number): string {
  const b = Buffer.from(text, 'utf8');
  if (b.length <= maxBytes) return text;
  let cut = b.subarray(b.length - maxBytes);
  const nl = cut.indexOf(0x0a);
  if (nl >= 0 && nl < cut.length - 1) return cut.subarray(nl + 1).toString('utf8');
  let k = 0;
  while (k < cut.length && ((cut[k] ?? 0) & 0xc0) === 0x80) k++;
  cut = cut.subarray(k);
  return cut.toString('utf8');
}
