/** Hand-made network_info for driver tests (Nova's VIF model, one subnet per IP version). */
import type { VifModel } from '../../src/virt/network-model.js';

export interface VifSpec {
  /** Port id (a uuid). */
  id: string;
  mac: string;
  /** IPv4 address inside `cidr4`. */
  ip4: string;
  cidr4?: string;
  gateway4?: string | null;
  /** IPv6 address inside `cidr6`, or none. */
  ip6?: string;
  cidr6?: string;
  gateway6?: string | null;
  dns?: string[];
  routes?: Array<{ cidr: string; gateway: string }>;
  mtu?: number;
  /** binding:vif_details.bridge_name */
  bridge?: string;
  type?: string;
  vnicType?: string;
  /** Neutron has the port ACTIVE already (no network-vif-plugged is expected). */
  active?: boolean;
}

const ip = (address: string, type: string, version: 4 | 6) => ({ address, type, version, meta: {} });

export function makeVif(s: VifSpec): VifModel {
  const subnets: VifModel['network']['subnets'] = [
    {
      cidr: s.cidr4 ?? '10.0.0.0/24',
      version: 4,
      gateway: s.gateway4 === null ? null : ip(s.gateway4 ?? '10.0.0.1', 'gateway', 4),
      dns: (s.dns ?? []).map((d) => ip(d, 'dns', 4)),
      routes: (s.routes ?? []).map((r) => ({
        cidr: r.cidr,
        gateway: ip(r.gateway, 'gateway', 4),
        interface: null,
        meta: {},
      })),
      ips: [{ ...ip(s.ip4, 'fixed', 4), floating_ips: [] }],
      meta: { dhcp_server: '10.0.0.2' },
    },
  ];
  if (s.ip6) {
    subnets.push({
      cidr: s.cidr6 ?? 'fd00:10::/64',
      version: 6,
      gateway: s.gateway6 === null ? null : ip(s.gateway6 ?? 'fd00:10::1', 'gateway', 6),
      dns: [],
      routes: [],
      ips: [{ ...ip(s.ip6, 'fixed', 6), floating_ips: [] }],
      meta: {},
    });
  }
  return {
    id: s.id,
    address: s.mac,
    type: s.type ?? 'ovs',
    details: { port_filter: true, connectivity: 'l2', ...(s.bridge ? { bridge_name: s.bridge } : {}) },
    devname: `tap${s.id}`.slice(0, 14),
    ovs_interfaceid: s.id,
    qbh_params: null,
    qbg_params: null,
    active: s.active ?? false,
    vnic_type: s.vnicType ?? 'normal',
    profile: {},
    preserve_on_delete: false,
    meta: {},
    network: {
      id: 'net-test',
      bridge: s.bridge ?? 'br-int',
      label: 'private',
      subnets,
      meta: { mtu: s.mtu ?? 1450, tenant_id: 'p-test', injected: false },
    },
  };
}
