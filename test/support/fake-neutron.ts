/**
 * Neutron v2.0, in memory behind nock, for unit tests of the compute side's
 * network API: networks, subnets, ports (create, bind, update, delete, with
 * ML2/OVS-like binding), DHCP ports, security groups, floating IPs and
 * extensions, list filters as Neutron applies them, and a log of every call
 * (method, path, token) to check who did what.
 */
import nock from 'nock';
import type {
  NeutronFloatingIp,
  NeutronNetwork,
  NeutronPort,
  NeutronSecurityGroup,
  NeutronSubnet,
} from '../../src/clients/neutron/index.js';

export const NEUTRON_URL = 'http://127.0.0.1:65007';

export interface NeutronCall {
  method: string;
  path: string;
  token: string | undefined;
  body?: unknown;
}

function matches(item: Record<string, unknown>, query: URLSearchParams): boolean {
  for (const key of new Set(query.keys())) {
    if (key === 'fields') continue;
    const wanted = query.getAll(key);
    const v = item[key];
    const s = typeof v === 'boolean' ? (v ? 'True' : 'False') : String(v);
    if (!wanted.some((w) => w === s || (typeof v === 'boolean' && w.toLowerCase() === s.toLowerCase()))) return false;
  }
  return true;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

function neutronError(status: number, type: string, message: string): [number, nock.ReplyBody] {
  return [status, { NeutronError: { type, message, detail: '' } }];
}

export class FakeNeutron {
  readonly networks = new Map<string, NeutronNetwork>();
  readonly subnets = new Map<string, NeutronSubnet>();
  readonly ports = new Map<string, NeutronPort>();
  readonly securityGroups: NeutronSecurityGroup[] = [];
  readonly floatingIps: NeutronFloatingIp[] = [];
  extensions = ['dns-integration', 'binding', 'port-security'];
  /** Without the L3 API (no router service plugin) /v2.0/floatingips is a 404, as in the lab. */
  l3 = true;
  readonly calls: NeutronCall[] = [];
  /** Hosts whose bindings fail (binding:vif_type binding_failed). */
  readonly failingHosts = new Set<string>();
  /** The next port creates, in order: refused with this Neutron error (status, type), or null to go through. */
  readonly createFailures: Array<[number, string] | null> = [];
  #seq = 0;
  #scope: nock.Scope | undefined;

  start(): this {
    const scope = nock(NEUTRON_URL).persist();
    const handle = (method: string) =>
      function (this: nock.ReplyFnContext, uri: string, body: nock.Body): nock.ReplyFnResult {
        return fake.handle(method, uri, body, this.req.headers['x-auth-token']);
      };
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const fake = this;
    scope.get(/\/v2\.0\/.*/).reply(handle('GET'));
    scope.post(/\/v2\.0\/.*/).reply(handle('POST'));
    scope.put(/\/v2\.0\/.*/).reply(handle('PUT'));
    scope.delete(/\/v2\.0\/.*/).reply(handle('DELETE'));
    this.#scope = scope;
    return this;
  }

  stop(): void {
    this.#scope?.persist(false);
    nock.cleanAll();
  }

  id(prefix: string): string {
    this.#seq++;
    const n = this.#seq.toString(16).padStart(12, '0');
    return `${prefix.padEnd(8, '0').slice(0, 8)}-0000-4000-8000-${n}`;
  }

  /** A network with one IPv4 subnet (DHCP on) and, with `dhcpPort`, its DHCP port. */
  addNetwork(
    o: Partial<NeutronNetwork> & { cidr?: string; gateway?: string | null; dhcpPort?: boolean; project?: string } = {},
  ): { network: NeutronNetwork; subnet: NeutronSubnet } {
    const project = o.project ?? 'proj-1';
    const netId = o.id ?? this.id('aaaa');
    const subnetId = this.id('5555');
    const cidr = o.cidr ?? '10.0.0.0/24';
    const prefix = cidr.split('.').slice(0, 3).join('.');
    const subnet: NeutronSubnet = {
      id: subnetId,
      network_id: netId,
      cidr,
      ip_version: 4,
      gateway_ip: o.gateway === undefined ? `${prefix}.1` : o.gateway,
      enable_dhcp: true,
      dns_nameservers: ['10.9.9.9'],
      host_routes: [{ destination: '192.168.9.0/24', nexthop: `${prefix}.9` }],
      tenant_id: project,
    };
    const network: NeutronNetwork = {
      id: netId,
      name: o.name ?? 'private',
      tenant_id: project,
      project_id: project,
      shared: o.shared ?? false,
      admin_state_up: true,
      status: 'ACTIVE',
      subnets: [subnetId],
      mtu: o.mtu ?? 1450,
      port_security_enabled: true,
      'router:external': o['router:external'] ?? false,
      'provider:network_type': 'vxlan',
      'provider:physical_network': null,
      ...(o.dns_domain ? { dns_domain: o.dns_domain } : {}),
    };
    this.networks.set(netId, network);
    this.subnets.set(subnetId, subnet);
    if (o.dhcpPort) {
      const dhcp = this.#newPort({
        network_id: netId,
        tenant_id: project,
        device_owner: 'network:dhcp',
        fixed_ips: [{ ip_address: `${prefix}.2` }],
      });
      dhcp.status = 'ACTIVE';
    }
    return { network, subnet };
  }

  #ipCount = new Map<string, number>();

  #newPort(b: Record<string, unknown>): NeutronPort {
    const netId = String(b.network_id);
    const id = this.id('9999');
    const net = this.networks.get(netId);
    const subnet = net?.subnets?.[0] ? this.subnets.get(net.subnets[0]) : undefined;
    let fixed: Array<{ subnet_id: string; ip_address: string }> = [];
    const asked = b.fixed_ips as Array<{ ip_address?: string }> | undefined;
    if (subnet) {
      if (asked?.[0]?.ip_address) {
        fixed = [{ subnet_id: subnet.id, ip_address: asked[0].ip_address }];
      } else {
        const n = (this.#ipCount.get(subnet.id) ?? 9) + 1;
        this.#ipCount.set(subnet.id, n);
        fixed = [{ subnet_id: subnet.id, ip_address: `${subnet.cidr.split('.').slice(0, 3).join('.')}.${n}` }];
      }
    }
    const port: NeutronPort = {
      id,
      network_id: netId,
      tenant_id: str(b.tenant_id) ?? net?.tenant_id ?? '',
      mac_address: `fa:16:3e:00:00:${(this.#seq % 256).toString(16).padStart(2, '0')}`,
      admin_state_up: b.admin_state_up !== false,
      status: 'DOWN',
      device_id: str(b.device_id) ?? '',
      device_owner: str(b.device_owner) ?? '',
      fixed_ips: fixed,
      security_groups: (b.security_groups as string[] | undefined) ?? [],
      dns_name: '',
      'binding:host_id': '',
      'binding:vif_type': 'unbound',
      'binding:vif_details': {},
      'binding:vnic_type': 'normal',
      'binding:profile': {},
      resource_request: null,
    };
    this.ports.set(id, port);
    return port;
  }

  /** A port the user made beforehand (server create --port). */
  addUserPort(networkId: string, o: Partial<NeutronPort> = {}): NeutronPort {
    const p = this.#newPort({ network_id: networkId, tenant_id: 'proj-1' });
    Object.assign(p, o);
    return p;
  }

  #list(resource: string, query: URLSearchParams): [number, nock.ReplyBody] {
    const pick = <T extends object>(items: Iterable<T>): T[] =>
      [...items].filter((i) => matches(i as Record<string, unknown>, query));
    switch (resource) {
      case 'extensions':
        return [200, { extensions: this.extensions.map((alias) => ({ alias, name: alias })) }];
      case 'networks':
        return [200, { networks: pick(this.networks.values()) }];
      case 'subnets':
        return [200, { subnets: pick(this.subnets.values()) }];
      case 'ports':
        return [200, { ports: pick(this.ports.values()) }];
      case 'security-groups':
        return [200, { security_groups: pick(this.securityGroups) }];
      case 'floatingips':
        if (!this.l3) return neutronError(404, 'HTTPNotFound', 'The resource could not be found.');
        return [200, { floatingips: pick(this.floatingIps) }];
      default:
        return neutronError(404, 'HTTPNotFound', `${resource} not found`);
    }
  }

  #bind(port: NeutronPort): void {
    const host = port['binding:host_id'];
    if (!host) {
      port['binding:vif_type'] = 'unbound';
      port['binding:vif_details'] = {};
      return;
    }
    if (this.failingHosts.has(host)) {
      port['binding:vif_type'] = 'binding_failed';
      port['binding:vif_details'] = {};
      return;
    }
    port['binding:vif_type'] = 'ovs';
    port['binding:vif_details'] = {
      connectivity: 'l2',
      port_filter: true,
      ovs_hybrid_plug: false,
      datapath_type: 'netdev',
      bridge_name: 'br-int',
    };
  }

  handle(method: string, uri: string, body: nock.Body, token: string | string[] | undefined): nock.ReplyFnResult {
    const url = new URL(uri, NEUTRON_URL);
    const parts = url.pathname.replace(/^\/v2\.0\//, '').split('/');
    const call: NeutronCall = {
      method,
      path: `${url.pathname}${url.search}`,
      token: typeof token === 'string' ? token : undefined,
    };
    if (body !== undefined && body !== '') call.body = body;
    this.calls.push(call);
    const [resource = '', id] = parts;
    const b = (body && typeof body === 'object' ? body : {}) as Record<string, Record<string, unknown>>;
    if (method === 'GET' && id === undefined) return this.#list(resource, url.searchParams);
    if (resource === 'networks' && method === 'GET' && id) {
      const n = this.networks.get(id);
      return n ? [200, { network: n }] : neutronError(404, 'NetworkNotFound', `Network ${id} could not be found.`);
    }
    if (resource !== 'ports') return neutronError(404, 'HTTPNotFound', `${url.pathname} not found`);
    if (method === 'POST') {
      const failure = this.createFailures.shift();
      if (failure) return neutronError(failure[0], failure[1], `refused (${failure[1]})`);
      return [201, { port: this.#newPort(b.port ?? {}) }];
    }
    const port = id ? this.ports.get(id) : undefined;
    if (!port) return neutronError(404, 'PortNotFound', `Port ${String(id)} could not be found.`);
    if (method === 'GET') return [200, { port } as nock.ReplyBody];
    if (method === 'DELETE') {
      this.ports.delete(port.id);
      return [204, ''];
    }
    const upd = b.port ?? {};
    Object.assign(port, upd);
    if ('binding:host_id' in upd) {
      if (upd['binding:host_id'] === null) port['binding:host_id'] = '';
      this.#bind(port);
    }
    return [200, { port } as nock.ReplyBody];
  }

  /** The calls of `method` whose path starts with `prefix`. */
  callsOf(method: string, prefix: string): NeutronCall[] {
    return this.calls.filter((c) => c.method === method && c.path.startsWith(prefix));
  }
}
