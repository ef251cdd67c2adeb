import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DockerContainerSummary } from '../../src/clients/docker/index.js';
import { LABELS, MANAGED_BY_VALUE } from '../../src/virt/docker/labels.js';
import {
  formatStatusJson,
  formatStatusTable,
  statusRows,
  type NovaInstanceState,
  type StatusReport,
} from '../../src/status.js';

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const C = 'cccccccc-0000-4000-8000-000000000003';
const D = 'dddddddd-0000-4000-8000-000000000004';

function container(uuid: string, state: string, status: string, name?: string): DockerContainerSummary {
  return {
    Id: `${uuid.slice(0, 8)}${'0'.repeat(56)}`,
    Names: [`/nova-${uuid}`],
    Image: 'x',
    Created: 0,
    State: state,
    Status: status,
    Labels: {
      [LABELS.managedBy]: MANAGED_BY_VALUE,
      [LABELS.host]: 'h1',
      [LABELS.instanceUuid]: uuid,
      [LABELS.flavor]: 'm1.tiny',
      ...(name ? { [LABELS.displayName]: name } : {}),
    },
  };
}

const CONTAINERS = [
  container(A, 'running', 'Up 3 minutes', 'web-label'),
  container(B, 'exited', 'Exited (0) 1 minute ago', 'db'),
  container(C, 'running', 'Up 1 second'),
];

const NOVA: NovaInstanceState[] = [
  { uuid: A, display_name: 'web', vm_state: 'active', task_state: null, power_state: 1 },
  { uuid: B, display_name: 'db', vm_state: 'stopped', task_state: 'powering-on', power_state: 4 },
  { uuid: D, display_name: 'ghost', vm_state: 'error', task_state: null, power_state: 0 },
];

describe('status report', () => {
  it("joins containers with Nova's instances by uuid, both ways", () => {
    const rows = statusRows(CONTAINERS, NOVA);
    assert.deepEqual(
      rows.map((r) => [r.name, r.uuid, r.container_state, r.power_state, r.vm_state, r.task_state, r.in_nova]),
      [
        [null, C, 'running', 'running', null, null, false],
        ['db', B, 'exited', 'shutdown', 'stopped', 'powering-on', true],
        ['ghost', D, null, null, 'error', null, true],
        ['web', A, 'running', 'running', 'active', null, true],
      ],
    );
    assert.equal(rows[3]?.container, `nova-${A}`);
    assert.equal(rows[3]?.flavor, 'm1.tiny');
  });

  it('falls back to the display-name label without Nova, and leaves Nova fields unknown', () => {
    const rows = statusRows(CONTAINERS, undefined);
    assert.deepEqual(
      rows.map((r) => [r.name, r.vm_state, r.in_nova]),
      [
        [null, null, null],
        ['db', null, null],
        ['web-label', null, null],
      ],
    );
  });

  it('prints an aligned table with Nova states', () => {
    const report: StatusReport = { host: 'h1', nova: { reachable: true }, instances: statusRows(CONTAINERS, NOVA) };
    const text = formatStatusTable(report);
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, 5);
    assert.match(lines[0] ?? '', /^UUID {34}NAME +FLAVOR +CONTAINER +POWER STATE +VM STATE +TASK STATE$/);
    assert.match(
      lines[1] ?? '',
      new RegExp(`^${C} +- +m1\\.tiny +running \\(Up 1 second\\) +running +not in Nova +-$`),
    );
    assert.match(lines[2] ?? '', /db +m1\.tiny +exited \(Exited \(0\) 1 minute ago\) +shutdown +stopped +powering-on$/);
    assert.match(lines[3] ?? '', /ghost +- +no container +- +error +-$/);
    // columns line up: every row starts its NAME where the header does
    const nameAt = lines[0]?.indexOf('NAME');
    for (const l of lines.slice(1)) assert.equal(l.charAt((nameAt ?? 0) - 1), ' ');
    assert.ok(!text.includes('note:'));
  });

  it('prints Docker-only columns and a note when Nova is not reachable', () => {
    const report: StatusReport = {
      host: 'h1',
      nova: { reachable: false, error: 'RabbitMQ is unreachable: connect ECONNREFUSED 127.0.0.1:5672' },
      instances: statusRows(CONTAINERS, undefined),
    };
    const text = formatStatusTable(report);
    assert.ok(!text.includes('VM STATE'));
    assert.match(
      text,
      /\nnote: Nova's view is missing \(RabbitMQ is unreachable: connect ECONNREFUSED 127\.0\.0\.1:5672\); showing Docker only/,
    );
  });

  it('says so when the host has no instances', () => {
    const text = formatStatusTable({ host: 'h1', nova: { reachable: true }, instances: [] });
    assert.equal(text, 'UUID  NAME  FLAVOR  CONTAINER  POWER STATE  VM STATE  TASK STATE\n(no instances on host h1)\n');
  });

  it('prints JSON with every field', () => {
    const report: StatusReport = { host: 'h1', nova: { reachable: true }, instances: statusRows(CONTAINERS, NOVA) };
    const parsed = JSON.parse(formatStatusJson(report)) as StatusReport;
    assert.deepEqual(parsed, report);
    assert.deepEqual(Object.keys(parsed.instances[0] ?? {}), [
      'uuid',
      'name',
      'flavor',
      'container',
      'container_state',
      'container_status',
      'power_state',
      'vm_state',
      'task_state',
      'in_nova',
    ]);
  });
});

describe('nova-docker status (usage)', () => {
  const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30000 });

  it('refuses an unknown format or missing config with exit 2', () => {
    const bad = run('status', '--config-file', '/nonexistent.conf', '--format', 'yaml');
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--format must be table or json/);
    assert.equal(run('status').status, 2);
  });

  it('exits 1 naming Docker when dockerd does not answer', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nd-status-'));
    const conf = join(dir, 'nova.conf');
    writeFileSync(
      conf,
      '[DEFAULT]\nhost = h\ntransport_url = rabbit://u:p@127.0.0.1:1/\n[docker]\nhost_url = unix:///nonexistent.sock\n',
    );
    const r = run('status', '--config-file', conf, '--format=json');
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^nova-docker status: Docker did not answer: /);
    assert.equal(r.stdout, '');
  });
});
