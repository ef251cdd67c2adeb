/**
 * End to end against the lab's real Nova Zed: the console of a silent
 * container with the stock `openstack console log show`. The image prints
 * nothing (a `sleep`-style loop that ends when told); its console shows the
 * lifecycle as the host saw it: spawning, created, started (image, command),
 * and once the container exits on its own, the exit with its status. The
 * same output through the API as Tempest's console tests read it: more than
 * three pieces in full, exactly three with length 3 (nova's _tail_log).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil } from '../../src/common/poll.js';
import { docker, e2eHost, openstack, useE2eLab } from '../support/lab.js';
import { novaConsoleOutput, waitServerApi } from '../support/nova-api.js';

const HOST = e2eHost('nd-console-1');
/** Silent; exits 0 once /tmp/done exists (a `docker exec` below), so the test decides when. */
const CMD = ['/bin/sh', '-c', 'until [ -e /tmp/done ]; do sleep 0.2; done'];
/** `[nova-docker] 2026-12-03T07:00:00.123Z ` */
const PREFIX = /^\[nova-docker\] \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /;

describe('e2e: the console of a silent container (openstack console log show)', function () {
  this.timeout(900_000);
  const lab = useE2eLab(HOST);
  let image = '';

  before(async () => {
    const tag = await lab.buildImage('nd-console-silent', `FROM busybox:latest\nCMD ${JSON.stringify(CMD)}\n`);
    image = await lab.uploadImage(`nd-console-${randomUUID().slice(0, 8)}`, tag);
  });

  it('started (image, command) while it runs; the exit and its status once it ends; removed with the server', async () => {
    const s = await lab.boot(image, 'nd-console', { timeoutMs: 600_000 });
    assert.equal(s.status, 'ACTIVE', JSON.stringify(s));
    assert.equal(await docker(['logs', `nova-${s.id}`]), '', 'the container itself says nothing');

    const running = await openstack(['console', 'log', 'show', s.id]);
    const lines = running.split('\n').filter((l) => l !== '');
    process.stdout.write(`      console log show (running):\n${lines.map((l) => `        ${l}\n`).join('')}`);
    for (const l of lines) assert.match(l, PREFIX);
    const bodies = lines.map((l) => l.replace(PREFIX, ''));
    assert.equal(bodies.length, 3, running);
    assert.match(bodies[0] ?? '', /^spawning: image nd-console-\w+ \([0-9a-f-]{36}\), flavor m1\.tiny: /);
    assert.match(bodies[1] ?? '', new RegExp(`^container nova-${s.id} created from `));
    assert.match(bodies[2] ?? '', /^container started: image \S+, command /);
    assert.ok(bodies[2]?.endsWith(`command ${JSON.stringify(CMD)}`), bodies[2]);

    // Tempest: the full console has more than 3 pieces, length 3 exactly 3
    assert.ok((await novaConsoleOutput(s.id)).split('\n').length > 3);
    assert.equal((await novaConsoleOutput(s.id, 3)).split('\n').length, 3);

    const t0 = Date.now();
    await docker(['exec', `nova-${s.id}`, '/bin/sh', '-c', ': > /tmp/done']);
    await waitServerApi(s.id, (x) => x.status === 'SHUTOFF', 'SHUTOFF after the command ended', 60_000);
    const exited = await pollUntil(
      async () => {
        const out = await openstack(['console', 'log', 'show', s.id]);
        return /container exited: /.test(out) ? out : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 1000, what: 'the exit line' },
    );
    process.stdout.write(`      command ended → exit line in the console: ${Date.now() - t0} ms\n`);
    const after = exited.split('\n').filter((l) => l !== '');
    assert.deepEqual(after.slice(0, 3), lines, 'the lines before stay as they were');
    assert.equal(after.length, 4, exited);
    assert.match(after[3] ?? '', PREFIX);
    assert.equal(after[3]?.replace(PREFIX, ''), 'container exited: status 0');
    const two = await openstack(['console', 'log', 'show', '--lines', '2', s.id]);
    assert.deepEqual(
      two.split('\n').filter((l) => l !== ''),
      [after[3]],
      'nova: --lines 2 is the last line and the empty piece after it',
    );

    const file = join(tmpdir(), 'nova-docker-e2e-state', HOST, 'instances', s.id, 'console-lifecycle.jsonl');
    assert.ok(existsSync(file), file);
    await lab.deleteServer(s.id, 300_000);
    assert.equal(existsSync(join(tmpdir(), 'nova-docker-e2e-state', HOST, 'instances', s.id)), false);
  });
});
