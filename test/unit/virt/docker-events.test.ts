/**
 * The driver's lifecycle feed from the Engine's event stream, on a fake
 * stream: mapping, host filter, reconnect with backoff and EventsMissed.
 */
import assert from 'node:assert/strict';
import type { DockerEvent, EventsOptions } from '../../../src/clients/docker/types.js';
import { UnavailableError } from '../../../src/clients/errors.js';
import { nullLogger } from '../../../src/common/log.js';
import { pollUntil } from '../../../src/common/poll.js';
import { ContainerEventWatcher, lifecycleOf } from '../../../src/virt/docker/events.js';
import { LABELS, MANAGED_BY_VALUE } from '../../../src/virt/docker/labels.js';
import { type DriverEvent, LifecycleTransition } from '../../../src/virt/event.js';

const HOST = 'h1';

function ev(action: string, uuid: string, host = HOST, extra: Record<string, string> = {}): DockerEvent {
  return {
    Type: 'container',
    Action: action,
    Actor: {
      ID: `c-${uuid}`,
      Attributes: { [LABELS.managedBy]: MANAGED_BY_VALUE, [LABELS.host]: host, [LABELS.instanceUuid]: uuid, ...extra },
    },
    time: 1700000000,
    timeNano: 1700000000123456000,
  };
}

/** A fake `events()`: each call plays the next script; a script ends with 'break' (throws), 'end', or hangs. */
function fakeDocker(scripts: Array<{ events: DockerEvent[]; then: 'break' | 'end' | 'hang' }>) {
  const calls: EventsOptions[] = [];
  return {
    calls,
    docker: {
      async *events(opts: EventsOptions = {}): AsyncGenerator<DockerEvent> {
        calls.push(opts);
        const s = scripts.shift() ?? { events: [], then: 'hang' as const };
        opts.onOpen?.();
        for (const e of s.events) yield e;
        if (s.then === 'break')
          throw new UnavailableError('docker GET /events: response broke off', {
            service: 'docker',
            method: 'GET',
            path: '/events',
            status: 200,
          });
        if (s.then === 'end') return;
        await new Promise<void>((_, reject) => {
          opts.signal?.addEventListener('abort', () => reject(opts.signal?.reason as Error));
        });
      },
    },
  };
}

describe('virt/docker event stream', () => {
  it('maps Docker actions to Nova lifecycle transitions', () => {
    assert.equal(lifecycleOf(ev('start', 'u')), LifecycleTransition.STARTED);
    assert.equal(lifecycleOf(ev('die', 'u')), LifecycleTransition.STOPPED);
    assert.equal(lifecycleOf(ev('destroy', 'u')), LifecycleTransition.STOPPED);
    assert.equal(lifecycleOf(ev('pause', 'u')), LifecycleTransition.PAUSED);
    assert.equal(lifecycleOf(ev('pause', 'u'), true), LifecycleTransition.SUSPENDED);
    assert.equal(lifecycleOf(ev('unpause', 'u')), LifecycleTransition.RESUMED);
    assert.equal(lifecycleOf(ev('oom', 'u')), undefined);
  });

  it('subscribes with the container/label/action filters; reconnects with backoff and reports the gap', async () => {
    const { docker, calls } = fakeDocker([
      {
        events: [
          ev('start', 'a'),
          ev('die', 'b', 'other-host'),
          ev('oom', 'a'),
          ev('die', 'a', HOST, { exitCode: '137' }),
        ],
        then: 'break',
      },
      { events: [], then: 'end' },
      { events: [ev('start', 'a')], then: 'hang' },
    ]);
    const seen: DriverEvent[] = [];
    const w = new ContainerEventWatcher(
      docker,
      (e) => seen.push(e),
      { host: HOST, initialBackoffMs: 20 },
      nullLogger(),
    );
    const t0 = Date.now();
    w.start();
    await pollUntil(() => (w.opened === 3 && seen.length === 6 ? true : undefined), { timeoutMs: 3000, intervalMs: 5 });
    const elapsed = Date.now() - t0;
    await w.stop();
    assert.deepEqual(calls[0]?.filters, {
      type: ['container'],
      event: ['start', 'die', 'oom', 'pause', 'unpause', 'destroy'],
      label: [`${LABELS.managedBy}=${MANAGED_BY_VALUE}`, `${LABELS.host}=${HOST}`],
    });
    assert.deepEqual(
      seen.map((e) => (e.kind === 'missed' ? 'missed' : `${e.uuid}:${LifecycleTransition[e.transition]}`)),
      ['missed', 'a:STARTED', 'a:STOPPED', 'missed', 'missed', 'a:STARTED'],
    );
    const die = seen[2];
    assert.ok(die?.kind === 'lifecycle');
    assert.equal(die.detail, 'die exitCode=137');
    assert.equal(die.timestamp, 1700000000123);
    assert.ok(elapsed >= 20 + 40 - 5, `backoff 20 then 40 ms (took ${elapsed} ms)`);
    assert.equal(calls.length, 3);
  });

  it('a failing subscription is retried with a doubling delay, capped', async () => {
    let n = 0;
    const times: number[] = [];
    const docker = {
      // eslint-disable-next-line require-yield
      async *events(): AsyncGenerator<DockerEvent> {
        n++;
        times.push(Date.now());
        await Promise.resolve();
        throw new UnavailableError('connect ENOENT /var/run/docker.sock', {
          service: 'docker',
          method: 'GET',
          path: '/events',
        });
      },
    };
    const w = new ContainerEventWatcher(
      docker,
      () => undefined,
      { host: HOST, initialBackoffMs: 10, maxBackoffMs: 40 },
      nullLogger(),
    );
    w.start();
    await pollUntil(() => (n >= 6 ? true : undefined), { timeoutMs: 3000, intervalMs: 5 });
    await w.stop();
    const gaps = times.slice(1).map((t, i) => t - (times[i] ?? t));
    // 10, 20, 40, 40, 40 (timer slack allowed upwards)
    assert.ok((gaps[0] ?? 0) >= 9 && (gaps[2] ?? 0) >= 38 && (gaps[4] ?? 0) >= 38, JSON.stringify(gaps));
    assert.ok((gaps[4] ?? 0) < 200, `capped: ${JSON.stringify(gaps)}`);
    assert.equal(w.opened, 0);
  });

  it('stop() closes a stream that is waiting for events', async () => {
    const { docker } = fakeDocker([{ events: [], then: 'hang' }]);
    const w = new ContainerEventWatcher(docker, () => undefined, { host: HOST }, nullLogger());
    w.start();
    await pollUntil(() => (w.opened === 1 ? true : undefined), { timeoutMs: 1000, intervalMs: 5 });
    await w.stop();
  });

  it('a listener that throws does not stop the feed', async () => {
    const { docker } = fakeDocker([{ events: [ev('start', 'a'), ev('die', 'a')], then: 'hang' }]);
    const seen: string[] = [];
    const w = new ContainerEventWatcher(
      docker,
      (e) => {
        seen.push(e.kind);
        throw new Error('boom');
      },
      { host: HOST },
      nullLogger(),
    );
    w.start();
    await pollUntil(() => (seen.length === 3 ? true : undefined), { timeoutMs: 1000, intervalMs: 5 });
    await w.stop();
  });
});
