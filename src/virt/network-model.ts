/**
 * Nova's network_info model (nova/network/model.py) as it crosses the wire
 * and sits in instance_info_caches.network_info: a JSON list of VIFs. The
 * compute side builds it from Neutron (src/compute/network.ts); drivers read
 * it to plug. Field names are Nova's; optional where Nova's own model leaves
 * them out of older caches.
 */

/** model.IP / FixedIP / floating: {address, type, version, meta}. */
export interface NetworkIp {
  address: string;
  /** fixed, floating, gateway or dns */
  type: string;
  version: 4 | 6;
  meta: Record<string, unknown>;
  /** fixed IPs only */
  floating_ips?: NetworkIp[];
}

/** model.Route. */
export interface NetworkRoute {
  cidr: string;
  gateway: NetworkIp | null;
  interface: string | null;
  meta: Record<string, unknown>;
}

/** model.Subnet. meta: Zed `dhcp_server`, 2025.1+ `enable_dhcp`; `ipv6_address_mode` when set. */
export interface NetworkSubnet {
  cidr: string;
  version: 4 | 6;
  gateway: NetworkIp | null;
  dns: NetworkIp[];
  routes: NetworkRoute[];
  ips: NetworkIp[];
  meta: Record<string, unknown>;
}

/** model.Network. meta carries injected, tenant_id, mtu, physical_network, tunneled. */
export interface NetworkModel {
  id: string;
  bridge: string | null;
  label: string;
  subnets: NetworkSubnet[];
  meta: Record<string, unknown> & { mtu?: number | null; tenant_id?: string };
  should_create_bridge?: boolean;
}

/** model.VIF (one Neutron port). */
export interface VifModel {
  /** the Neutron port id */
  id: string;
  /** the port's MAC */
  address: string;
  /** binding:vif_type ('ovs', 'bridge', …) */
  type: string;
  /** binding:vif_details */
  details: Record<string, unknown>;
  /** ('tap' + port id)[:14] */
  devname: string;
  ovs_interfaceid: string | null;
  qbh_params: unknown;
  qbg_params: unknown;
  /** port ACTIVE, or admin_state_up false: no network-vif-plugged is expected for it */
  active: boolean;
  vnic_type: string;
  profile: Record<string, unknown>;
  /** the user brought the port: unbind it on delete, never delete it */
  preserve_on_delete: boolean;
  delegate_create?: boolean;
  meta: Record<string, unknown>;
  network: NetworkModel;
}

/** NIC_NAME_LEN in nova/network/model.py. */
export const NIC_NAME_LEN = 14;

/** The host-side device name Nova (and Neutron's agents) expect for a port. */
export function vifDevname(portId: string): string {
  return `tap${portId}`.slice(0, NIC_NAME_LEN);
}

/**
 * Events a VIF plug is expected to produce (libvirt's _get_neutron_events):
 * every VIF Neutron has not yet marked active, except remote-managed ones.
 */
export function expectedPlugEvents(vifs: readonly VifModel[]): Array<[name: 'network-vif-plugged', tag: string]> {
  return vifs
    .filter((v) => v.active === false && v.vnic_type !== 'remote-managed')
    .map((v) => ['network-vif-plugged', v.id]);
}
