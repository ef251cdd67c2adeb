import { FakeDriver } from '../../../src/virt/fake/driver.js';
import { describeDriverContract } from '../../contract/driver.contract.js';

const MISSING = 'missing-image-id';

describeDriverContract('FakeDriver', () => {
  const driver = new FakeDriver({ host: 'fake-host', imageExists: (i) => i.id !== MISSING });
  return {
    driver,
    host: 'fake-host',
    image: { id: 'fake-image', name: 'fake', properties: {} },
    missingImage: { id: MISSING, name: 'gone', properties: {} },
    crash: (inst) => Promise.resolve(driver.simulateCrash(inst.uuid)),
    leftovers: (uuid) => Promise.resolve(driver.guests.has(uuid)),
    otherHostDriver: () => new FakeDriver({ host: 'other-host' }),
    cleanup: () => Promise.resolve(driver.guests.clear()),
  };
});
