/**
 * The power-off timeout (nova's _get_power_off_values): one reading of the
 * image's os_shutdown_timeout, the same for stop, rebuild and resize.
 */
import assert from 'node:assert/strict';
import { shutdownTimeout } from '../../../src/compute/instance.js';
import { NovaObject } from '../../../src/objects/base.js';
import { contextFromValues } from '../../../src/rpc/context.js';
import { pollUntil } from '../../../src/common/poll.js';
import { addGuest, flavor, newInstance, setup } from '../../support/fake-nova.js';

const withSysmeta = (sysmeta: Record<string, unknown> | undefined) =>
  new NovaObject('Instance', '2.7', sysmeta === undefined ? {} : { system_metadata: sysmeta });

describe('compute/instance: shutdownTimeout', () => {
  // [image_os_shutdown_timeout, clean shutdown, timeout given to the driver (undefined: its default)]
  const cases: Array<[unknown, boolean, number | undefined]> = [
    [undefined, true, undefined],
    ['30', true, 30],
    [' 7 ', true, 7], // int(' 7 ') == 7
    ['1_000', true, 1000],
    ['0', true, 0],
    ['-5', true, 0], // libvirt's power_off: no clean shutdown for a timeout <= 0
    ['', true, undefined], // int('') raises ValueError: get_value_from_system_metadata's default
    ['5.0', true, undefined],
    ['abc', true, undefined],
    [null, true, undefined],
    ['30', false, 0],
    [undefined, false, 0],
  ];
  for (const [v, clean, want] of cases) {
    it(`os_shutdown_timeout ${JSON.stringify(v)}, clean_shutdown ${clean} → ${String(want)}`, () => {
      const sysmeta = v === undefined ? {} : { image_os_shutdown_timeout: v };
      assert.equal(shutdownTimeout(withSysmeta(sysmeta), clean), want);
    });
  }

  it('no system_metadata loaded: the default', () => {
    assert.equal(shutdownTimeout(withSysmeta(undefined), true), undefined);
  });

  it('stop, rebuild and resize hand the driver the same timeout for the same image property', async () => {
    const ctx = contextFromValues({ request_id: 'req-timeout', roles: ['admin'], project_id: 'p1' });
    for (const value of ['', '12']) {
      const t = setup();
      const methods = t.manager.endpoint().methods;
      const call = (m: string, args: Record<string, unknown>) => Promise.resolve(methods[m]!(ctx, args));
      const seen: Array<[string, number | undefined]> = [];
      const powerOff = t.driver.powerOff.bind(t.driver);
      const migrate = t.driver.migrateDiskAndPowerOff.bind(t.driver);
      t.driver.powerOff = (i, s) => {
        seen.push(['stop/rebuild', s]);
        return powerOff(i, s);
      };
      t.driver.migrateDiskAndPowerOff = (c, i, h, f, s) => {
        seen.push(['resize', s]);
        return migrate(c, i, h, f, s);
      };
      const inst = (fields: Record<string, unknown>) => {
        const { uuid, row } = newInstance(t.conductor, {
          system_metadata: { image_os_shutdown_timeout: value },
          ...fields,
        });
        return { uuid, row, arg: () => new NovaObject('Instance', '2.7', { ...row() }).toPrimitive() };
      };

      const stopped = inst({ task_state: 'powering-off' });
      await addGuest(t.driver, stopped.row());
      await call('stop_instance', { instance: stopped.arg(), clean_shutdown: true });

      const rebuilt = inst({ task_state: 'rebuilding' });
      await addGuest(t.driver, rebuilt.row());
      await call('rebuild_instance', { instance: rebuilt.arg(), image_ref: 'img-1', recreate: false });

      const resized = inst({ task_state: 'resize_prep' });
      await addGuest(t.driver, resized.row());
      const mig = { id: 7, uuid: 'mig-1', instance_uuid: resized.uuid, source_compute: resized.row().host };
      t.conductor.migrations.set(7, { ...mig, source_node: resized.row().node, status: 'pre-migrating' });
      await call('prep_resize', {
        instance: resized.arg(),
        flavor: flavor(6, 'm1.big', 1024, 2),
        image: {},
        migration: new NovaObject('Migration', '1.7', { ...t.conductor.migrations.get(7) }).toPrimitive(),
        node: resized.row().node,
        clean_shutdown: true,
      });
      await pollUntil(() => (seen.some(([w]) => w === 'resize') ? true : undefined), {
        timeoutMs: 5000,
        intervalMs: 5,
        what: 'the resize to power off the guest',
      });

      const want = value === '' ? undefined : 12;
      assert.deepEqual(
        seen,
        [
          ['stop/rebuild', want],
          ['stop/rebuild', want],
          ['resize', want],
        ],
        `os_shutdown_timeout ${JSON.stringify(value)}`,
      );
    }
  });
});
