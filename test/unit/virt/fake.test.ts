import { randomUUID } from 'node:crypto';
import { FakeDriver } from '../../../src/virt/fake/driver.js';
import { describeDriverContract } from '../../contract/driver.contract.js';
import { makeVif } from '../../support/vifs.js';

const MISSING = 'missing-image-id';

describeDriverContract('FakeDriver', () => {
  const driver = new FakeDriver({ host: 'fake-host', imageExists: (i) => i.id !== MISSING });
  let n = 0;
  return {
    driver,
    host: 'fake-host',
    image: { id: 'fake-image', name: 'fake', properties: {} },
    missingImage: { id: MISSING, name: 'gone', properties: {} },
    crash: (inst) => Promise.resolve(driver.simulateCrash(inst.uuid)),
    leftovers: (uuid) => Promise.resolve(driver.guests.has(uuid) || driver.pluggedFor(uuid).length > 0),
    otherHostDriver: () => new FakeDriver({ host: 'other-host' }),
    cleanup: () => {
      driver.guests.clear();
      driver.plugged.clear();
      return Promise.resolve();
    },
    networkInfo: (count) =>
      Array.from({ length: count }, () => {
        n++;
        return makeVif({
          id: randomUUID(),
          mac: `fa:16:3e:00:00:${(n % 256).toString(16).padStart(2, '0')}`,
          ip4: `10.0.0.${n % 250}`,
        });
      }),
    pluggedPorts: (uuid) => Promise.resolve(driver.pluggedFor(uuid)),
  };
});
