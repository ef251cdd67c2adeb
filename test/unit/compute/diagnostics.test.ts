/**
 * get_diagnostics / get_instance_diagnostics (src/compute/diagnostics.ts):
 * nova's manager answers for a RUNNING guest only, with a fault recorded
 * otherwise; the 2.48 reply is a Diagnostics object nova-api can load.
 */
import assert from 'node:assert/strict';
import { NovaObject } from '../../../src/objects/base.js';
import { contextFromValues } from '../../../src/rpc/context.js';
import { PowerState } from '../../../src/virt/power-state.js';
import { addGuest, newInstance, setup } from '../../support/fake-nova.js';

const ctx = contextFromValues({ request_id: 'req-diag', roles: ['admin'], project_id: 'p1' });

describe('compute/diagnostics', () => {
  it('get_instance_diagnostics: a Diagnostics 1.0 of a running guest, counts matching its lists, no driver claimed', async () => {
    const { conductor, driver, manager } = setup();
    const i = newInstance(conductor);
    await addGuest(driver, i.row());
    const reply = await manager.endpoint().methods.get_instance_diagnostics!(ctx, { instance: i.primitive });
    const d = NovaObject.fromPrimitive(reply, 'Diagnostics');
    assert.equal(d.version, '1.0');
    assert.equal(d.str('state'), 'running');
    assert.equal(d.has('driver'), false, 'HypervisorDriverField has no value for a container');
    assert.equal(d.obj('memory_details')?.num('maximum'), 512);
    assert.equal(d.num('num_cpus'), (d.get('cpu_details') as unknown[]).length);
    assert.equal(d.num('num_nics'), 0);
    assert.equal(d.get('config_drive'), false);
  });

  it('get_diagnostics: the free-form reply in libvirt’s key names (memory in KiB)', async () => {
    const { conductor, driver, manager } = setup();
    const i = newInstance(conductor);
    await addGuest(driver, i.row());
    const reply = (await manager.endpoint().methods.get_diagnostics!(ctx, { instance: i.primitive })) as Record<
      string,
      unknown
    >;
    assert.equal(reply.memory, 512 * 1024);
    assert.equal(reply.state, 'running');
    assert.ok('cpu0_time' in reply);
  });

  it('a stopped guest: InstanceInvalidState naming the recorded power state, and a fault (wrap_instance_fault)', async () => {
    const { conductor, driver, manager } = setup();
    const i = newInstance(conductor, { vm_state: 'stopped', power_state: PowerState.SHUTDOWN });
    await addGuest(driver, i.row(), PowerState.SHUTDOWN);
    await assert.rejects(
      async () => await manager.endpoint().methods.get_instance_diagnostics!(ctx, { instance: i.primitive }),
      (err: Error & { novaClass?: string }) =>
        err.novaClass === 'InstanceInvalidState' && /power_state shutdown/.test(err.message),
    );
    assert.equal(conductor.faults.length, 1);
  });

  it('a guest that is gone reads NOSTATE, as nova’s _get_power_state: InstanceInvalidState too', async () => {
    const { conductor, manager } = setup();
    const i = newInstance(conductor);
    await assert.rejects(
      async () => await manager.endpoint().methods.get_diagnostics!(ctx, { instance: i.primitive }),
      (err: Error & { novaClass?: string }) => err.novaClass === 'InstanceInvalidState',
    );
  });
});
