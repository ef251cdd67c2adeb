/**
 * Neutron v2.0 resources as the compute side reads them. Only the fields
 * Nova's network API uses are named; Neutron sends more, and the records keep
 * them (extension attributes such as `binding:*` or `dns_name` are present
 * only when the extension is loaded).
 */

/** One entry of a port's `fixed_ips`. */
export interface NeutronFixedIp {
  subnet_id: string;
  ip_address: string;
}

export interface NeutronPort {
  id: string;
  network_id: string;
  /** Neutron sends both; `tenant_id` is what Nova compares with the instance's project. */
  tenant_id?: string;
  project_id?: string;
  mac_address: string;
  admin_state_up: boolean;
  /** ACTIVE, DOWN, BUILD or ERROR. */
  status: string;
  device_id: string;
  device_owner: string;
  fixed_ips: NeutronFixedIp[];
  security_groups?: string[];
  port_security_enabled?: boolean;
  dns_name?: string;
  'binding:host_id'?: string | null;
  /** ovs, bridge, …; `unbound` before a host is set, `binding_failed` when no mechanism driver could bind it. */
  'binding:vif_type'?: string;
  'binding:vif_details'?: Record<string, unknown> | null;
  'binding:vnic_type'?: string;
  'binding:profile'?: Record<string, unknown> | null;
  /** QoS minimum-bandwidth ports; admin-only. */
  resource_request?: Record<string, unknown> | null;
  [attribute: string]: unknown;
}

export interface NeutronNetwork {
  id: string;
  name: string;
  tenant_id?: string;
  project_id?: string;
  shared?: boolean;
  admin_state_up?: boolean;
  status?: string;
  subnets?: string[];
  mtu?: number;
  port_security_enabled?: boolean;
  'router:external'?: boolean;
  dns_domain?: string;
  'provider:network_type'?: string;
  'provider:physical_network'?: string | null;
  segments?: Array<Record<string, unknown>>;
  [attribute: string]: unknown;
}

export interface NeutronHostRoute {
  destination: string;
  nexthop: string;
}

export interface NeutronSubnet {
  id: string;
  network_id: string;
  cidr: string;
  ip_version: 4 | 6;
  gateway_ip: string | null;
  enable_dhcp: boolean;
  dns_nameservers: string[];
  host_routes: NeutronHostRoute[];
  ipv6_address_mode?: string | null;
  ipv6_ra_mode?: string | null;
  [attribute: string]: unknown;
}

export interface NeutronSecurityGroup {
  id: string;
  name: string;
  tenant_id?: string;
  [attribute: string]: unknown;
}

export interface NeutronFloatingIp {
  id: string;
  floating_ip_address: string;
  fixed_ip_address: string | null;
  port_id: string | null;
  [attribute: string]: unknown;
}

export interface NeutronExtension {
  alias: string;
  name?: string;
  [attribute: string]: unknown;
}

/**
 * Query filters of a list call: a list value is sent as the key repeated
 * (`id=a&id=b`, as neutronclient does), booleans as Python prints them.
 */
export type NeutronQuery = Record<string, string | boolean | number | readonly string[] | undefined>;

/** The body of POST /v2.0/ports (inside `port`). */
export type PortCreate = Partial<NeutronPort> & { network_id: string };

/** The body of PUT /v2.0/ports/{id} (inside `port`); null clears an attribute (binding:host_id). */
export type PortUpdate = Record<string, unknown>;
