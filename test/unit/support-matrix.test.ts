/**
 * The README's "Supported operations" table stays true: every row says which
 * compute RPC methods it covers, a "works" row's methods have real handlers,
 * a "not yet"/"not supported" row's methods are answered by the
 * unsupported-action handlers (clear error, nothing stuck). A new row or a
 * changed status fails here until this table is updated with it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { UNSUPPORTED_CALLS, UNSUPPORTED_INSTANCE_CASTS } from '../../src/compute/manager.js';
import { RELEASES } from '../../src/objects/releases.js';
import { REPO_ROOT } from '../support/broker.js';
import { setup } from '../support/fake-nova.js';

/** README row (its first cell, up to the first comma or space-paren) → the RPC methods behind it. */
const ROWS: Record<string, string[]> = {
  boot: ['build_and_run_instance'],
  'registry tags as Glance images': [], // a CLI command, no compute RPC
  delete: ['terminate_instance'],
  '`nova list`, `server show`': [], // Nova's DB, kept true by the power-state sync and events
  'agent restart, crash, host reboot': [], // init_host, no RPC
  '`hypervisor show` uptime, `console log show`': ['get_host_uptime', 'get_console_output'],
  '`server show --diagnostics`': ['get_diagnostics', 'get_instance_diagnostics'],
  'stop, start': ['stop_instance', 'start_instance'],
  reboot: ['reboot_instance'],
  'pause, unpause': ['pause_instance', 'unpause_instance'],
  'suspend, resume': ['suspend_instance', 'resume_instance'],
  snapshot: ['snapshot_instance', 'backup_instance'],
  rebuild: ['rebuild_instance'],
  'resize, `resize confirm`, `resize revert`': [
    'prep_resize',
    'resize_instance',
    'finish_resize',
    'confirm_resize',
    'revert_resize',
    'finish_revert_resize',
  ],
  'shelve, unshelve': ['shelve_instance', 'shelve_offload_instance', 'unshelve_instance'],
  'rescue, soft delete, …': ['rescue_instance', 'unrescue_instance', 'soft_delete_instance', 'restore_instance'],
  'cold migration to another host, evacuate': [], // prep_resize refuses another host; evacuate never reaches us
  'consoles (VNC, SPICE, serial), live migration, volumes': [
    'get_vnc_console',
    'get_spice_console',
    'get_serial_console',
    'live_migration',
    'check_can_live_migrate_destination',
    'attach_volume',
    'detach_volume',
    'swap_volume',
  ],
  'Neutron networking': ['attach_interface', 'detach_interface'],
};

const cells = (line: string): string[] =>
  line
    .replace(/^\| /, '')
    .replace(/ \|$/, '')
    .split(' | ')
    .map((c) => c.trim());

function readmeTable(): { header: string[]; rows: Array<{ what: string; releases: string[]; status: string }> } {
  const readme = readFileSync(`${REPO_ROOT}README.md`, 'utf8');
  const section = readme.split('\n## Supported operations\n')[1]?.split('\n## ')[0] ?? '';
  const lines = section.split('\n').filter((l) => l.startsWith('| '));
  return {
    header: cells(lines.find((l) => l.startsWith('| Nova action')) ?? ''),
    rows: lines
      .filter((l) => !l.startsWith('| Nova action') && !l.startsWith('| ---'))
      .map((l) => {
        const c = cells(l);
        return { what: c[0] ?? '', releases: c.slice(1, -1), status: c.at(-1) ?? '' };
      }),
  };
}

function rowKey(what: string): string | undefined {
  return Object.keys(ROWS).find((k) => what === k || what.startsWith(`${k} `) || what.startsWith(`${k},`));
}

describe('README support matrix', () => {
  const { header, rows } = readmeTable();
  const methods = setup().manager.endpoint().methods;
  const unsupported = new Set<string>([...UNSUPPORTED_CALLS, ...UNSUPPORTED_INSTANCE_CASTS]);

  it('has the table, and every row is known here', () => {
    assert.ok(rows.length >= 10, 'the Supported operations table is in the README');
    for (const r of rows) assert.ok(rowKey(r.what), `README row not mapped to RPC methods in this test: ${r.what}`);
    for (const k of Object.keys(ROWS))
      assert.ok(
        rows.some((r) => rowKey(r.what) === k),
        `row gone: ${k}`,
      );
  });

  it('has a column per release table, in order; a release cell is ✓ exactly where the row works', () => {
    const names = RELEASES.map((r) => (r.name === 'zed' ? 'Zed' : r.name));
    assert.deepEqual(header, ['Nova action', ...names, 'status']);
    for (const r of rows) {
      const works = /^(works|recovery)/.test(r.status);
      assert.deepEqual(
        r.releases,
        names.map(() => (works ? '✓' : '—')),
        `release cells of "${r.what}"`,
      );
    }
  });

  it('a "works" row has real handlers; a "not yet"/"not supported" row fails cleanly', () => {
    for (const r of rows) {
      const names = ROWS[rowKey(r.what) ?? ''] ?? [];
      const works = /^(works|recovery)/.test(r.status);
      assert.ok(works || /^not (yet|supported)/.test(r.status), `status of "${r.what}": ${r.status}`);
      for (const m of names) {
        assert.ok(methods[m], `${m} (${r.what}) is answered at all`);
        assert.equal(unsupported.has(m), !works, `${m}: README says "${r.status.slice(0, 40)}…"`);
      }
    }
  });
});
