/**
 * The console of a container instance: lifecycle records reconciled with
 * what the Engine says, merged by time with the container's own output, the
 * tail and byte cap; LifecycleJournal's file, bound, removal and ordering.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import winston from 'winston';
import type { LogEntry } from '../../../src/clients/docker/stream.js';
import { nullLogger } from '../../../src/common/log.js';
import {
  capBytes,
  fixedTime,
  formatRecord,
  lastLines,
  mergeConsole,
  reconcile,
  timeFromNanos,
  type LifecycleRecord,
  type ObservedRun,
} from '../../../src/virt/docker/console-log.js';
import { JOURNAL_FILE, LifecycleJournal } from '../../../src/virt/docker/lifecycle-journal.js';

const T = (s: string) => `2026-12-03T07:00:${s}Z`;
const entry = (time: string, data: string, stream = 1): LogEntry => ({ time, stream, data: Buffer.from(data) });
const run = (o: Partial<ObservedRun> = {}): ObservedRun => ({
  containerId: 'c1',
  image: 'busybox:latest',
  command: ['httpd', '-f'],
  running: true,
  startedAt: T('01.5'),
  finishedAt: '0001-01-01T00:00:00Z',
  exitCode: 0,
  oomKilled: false,
  ...o,
});
const texts = (rs: LifecycleRecord[]) => rs.map((r) => r.text);

describe('virt/docker console-log', () => {
  describe('times', () => {
    it('fixedTime: fixed width nanoseconds, sortable; the zero time and garbage are undefined', () => {
      assert.equal(fixedTime('2026-12-03T06:57:13.2219065Z'), '2026-12-03T06:57:13.221906500Z');
      assert.equal(fixedTime('2026-12-03T06:57:13Z'), '2026-12-03T06:57:13.000000000Z');
      assert.equal(fixedTime('2026-12-03T08:57:13.5+02:00'), '2026-12-03T06:57:13.500000000Z');
      assert.equal(fixedTime('0001-01-01T00:00:00Z'), undefined);
      assert.equal(fixedTime('yesterday'), undefined);
      assert.ok(fixedTime('2026-12-03T06:57:13.09Z')! < fixedTime('2026-12-03T06:57:13.1Z')!);
    });

    it('timeFromNanos: an event time at sub-millisecond precision', () => {
      // as JSON.parse hands the Engine's timeNano over: a double, a few hundred ns off
      const t = timeFromNanos(Number('1796281033231057616'));
      assert.match(t, /^2026-12-03T06:57:13\.231057\d{3}Z$/);
      assert.ok(t > fixedTime('2026-12-03T06:57:13.231Z')!);
    });

    it('formatRecord: marked, milliseconds, one line', () => {
      assert.equal(
        formatRecord({ t: T('00.123456789'), kind: 'started', text: 'container started: x' }),
        '[nova-docker] 2026-12-03T07:00:00.123Z container started: x\n',
      );
    });
  });

  describe('reconcile', () => {
    it('a running container: one started line with image and command; again and again: no change', () => {
      const rs: LifecycleRecord[] = [];
      assert.equal(reconcile(rs, run()), true);
      assert.deepEqual(texts(rs), ['container started: image busybox:latest, command ["httpd","-f"]']);
      assert.equal(rs[0]?.t, '2026-12-03T07:00:01.500000000Z');
      assert.equal(reconcile(rs, run()), false);
      assert.equal(rs.length, 1);
    });

    it('never started (created only): nothing', () => {
      const rs: LifecycleRecord[] = [];
      assert.equal(reconcile(rs, run({ startedAt: '0001-01-01T00:00:00Z', running: false })), false);
      assert.equal(rs.length, 0);
    });

    it('an exited container: the exit with status and OOM, after its last output', () => {
      const rs: LifecycleRecord[] = [];
      const exited = run({ running: false, finishedAt: T('09'), exitCode: 137, oomKilled: true });
      reconcile(rs, exited, { lastOutputAt: T('09.002') });
      assert.deepEqual(texts(rs).slice(1), ['container exited: status 137, OOM killed']);
      assert.equal(rs[1]?.t, T('09.002000000'), 'after the last line the Engine logged');
      assert.equal(reconcile(rs, exited, { lastOutputAt: T('09.002') }), false);
    });

    it('a die seen after the next start: its status is used (the start reset ExitCode)', () => {
      const rs: LifecycleRecord[] = [];
      reconcile(rs, run());
      // rebooted: FinishedAt is the previous exit, StartedAt the new start
      const again = run({ startedAt: T('05'), finishedAt: T('04.9'), exitCode: 0 });
      reconcile(rs, again, { dieAt: T('04.95'), exitCode: 143 });
      assert.deepEqual(texts(rs), [
        'container started: image busybox:latest, command ["httpd","-f"]',
        'container exited: status 143',
        'container restarted: image busybox:latest, command ["httpd","-f"]',
      ]);
    });

    it('an exit nobody saw: status unknown, filled in when its die event comes', () => {
      const rs: LifecycleRecord[] = [];
      reconcile(rs, run());
      const again = run({ startedAt: T('05'), finishedAt: T('04.9') });
      reconcile(rs, again);
      assert.equal(
        rs.find((r) => r.kind === 'exited')?.text,
        'container exited: status unknown (the agent was not watching)',
      );
      assert.equal(reconcile(rs, again, { dieAt: T('04.95'), exitCode: 2, oom: true }), true);
      assert.equal(rs.find((r) => r.kind === 'exited')?.text, 'container exited: status 2, OOM killed');
      assert.equal(rs.filter((r) => r.kind === 'exited').length, 1);
    });

    it('a die older than the exit the Engine shows belongs to another run: its status is not used', () => {
      const rs: LifecycleRecord[] = [];
      const stopped = run({ startedAt: T('05'), finishedAt: T('06'), running: false, exitCode: 0 });
      reconcile(rs, stopped, { dieAt: T('04.95'), exitCode: 143 });
      assert.deepEqual(texts(rs).slice(-1), ['container exited: status 0']);
    });
  });

  describe('mergeConsole', () => {
    const rec = (t: string, kind: LifecycleRecord['kind'], text: string): LifecycleRecord => ({ t, kind, text });

    it('a silent container: the lifecycle alone', () => {
      const out = mergeConsole(
        [],
        [rec(T('01.000000000'), 'started', 'container started: x'), rec(T('09.000000000'), 'exited', 'exited: 0')],
      );
      assert.equal(
        out,
        '[nova-docker] 2026-12-03T07:00:01.000Z container started: x\n' +
          '[nova-docker] 2026-12-03T07:00:09.000Z exited: 0\n',
      );
    });

    it('interleaves by time; the output stays byte for byte (stderr, escapes, CRs, UTF-8 split across messages)', () => {
      const euro = Buffer.from('€\n');
      const out = mergeConsole(
        [
          entry(T('02.000000000'), 'one\r\n'),
          entry(T('03.000000000'), '\u001b[1mbold\u001b[0m\n', 2),
          { time: T('06.000000000'), stream: 1, data: euro.subarray(0, 1) },
          { time: T('06.000000001'), stream: 1, data: euro.subarray(1) },
        ],
        [
          rec(T('01.000000000'), 'started', 'started'),
          rec(T('04.000000000'), 'action', 'pause requested'),
          rec(T('07.000000000'), 'exited', 'exited'),
        ],
      );
      assert.equal(
        out,
        '[nova-docker] 2026-12-03T07:00:01.000Z started\n' +
          'one\r\n\u001b[1mbold\u001b[0m\n' +
          '[nova-docker] 2026-12-03T07:00:04.000Z pause requested\n' +
          '€\n' +
          '[nova-docker] 2026-12-03T07:00:07.000Z exited\n',
      );
    });

    it('a start goes before the output logged just before it, never before the exit of the run before', () => {
      const out = mergeConsole(
        [
          entry(T('00.100000000'), 'run 1\n'),
          entry(T('00.300000000'), 'run 1 last\n'),
          entry(T('00.500000000'), 'run 2 first\n'),
          entry(T('00.700000000'), 'run 2\n'),
        ],
        [
          rec(T('00.050000000'), 'started', 'started 1'),
          rec(T('00.400000000'), 'exited', 'exited 1'),
          rec(T('00.600000000'), 'started', 'started 2'),
        ],
      );
      assert.deepEqual(
        out.split('\n').map((l) => l.replace(/^\[nova-docker\] \S+ /, '')),
        ['started 1', 'run 1', 'run 1 last', 'exited 1', 'started 2', 'run 2 first', 'run 2', ''],
      );
    });

    it('the float is bounded: output long before a start (no exit recorded between) stays before it', () => {
      const out = mergeConsole(
        [entry(T('00.000000000'), 'old\n'), entry(T('09.000000000'), 'new\n')],
        [rec(T('10.000000000'), 'started', 'started')],
        5000,
      );
      assert.deepEqual(
        out.split('\n').map((l) => l.replace(/^\[nova-docker\] \S+ /, '')),
        ['old', 'started', 'new', ''],
      );
    });

    it('a record inside an unfinished line starts a line of its own', () => {
      const out = mergeConsole([entry(T('01.000000000'), 'prompt> ')], [rec(T('02.000000000'), 'exited', 'exited')]);
      assert.equal(out, 'prompt> \n[nova-docker] 2026-12-03T07:00:02.000Z exited\n');
    });
  });

  describe('tail and cap', () => {
    it('lastLines counts a last line without newline', () => {
      assert.equal(lastLines('a\nb\nc\n', 2), 'b\nc\n');
      assert.equal(lastLines('a\nb\nc', 1), 'c');
      assert.equal(lastLines('a\nb\n', 5), 'a\nb\n');
      assert.equal(lastLines('a\n', 0), '');
    });

    it('capBytes keeps the newest whole lines; a single long line is cut at a character boundary', () => {
      assert.equal(capBytes('first line\nsecond\nthird\n', 14), 'second\nthird\n');
      assert.equal(capBytes('first line\nsecond\nthird\n', 12), 'third\n');
      assert.equal(capBytes('short\n', 100), 'short\n');
      const cut = capBytes('€€€€\n', 7);
      assert.ok(Buffer.byteLength(cut) <= 7);
      assert.equal(cut, '€€\n');
    });
  });
});

describe('virt/docker LifecycleJournal', () => {
  let dir: string;
  const UUID = '1b4e28ba-2fa1-11d2-883f-0016d3cca427';
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nd-journal-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('kept in <dir>/<uuid>/ and read back by another journal (an agent restart)', async () => {
    const j = new LifecycleJournal(dir, nullLogger());
    await j.note(UUID, 'stop requested by Nova');
    await j.update(UUID, (rs) => reconcile(rs, run()));
    const file = join(dir, UUID, JOURNAL_FILE);
    assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, 2);
    const again = new LifecycleJournal(dir, nullLogger());
    assert.deepEqual(texts(await again.read(UUID)).sort(), [
      'container started: image busybox:latest, command ["httpd","-f"]',
      'stop requested by Nova',
    ]);
  });

  it('sorted by time and bounded to the newest records', async () => {
    const j = new LifecycleJournal(dir, nullLogger(), 3);
    await j.update(UUID, (rs) => {
      for (const s of ['04', '01', '03', '02']) rs.push({ t: T(`${s}.000000000`), kind: 'action', text: s });
      return true;
    });
    assert.deepEqual(texts(await j.read(UUID)), ['02', '03', '04']);
  });

  it('concurrent changes of one instance do not lose each other', async () => {
    const j = new LifecycleJournal(dir, nullLogger());
    await Promise.all(Array.from({ length: 20 }, (_, i) => j.note(UUID, `note ${i}`)));
    assert.equal((await j.read(UUID)).length, 20);
  });

  it('remove: the file and its directory go; later events of the removed container are ignored', async () => {
    const j = new LifecycleJournal(dir, nullLogger());
    await j.note(UUID, 'x');
    await j.remove(UUID, 'c1');
    assert.equal(existsSync(join(dir, UUID)), false);
    await j.update(UUID, (rs) => reconcile(rs, run()), 'c1');
    assert.equal(existsSync(join(dir, UUID)), false, 'a late die/start of the removed container wrote nothing');
    await j.update(UUID, (rs) => reconcile(rs, run({ containerId: 'c2' })), 'c2');
    assert.equal((await j.read(UUID)).length, 1, 'a new container of the same instance (rebuild) records again');
  });

  it('a torn line is skipped; an unwritable directory is logged, not thrown', async () => {
    mkdirSync(join(dir, UUID));
    writeFileSync(
      join(dir, UUID, JOURNAL_FILE),
      '{"t":"2026-12-03T07:00:00.000000000Z","kind":"action","text":"ok"}\n{"t":\n',
    );
    const j = new LifecycleJournal(dir, nullLogger());
    assert.deepEqual(texts(await j.read(UUID)), ['ok']);
    const blocked = join(dir, 'file');
    writeFileSync(blocked, '');
    const warnings: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        warnings.push(chunk.toString());
        cb();
      },
    });
    const log = winston.createLogger({ level: 'warn', transports: [new winston.transports.Stream({ stream: sink })] });
    const k = new LifecycleJournal(blocked, log);
    await k.note(UUID, 'y');
    assert.equal(warnings.length, 1, warnings.join());
    assert.match(warnings[0] ?? '', /console lifecycle lines of/);
  });

  it('without a directory: in memory', async () => {
    const j = new LifecycleJournal(undefined, nullLogger());
    await j.note(UUID, 'm');
    assert.deepEqual(texts(await j.read(UUID)), ['m']);
    await j.remove(UUID);
    assert.deepEqual(await j.read(UUID), []);
  });
});
