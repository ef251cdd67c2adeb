/**
 * attach_interface / detach_interface (`openstack server add port|network`,
 * `server remove port`): nova/compute/manager.py _attach_interface and
 * _detach_interface. The port is allocated and bound to this host through
 * the network API, then the driver plugs it; a plug that fails gives the
 * port back (deleted, or unbound when the user brought it).
 */
import { errorMessage, NovaError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import type { RequestContext } from '../rpc/context.js';
import type { RpcArgs, RpcHandler } from '../rpc/dispatcher.js';
import type { ComputeDriver } from '../virt/driver.js';
import type { Vif } from '../virt/types.js';
import { interfaceAttachFailed, interfaceDetachFailed } from '../virt/errors.js';
import type { InstanceEvents, VifPlugging } from './instance-events.js';
import { eventWaiter } from './instance-events.js';
import { imageMetaOf } from './instance.js';
import { driverContext, type InstanceStore } from './instance-store.js';
import { NetworkErrors, NetworkRequestList, type NetworkAPI } from './network.js';
import { networkInfoOf } from './network-info.js';

export interface InterfaceAttachDeps {
  store: InstanceStore;
  driver: ComputeDriver;
  /** Absent when `[neutron]` is not configured: attach and detach fail with NetworkErrors.notConfigured. */
  network: NetworkAPI | undefined;
  events: InstanceEvents;
  /** The host ports are bound to (driver.network_binding_host_id: the instance's host, this one). */
  host: string;
  vifPlugging: VifPlugging;
  logger: Logger;
}

export class InterfaceAttach {
  constructor(private readonly d: InterfaceAttachDeps) {}

  methods(): Record<string, RpcHandler> {
    return {
      attach_interface: (ctx, a) => this.attachInterface(ctx, a),
      detach_interface: (ctx, a) => this.detachInterface(ctx, a),
    };
  }

  /** A call: answers the VIF attached (network_info[0]). */
  async attachInterface(ctx: RequestContext, args: RpcArgs): Promise<Vif> {
    const { store, driver, network } = this.d;
    const instance = store.instanceArg(args);
    const uuid = instance.str('uuid') ?? '';
    let result: Vif | undefined;
    await store.decorated(ctx, instance, 'attach_interface', { revertsTaskState: false }, async () => {
      if (!network) throw NetworkErrors.notConfigured();
      const attach = driver.attachInterface?.bind(driver);
      if (!driver.capabilities.supports_attach_interface || !attach) {
        throw new NovaError(
          'AttachInterfaceNotSupported',
          `Attaching interfaces is not supported for instance ${uuid}.`,
          { instance_uuid: uuid, code: 400 },
        );
      }
      const tag = typeof args.tag === 'string' && args.tag !== '' ? args.tag : null;
      if (tag && !driver.capabilities.supports_tagged_attach_interface) {
        throw new NovaError(
          'NetworkInterfaceTaggedAttachNotSupported',
          'Tagged network interface attach is not supported by this compute service.',
          { code: 400 },
        );
      }
      const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
      const requested = new NetworkRequestList([
        {
          network_id: str(args.network_id),
          address: str(args.requested_ip),
          port_id: str(args.port_id),
          pci_request_id: null,
          tag,
          arq_uuid: null,
          device_profile: null,
        },
      ]);
      const nwInfo = await network.allocateForInstance(ctx, instance, requested, { bindHostId: this.d.host });
      const vif = nwInfo[0];
      if (nwInfo.length !== 1 || !vif) {
        store.log('error', `allocate_for_instance returned ${nwInfo.length} ports`, ctx, uuid);
        throw interfaceAttachFailed(uuid);
      }
      try {
        await attach(
          {
            ...driverContext(ctx),
            waitForInstanceEvents: eventWaiter(this.d.events, instance, this.vifPluggingOptions()),
          },
          store.spec(instance),
          imageMetaOf(undefined, instance.str('image_ref')),
          vif,
        );
      } catch (err) {
        if (!(err instanceof NovaError)) throw err;
        store.log(
          'warn',
          `attach interface failed , try to deallocate port ${vif.id}, reason: ${err.message}`,
          ctx,
          uuid,
        );
        await network.deallocatePortForInstance(ctx, instance, vif.id);
        throw interfaceAttachFailed(uuid, err);
      }
      result = vif;
    });
    return result!;
  }

  private vifPluggingOptions() {
    return { ...this.d.vifPlugging, logger: this.d.logger };
  }

  /** A cast: the VIF unplugged, then the port given back; the cache saved without it. */
  async detachInterface(ctx: RequestContext, args: RpcArgs): Promise<void> {
    const { store, driver, network } = this.d;
    const instance = store.instanceArg(args);
    const uuid = instance.str('uuid') ?? '';
    const portId = typeof args.port_id === 'string' ? args.port_id : '';
    await store.decorated(ctx, instance, 'detach_interface', { revertsTaskState: false }, async () => {
      if (!network) throw NetworkErrors.notConfigured();
      await network.refreshInfoCache(ctx, instance);
      const condemned = networkInfoOf(instance).find((v) => v.id === portId);
      if (!condemned) throw NetworkErrors.portNotAttached(portId);
      const detach = driver.detachInterface?.bind(driver);
      try {
        if (detach) await detach(driverContext(ctx), store.spec(instance), condemned);
      } catch (err) {
        if (!(err instanceof NovaError)) throw err;
        store.log(
          err.novaClass === 'InstanceNotFound' ? 'debug' : 'warn',
          `Detach interface failed, port_id=${portId}, reason: ${errorMessage(err)}`,
          ctx,
          uuid,
        );
        throw interfaceDetachFailed(uuid, errorMessage(err), err);
      }
      await network.deallocatePortForInstance(ctx, instance, portId);
    });
  }
}
