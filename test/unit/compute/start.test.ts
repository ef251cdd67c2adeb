/**
 * The manager's start while the hypervisor does not answer (dockerd starting
 * after the agent at boot): it waits with a capped doubling pause, says what it
 * waits for once per reason, reports nothing to Nova until the hypervisor
 * answers, and gives up at once on what waiting cannot fix.
 */
import assert from 'node:assert/strict';
import { UnavailableError } from '../../../src/clients/errors.js';
import { HypervisorRefusedError, hypervisorUnavailable } from '../../../src/virt/errors.js';
import { capturingLogger } from '../../support/capture-log.js';
import { HOST, setup } from '../../support/fake-nova.js';

const noAnswer = (code: string) =>
  hypervisorUnavailable(
    HOST,
    new UnavailableError(`docker GET /version: no answer: ${code} connect ${code} /run/x.sock`, {
      service: 'docker',
      method: 'GET',
      path: '/version',
    }),
  );

/** Resolves when `n` tries have been made. */
function tries() {
  let count = 0;
  const waiters: Array<[number, () => void]> = [];
  return {
    get count() {
      return count;
    },
    hit(): void {
      count++;
      for (const [n, resolve] of waiters) if (count >= n) resolve();
    },
    reached(n: number): Promise<void> {
      return count >= n ? Promise.resolve() : new Promise((r) => waiters.push([n, r]));
    },
  };
}

const reported = (calls: string[]) => calls.filter((c) => c.startsWith('Service.') || c.startsWith('ComputeNode.'));

describe('compute/manager start: waiting for the hypervisor', () => {
  const retry = { hypervisorRetryMs: { first: 1, max: 4 } };

  it('retries while the hypervisor does not answer, reports nothing meanwhile, logs once per reason', async () => {
    const { logger, lines } = capturingLogger();
    const { conductor, driver, manager } = setup(retry, {}, logger);
    const t = tries();
    let failure: Error | undefined = noAnswer('ENOENT');
    driver.initHost = () => {
      t.hit();
      return failure ? Promise.reject(failure) : Promise.resolve();
    };
    const started = manager.start();
    await t.reached(4);
    // the same reason four times: one WARNING, the tries themselves at DEBUG
    assert.deepEqual(reported(conductor.calls), [], 'no Service or ComputeNode record while waiting');
    failure = noAnswer('ECONNREFUSED');
    await t.reached(6);
    assert.deepEqual(reported(conductor.calls), []);
    failure = undefined;
    await started;
    manager.stop();
    const warnings = lines.filter((l) => l.startsWith('WARN'));
    assert.equal(warnings.length, 2, lines.join('\n'));
    assert.match(
      warnings[0] ?? '',
      /^WARN Waiting for the hypervisor \(Connection to the hypervisor is broken on host cmp1: docker GET \/version: no answer: ENOENT .*\); trying again every 0\.001-0\.004 s; not reporting the service up until it answers$/,
    );
    assert.match(warnings[1] ?? '', /ECONNREFUSED/);
    assert.ok(lines.filter((l) => /^DEBUG The hypervisor does not answer/.test(l)).length >= 5);
    assert.equal(lines.filter((l) => /^INFO The hypervisor answers after \d+\.\d s of waiting/.test(l)).length, 1);
    // then the ordinary start: the service record and the first heartbeat
    assert.deepEqual(reported(conductor.calls).slice(0, 3), [
      'Service.get_by_host_and_binary',
      'Service.create report_count=0',
      'Service.save report_count=1',
    ]);
  });

  it('doubles the pause up to the cap', async () => {
    const { logger, lines } = capturingLogger();
    const { driver, manager } = setup({ hypervisorRetryMs: { first: 5, max: 20 } }, {}, logger);
    const t = tries();
    driver.initHost = () => {
      t.hit();
      return t.count < 6 ? Promise.reject(noAnswer('ENOENT')) : Promise.resolve();
    };
    await manager.start();
    manager.stop();
    const pauses = lines.flatMap(
      (l) => /^DEBUG The hypervisor does not answer; next try in (\d+) ms$/.exec(l)?.[1] ?? [],
    );
    assert.deepEqual(pauses.map(Number), [5, 10, 20, 20, 20]);
  });

  it('a hypervisor that refuses us ends the start at once, nothing reported', async () => {
    const { conductor, driver, manager } = setup(retry);
    const t = tries();
    driver.initHost = () => {
      t.hit();
      return Promise.reject(new HypervisorRefusedError('the Docker Engine cannot be used: EACCES'));
    };
    await assert.rejects(manager.start(), HypervisorRefusedError);
    assert.equal(t.count, 1);
    assert.deepEqual(reported(conductor.calls), []);
  });

  it('a stop while waiting ends the wait', async () => {
    const { conductor, driver, manager } = setup({ hypervisorRetryMs: { first: 60_000, max: 60_000 } });
    const t = tries();
    driver.initHost = () => {
      t.hit();
      return Promise.reject(noAnswer('ENOENT'));
    };
    const stop = new AbortController();
    const started = manager.start(stop.signal);
    await t.reached(1);
    stop.abort();
    await assert.rejects(started, { name: 'AbortError' });
    assert.equal(t.count, 1);
    assert.deepEqual(reported(conductor.calls), []);
  });
});
