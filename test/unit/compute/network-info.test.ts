import assert from 'node:assert/strict';
import { NetworkInfoFormatError, networkInfoOf, parseNetworkInfo } from '../../../src/compute/network-info.js';
import { NovaObject } from '../../../src/objects/base.js';
import { makeVif } from '../../support/vifs.js';

const vif = makeVif({ id: 'port-1', mac: 'fa:16:3e:00:00:01', ip4: '10.0.0.5' });
const cache = (network_info: unknown) => ({
  'nova_object.name': 'InstanceInfoCache',
  'nova_object.namespace': 'nova',
  'nova_object.version': '1.5',
  'nova_object.data': { instance_uuid: 'u', network_info },
});

describe('compute/network-info: networkInfoOf(instance)', () => {
  it('reads info_cache.network_info as a JSON string or as the list itself', () => {
    assert.deepEqual(networkInfoOf(new NovaObject('Instance', '2.7', { info_cache: cache(JSON.stringify([vif])) })), [
      vif,
    ]);
    assert.deepEqual(networkInfoOf(new NovaObject('Instance', '2.7', { info_cache: cache([vif]) })), [vif]);
  });

  it('empty when absent: no info_cache loaded, none saved, null, an empty list or string', () => {
    assert.deepEqual(networkInfoOf(new NovaObject('Instance', '2.7', {})), []);
    assert.deepEqual(networkInfoOf(new NovaObject('Instance', '2.7', { info_cache: null })), []);
    for (const v of [null, undefined, '', '[]', []]) assert.deepEqual(parseNetworkInfo(v), []);
  });

  it('refuses what is not a list of VIFs', () => {
    assert.throws(() => parseNetworkInfo('{"id": 1}'), NetworkInfoFormatError);
    assert.throws(() => parseNetworkInfo('not json'), NetworkInfoFormatError);
    assert.throws(() => parseNetworkInfo([{ address: 'x' }]), /network_info\[0\] is not a VIF/);
  });
});
