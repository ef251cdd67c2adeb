/** The scheduler's instance-info fanout casts on `scheduler_fanout` (nova/scheduler/rpcapi.py 4.2). */
import type { RequestContext } from '../rpc/context.js';
import type { RpcClient } from '../rpc/client.js';
import type { SchedulerNotifier } from './collaborators.js';

const VERSION = '4.2';

export function schedulerNotifier(rpc: RpcClient, instanceListVersion: string): SchedulerNotifier {
  const fanout = (ctx: RequestContext, method: string, args: Record<string, unknown>): Promise<void> =>
    rpc.fanoutCast(ctx, method, args, { version: VERSION });
  return {
    // nova's compute wraps one instance in an InstanceList: the scheduler reads `.objects`
    updateInstanceInfo: (ctx, hostName, instance) =>
      fanout(ctx, 'update_instance_info', {
        host_name: hostName,
        instance_info: {
          'nova_object.name': 'InstanceList',
          'nova_object.namespace': 'nova',
          'nova_object.version': instanceListVersion,
          'nova_object.data': { objects: [instance.toPrimitive()] },
        },
      }),
    deleteInstanceInfo: (ctx, hostName, instanceUuid) =>
      fanout(ctx, 'delete_instance_info', { host_name: hostName, instance_uuid: instanceUuid }),
    syncInstanceInfo: (ctx, hostName, instanceUuids) =>
      fanout(ctx, 'sync_instance_info', { host_name: hostName, instance_uuids: instanceUuids }),
  };
}
