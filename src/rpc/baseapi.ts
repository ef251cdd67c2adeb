/** oslo's baseapi endpoint (nova/baserpc.py): `ping` answers who we are. */
import type { Endpoint } from './dispatcher.js';

export function baseApiEndpoint(service: string): Endpoint {
  return {
    namespace: 'baseapi',
    version: '1.1',
    methods: {
      ping: (_ctx, args) => ({ service, arg: args.arg ?? null }),
      get_backdoor_port: () => null,
    },
  };
}
