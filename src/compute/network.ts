/**
 * The compute half of Nova's network API (nova/network/neutron.py, Zed;
 * 2025.1/2026.1 where noted): allocate_for_instance, the network_info model
 * (_build_network_info_model), the instance info cache and VirtualInterface
 * records through the conductor, deallocate_for_instance,
 * deallocate_port_for_instance and get_instance_nw_info.
 *
 * Ports are created with the user's token (Neutron applies the user's quota
 * and policy) and bound with the `[neutron]` credentials (binding:host_id is
 * admin-only); on a failure part-way, the ports created here are deleted and
 * the ones the user brought are unbound, so nothing is left behind.
 *
 * Not done here (Nova does them, this host cannot use them): PCI/SR-IOV and
 * accelerator binding profiles, QoS minimum-bandwidth allocations (such ports
 * are refused as Nova refuses them on server create), the policy check of
 * `network:attach_external_network` (an admin context may attach to a
 * non-shared external network, as Nova's default rule allows).
 */
import { BlockList, isIP } from 'node:net';
import { errorMessage, NovaError } from '../common/errors.js';
import type { Logger } from '../common/log.js';
import {
  isNeutronError,
  type NeutronApi,
  type NeutronCallContext,
  type NeutronClient,
  type NeutronNetwork,
  type NeutronPort,
  type NeutronSubnet,
} from '../clients/neutron/index.js';
import { isObjectPrimitive, NovaObject } from '../objects/base.js';
import { networkInfoOf } from './network-info.js';
import type { Conductor } from '../objects/conductor.js';
import type { NovaRelease } from '../objects/releases.js';
import { contextLogFields, type RequestContext } from '../rpc/context.js';
import {
  vifDevname,
  type NetworkIp,
  type NetworkModel,
  type NetworkRoute,
  type NetworkSubnet,
  type VifModel,
} from '../virt/network-model.js';
import type { NetworkInfo } from '../virt/types.js';
import { InstanceLocks } from './instance-lock.js';

const LOGGER = 'nova_docker.network.neutron';

// ------------------------------------------------------------- requests

/** nova.objects.NetworkRequest: one entry of `requested_networks`. */
export interface NetworkRequest {
  /** A network id, or 'none' (--nic none) / 'auto' (get-me-a-network). */
  network_id: string | null;
  /** A fixed IP asked for. */
  address: string | null;
  port_id: string | null;
  pci_request_id: string | null;
  tag: string | null;
  arq_uuid: string | null;
  device_profile: string | null;
}

/** nova.objects.NetworkRequestList, with its properties. */
export class NetworkRequestList {
  constructor(readonly requests: NetworkRequest[]) {}

  /** `--nic none`: one request for network 'none'. */
  get noAllocate(): boolean {
    return this.requests.length === 1 && this.requests[0]?.network_id === 'none';
  }

  /** `--nic auto`: one request for network 'auto'. */
  get autoAllocate(): boolean {
    return this.requests.length === 1 && this.requests[0]?.network_id === 'auto';
  }

  /** One request naming nothing (the API's "no --nic" of older microversions). */
  get isSingleUnspecified(): boolean {
    const r = this.requests[0];
    return (
      this.requests.length === 1 &&
      r !== undefined &&
      [r.network_id, r.address, r.port_id, r.pci_request_id, r.arq_uuid, r.device_profile].every((v) => v === null)
    );
  }

  get portIds(): string[] {
    return this.requests.flatMap((r) => (r.port_id ? [r.port_id] : []));
  }
}

function strOrNull(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

/**
 * The `requested_networks` argument of build_and_run_instance: a
 * NetworkRequestList primitive (or a list of NetworkRequest primitives, or
 * Nova's legacy tuples); null when absent.
 */
export function parseRequestedNetworks(v: unknown): NetworkRequestList | null {
  if (v === null || v === undefined) return null;
  let items: unknown[];
  if (isObjectPrimitive(v)) {
    const objects = v['nova_object.data'].objects;
    items = Array.isArray(objects) ? objects : [];
  } else if (Array.isArray(v)) {
    items = v;
  } else {
    return null;
  }
  return new NetworkRequestList(
    items.map((item) => {
      if (Array.isArray(item)) {
        const [network_id, address, port_id, pci_request_id, arq_uuid, device_profile] = item as unknown[];
        return {
          network_id: strOrNull(network_id),
          address: strOrNull(address),
          port_id: strOrNull(port_id),
          pci_request_id: strOrNull(pci_request_id),
          tag: null,
          arq_uuid: strOrNull(arq_uuid),
          device_profile: strOrNull(device_profile),
        };
      }
      const d = isObjectPrimitive(item)
        ? item['nova_object.data']
        : item && typeof item === 'object'
          ? (item as Record<string, unknown>)
          : {};
      return {
        network_id: strOrNull(d.network_id),
        address: strOrNull(d.address),
        port_id: strOrNull(d.port_id),
        pci_request_id: strOrNull(d.pci_request_id),
        tag: strOrNull(d.tag),
        arq_uuid: strOrNull(d.arq_uuid),
        device_profile: strOrNull(d.device_profile),
      };
    }),
  );
}

// ------------------------------------------------------------- errors

function novaError(klass: string, message: string, kwargs: Record<string, unknown>, cause?: unknown): NovaError {
  return new NovaError(klass, message, kwargs, cause === undefined ? {} : { cause });
}

/** The Nova exceptions of the network API, with nova/exception.py's message templates and codes. */
export const NetworkErrors = {
  portBindingFailed: (portId: string) =>
    novaError(
      'PortBindingFailed',
      `Binding failed for port ${portId}, please check neutron logs for more information.`,
      { port_id: portId, code: 400 },
    ),
  portNotUsable: (portId: string, instance: string) =>
    novaError('PortNotUsable', `Port ${portId} not usable for instance ${instance}.`, {
      port_id: portId,
      instance,
      code: 400,
    }),
  portInUse: (portId: string) =>
    novaError('PortInUse', `Port ${portId} is still in use.`, { port_id: portId, code: 400 }),
  portNotUsableDNS: (portId: string, instance: string, value: string, hostname: string) =>
    novaError(
      'PortNotUsableDNS',
      `Port ${portId} not usable for instance ${instance}. Value ${value} assigned to dns_name attribute does not match instance's hostname ${hostname}`,
      { port_id: portId, instance, value, hostname, code: 400 },
    ),
  portNotAttached: (portId: string) =>
    novaError('PortNotFound', `Port ${portId} is not attached`, { port_id: portId, code: 404 }),
  portNotFound: (portId: string, cause?: unknown) =>
    novaError('PortNotFound', `Port id ${portId} could not be found.`, { port_id: portId, code: 404 }, cause),
  networkNotFound: (networkId: string) =>
    novaError('NetworkNotFound', `Network ${networkId} could not be found.`, { network_id: networkId, code: 404 }),
  networkAmbiguous: () =>
    novaError('NetworkAmbiguous', 'Multiple possible networks found, use a Network ID to be more specific.', {
      code: 400,
    }),
  noNetwork: (projectId: string) =>
    novaError(
      'InterfaceAttachFailedNoNetwork',
      `No specific network was requested and none are available for project '${projectId}'.`,
      { project_id: projectId, code: 400 },
    ),
  externalNetworkAttachForbidden: (networkId: string) =>
    novaError(
      'ExternalNetworkAttachForbidden',
      `It is not allowed to create an interface on external network ${networkId}`,
      { network_uuid: networkId, code: 403 },
    ),
  unableToAutoAllocate: (projectId: string, cause?: unknown) =>
    novaError(
      'UnableToAutoAllocateNetwork',
      `Unable to automatically allocate a network for project ${projectId}`,
      { project_id: projectId, code: 400 },
      cause,
    ),
  securityGroupCannotBeApplied: () =>
    novaError(
      'SecurityGroupCannotBeApplied',
      'Network requires port_security_enabled and subnet associated in order to apply security groups.',
      { code: 400 },
    ),
  securityGroupNotFound: (id: string) =>
    novaError('SecurityGroupNotFound', `Security group ${id} not found.`, { security_group_id: id, code: 404 }),
  noUniqueMatch: (name: string) =>
    novaError('NoUniqueMatch', `Multiple security groups found matching '${name}'. Use an ID to be more specific.`, {
      code: 409,
    }),
  invalidInput: (reason: string, cause?: unknown) =>
    novaError('InvalidInput', `Invalid input received: ${reason}`, { reason, code: 400 }, cause),
  fixedIpAlreadyInUse: (ip: string, cause?: unknown) =>
    novaError(
      'FixedIpAlreadyInUse',
      `Fixed IP ${ip} is already in use.`,
      { message: `Fixed IP ${ip} is already in use.` },
      cause,
    ),
  portLimitExceeded: (cause?: unknown) =>
    novaError('PortLimitExceeded', 'Maximum number of ports exceeded', { code: 413 }, cause),
  noMoreFixedIps: (networkId: string, cause?: unknown) =>
    novaError('NoMoreFixedIps', `No fixed IP addresses available for network: ${networkId}`, { net: networkId }, cause),
  fixedIpInvalidOnHost: (portId: string, cause?: unknown) =>
    novaError(
      'FixedIpInvalidOnHost',
      `The fixed IP associated with port ${portId} is not compatible with the host.`,
      { port_id: portId, code: 400 },
      cause,
    ),
  qosNotSupported: (instanceUuid: string, networkId: string) =>
    novaError(
      'NetworksWithQoSPolicyNotSupported',
      `Using networks with QoS policy is not supported for instance ${instanceUuid}. (Network ID is ${networkId})`,
      { instance_uuid: instanceUuid, network_id: networkId, code: 400 },
    ),
  unauthorized: (cause?: unknown) => novaError('Unauthorized', 'Not authorized.', { code: 401 }, cause),
  adminCredentialsInvalid: (cause?: unknown) =>
    novaError(
      'NeutronAdminCredentialConfigurationInvalid',
      'Networking client is experiencing an unauthorized exception.',
      { code: 400 },
      cause,
    ),
  /** Neutron is not configured here (no `[neutron]` credentials) but the build asked for networks. */
  notConfigured: () =>
    novaError(
      'NovaException',
      'Networking is not configured on this compute host: set the [neutron] credentials (auth_url, username, password, project_name) in nova.conf',
      {},
    ),
};

// ------------------------------------------------------------- the info cache

/**
 * oslo's jsonutils.dumps of the model (Python's json.dumps: `, ` and `: `
 * separators, non-ASCII escaped), so the cache row reads as Nova writes it.
 */
export function pythonJson(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') {
    return JSON.stringify(v).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  if (typeof v === 'number' || typeof v === 'boolean') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map((x) => pythonJson(x)).join(', ')}]`;
  if (typeof v === 'object') {
    const parts = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .map(([k, x]) => `${pythonJson(k)}: ${pythonJson(x)}`);
    return `{${parts.join(', ')}}`;
  }
  return 'null';
}

// ------------------------------------------------------------- model helpers

function ipVersion(address: string): 4 | 6 {
  return isIP(address) === 6 ? 6 : 4;
}

/** model.IP(address, type): {address, type, version, meta}. */
function modelIp(address: string, type: string): NetworkIp {
  return { address, type, version: ipVersion(address), meta: {} };
}

/** IP.is_in_subnet */
function inCidr(address: string, cidr: string): boolean {
  const [net, bits] = cidr.split('/');
  if (!net || bits === undefined) return false;
  const family = isIP(net) === 6 ? 'ipv6' : 'ipv4';
  if (isIP(address) !== (family === 'ipv6' ? 6 : 4)) return false;
  const bl = new BlockList();
  bl.addSubnet(net, Number(bits), family);
  return bl.check(address, family);
}

/** get_binding_profile: the port's binding:profile, {} when unset. */
function bindingProfile(port: { 'binding:profile'?: Record<string, unknown> | null }): Record<string, unknown> {
  return port['binding:profile'] ?? {};
}

function tenantOf(x: { tenant_id?: string; project_id?: string }): string {
  return x.tenant_id ?? x.project_id ?? '';
}

/** Requested order first (Nova's _ensure_requested_network_ordering). */
function orderBy<T>(items: T[], key: (t: T) => string, preferred: readonly string[] | undefined): T[] {
  if (!preferred || preferred.length === 0) return items;
  return [...items].sort((a, b) => preferred.indexOf(key(a)) - preferred.indexOf(key(b)));
}

const L3_NETWORK_TYPES = ['vxlan', 'gre', 'geneve'];
const DNS_INTEGRATION = 'dns-integration';
const MULTI_PROVIDER = 'multi-provider';
const RESOURCE_REQUEST_GROUPS = 'port-resource-request-groups';

// ------------------------------------------------------------- the API

export interface NetworkApiOptions {
  neutron: NeutronClient;
  conductor: Conductor;
  release: NovaRelease;
  /** `[neutron] ovs_bridge`: the bridge of an ovs port whose binding names none. */
  ovsBridge?: string | undefined;
  /** `[neutron] extension_sync_interval`, s. */
  extensionSyncIntervalS?: number | undefined;
  logger: Logger;
  now?: (() => number) | undefined;
}

export interface AllocateOptions {
  /** Security group names or ids (build_and_run_instance's `security_groups`). */
  securityGroups?: readonly string[] | undefined;
  /** binding:host_id: this host (driver.network_binding_host_id = instance.host). */
  bindHostId: string;
}

export interface NwInfoOptions {
  /** The networks being attached now (allocation); with portIds, or neither (a refresh from the cache). */
  networks?: NeutronNetwork[] | undefined;
  portIds?: string[] | undefined;
  /** Ports the user brought in this allocation. */
  preexistingPortIds?: string[] | undefined;
  /** Refresh only this VIF of the cache (network-changed). */
  refreshVifId?: string | undefined;
  admin?: NeutronApi | undefined;
}

export class NetworkAPI {
  readonly #o: NetworkApiOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  /** lockutils.lock('refresh_cache-<uuid>') */
  readonly #cacheLocks = new InstanceLocks();
  #extensions = new Set<string>();
  #extensionsSyncedAt: number | undefined;

  constructor(o: NetworkApiOptions) {
    this.#o = o;
    this.#log = o.logger;
    this.#now = o.now ?? Date.now;
  }

  #logAt(level: 'debug' | 'info' | 'warn' | 'error', msg: string, ctx: RequestContext, uuid: string): void {
    this.#log.log(level, msg, { logger: LOGGER, ...contextLogFields(ctx), instance_uuid: uuid });
  }

  /** get_client(context, admin): the user client, or the `[neutron]` one. */
  client(ctx: RequestContext, admin = false): NeutronApi {
    const call: NeutronCallContext = {
      authToken: ctx.auth_token ?? undefined,
      requestId: ctx.request_id,
      globalRequestId: ctx.global_request_id ?? undefined,
      isAdmin: ctx.is_admin,
    };
    try {
      return this.#o.neutron.forContext(call, { admin });
    } catch (err) {
      throw NetworkErrors.unauthorized(err);
    }
  }

  // ----------------------------------------------------------- extensions

  async #hasExtension(client: NeutronApi, alias: string): Promise<boolean> {
    const interval = (this.#o.extensionSyncIntervalS ?? 600) * 1000;
    if (this.#extensionsSyncedAt === undefined || this.#now() - this.#extensionsSyncedAt >= interval) {
      const list = await client.listExtensions();
      this.#extensions = new Set(list.map((e) => e.alias));
      this.#extensionsSyncedAt = this.#now();
    }
    return this.#extensions.has(alias);
  }

  // ----------------------------------------------------------- allocate

  /**
   * allocate_for_instance: validates the requested ports and networks,
   * creates the missing ports (user), binds every port to `bindHostId`
   * (admin), records a VirtualInterface per port, saves the info cache and
   * returns the VIFs of the ports processed in this call.
   */
  async allocateForInstance(
    ctx: RequestContext,
    instance: NovaObject,
    requested: NetworkRequestList | null,
    o: AllocateOptions,
  ): Promise<NetworkInfo> {
    const uuid = instance.str('uuid') ?? '';
    const projectId = instance.str('project_id');
    this.#logAt('debug', 'allocate_for_instance()', ctx, uuid);
    if (!projectId) throw NetworkErrors.invalidInput(`empty project id for instance ${uuid}`);
    const neutron = this.client(ctx);
    const admin = this.client(ctx, true);

    const { ports: requestedPorts, ordered } = await this.#validateRequestedPorts(admin, instance, requested);
    const nets = await this.#validateRequestedNetworks(ctx, instance, neutron, requested, ordered);
    if (nets.size === 0) {
      this.#logAt('debug', 'No network configured', ctx, uuid);
      return [];
    }
    const sgIds = await this.#processSecurityGroups(neutron, projectId, cleanSecurityGroups(o.securityGroups));
    const created = await this.#createPorts(ctx, instance, ordered, nets, neutron, sgIds);
    const upd = await this.#updatePorts(ctx, instance, neutron, admin, created, nets, o.bindHostId, requestedPorts);
    const nwInfo = await this.getInstanceNwInfo(ctx, instance, {
      networks: upd.nets,
      portIds: upd.portIds,
      preexistingPortIds: upd.preexisting,
      admin,
    });
    const processed = new Set([...upd.created, ...upd.preexisting]);
    return nwInfo.filter((vif) => processed.has(vif.id));
  }

  /** _validate_requested_port_ids (admin client: the port's resource_request is admin-only). */
  async #validateRequestedPorts(
    admin: NeutronApi,
    instance: NovaObject,
    requested: NetworkRequestList | null,
  ): Promise<{ ports: Map<string, NeutronPort>; ordered: NetworkRequest[] }> {
    const ports = new Map<string, NeutronPort>();
    const ordered: NetworkRequest[] = [];
    if (!requested || requested.autoAllocate) return { ports, ordered };
    const uuid = instance.str('uuid') ?? '';
    for (const request of requested.requests) {
      if (request.port_id) {
        const port = await this.#showPort(admin, request.port_id);
        if (tenantOf(port) !== instance.str('project_id')) throw NetworkErrors.portNotUsable(request.port_id, uuid);
        if (port.device_id) throw NetworkErrors.portInUse(request.port_id);
        const hostname = instance.str('hostname') ?? '';
        if (port.dns_name && port.dns_name !== hostname) {
          throw NetworkErrors.portNotUsableDNS(request.port_id, uuid, port.dns_name, hostname);
        }
        ensureNoBindingFailure(port);
        request.network_id = port.network_id;
        ports.set(request.port_id, port);
      }
      if (request.network_id) ordered.push(request);
    }
    return { ports, ordered };
  }

  /** _show_port: PortNotFound for a 404, Unauthorized/NovaException otherwise. */
  async #showPort(client: NeutronApi, portId: string, fields?: readonly string[]): Promise<NeutronPort> {
    try {
      return await client.showPort(portId, fields);
    } catch (err) {
      if (isNeutronError(err, { status: 404 })) throw NetworkErrors.portNotFound(portId, err);
      if (isNeutronError(err, { status: 401 })) throw NetworkErrors.unauthorized(err);
      throw novaError('NovaException', `Failed to access port ${portId}: ${errorMessage(err)}`, {}, err);
    }
  }

  /** _get_available_networks: the requested ids, or the project's own networks plus the shared ones. */
  async availableNetworks(
    client: NeutronApi,
    projectId: string,
    netIds: readonly string[] | undefined,
    autoAllocate = false,
  ): Promise<NeutronNetwork[]> {
    let nets: NeutronNetwork[];
    if (netIds && netIds.length > 0) {
      nets = await client.listNetworks({ id: netIds });
    } else {
      nets = await client.listNetworks({
        tenant_id: projectId,
        shared: false,
        ...(autoAllocate ? { admin_state_up: true } : {}),
      });
      nets.push(...(await client.listNetworks({ shared: true })));
    }
    return orderBy(nets, (n) => n.id, netIds);
  }

  /** _validate_requested_network_ids */
  async #validateRequestedNetworks(
    ctx: RequestContext,
    instance: NovaObject,
    neutron: NeutronApi,
    requested: NetworkRequestList | null,
    ordered: NetworkRequest[],
  ): Promise<Map<string, NeutronNetwork>> {
    const projectId = instance.str('project_id') ?? '';
    const auto = requested?.autoAllocate === true;
    const netIds = ordered.flatMap((r) => (r.network_id ? [r.network_id] : []));
    let nets = await this.availableNetworks(neutron, projectId, netIds, auto);
    if (nets.length === 0) {
      if (requested && requested.requests.length > 0) {
        if (auto) {
          nets = [await this.#autoAllocateNetwork(neutron, projectId)];
        } else {
          for (const r of requested.requests) {
            if (!r.port_id && r.network_id) throw NetworkErrors.networkNotFound(r.network_id);
          }
        }
      } else {
        return new Map();
      }
    }
    if (!requested || requested.isSingleUnspecified || requested.autoAllocate) {
      if (nets.length === 0) throw NetworkErrors.noNetwork(projectId);
      if (nets.length > 1) throw NetworkErrors.networkAmbiguous();
      const only = nets[0]!;
      ordered.push({
        network_id: only.id,
        address: null,
        port_id: null,
        pci_request_id: null,
        tag: null,
        arq_uuid: null,
        device_profile: null,
      });
    }
    // _check_external_network_attach: Nova's default policy lets only admins attach there
    if (!ctx.is_admin) {
      for (const n of nets) {
        if (n['router:external'] && !n.shared) throw NetworkErrors.externalNetworkAttachForbidden(n.id);
      }
    }
    return new Map(nets.map((n) => [n.id, n]));
  }

  /** _auto_allocate_network (get-me-a-network). */
  async #autoAllocateNetwork(neutron: NeutronApi, projectId: string): Promise<NeutronNetwork> {
    let id: string;
    try {
      id = (await neutron.autoAllocatedTopology(projectId)).id;
    } catch (err) {
      if (isNeutronError(err, { status: 409 })) throw NetworkErrors.unableToAutoAllocate(projectId, err);
      throw err;
    }
    try {
      return await neutron.showNetwork(id);
    } catch (err) {
      if (isNeutronError(err, { status: 404 })) throw NetworkErrors.unableToAutoAllocate(projectId, err);
      throw err;
    }
  }

  /** _process_security_groups: names (or ids) → ids of the project's groups. */
  async #processSecurityGroups(neutron: NeutronApi, projectId: string, groups: string[]): Promise<string[]> {
    if (groups.length === 0) return [];
    const mine = await neutron.listSecurityGroups({ fields: ['id', 'name'], tenant_id: projectId });
    return groups.map((wanted) => {
      let nameMatch: string | undefined;
      let idMatch: string | undefined;
      for (const sg of mine) {
        if (sg.name === wanted) {
          if (nameMatch) throw NetworkErrors.noUniqueMatch(wanted);
          nameMatch = sg.id;
        }
        if (sg.id === wanted) idMatch = sg.id;
      }
      const id = nameMatch ?? idMatch;
      if (!id) throw NetworkErrors.securityGroupNotFound(wanted);
      return id;
    });
  }

  /** _create_ports_for_instance: a port (user client) for every request without one. */
  async #createPorts(
    ctx: RequestContext,
    instance: NovaObject,
    ordered: NetworkRequest[],
    nets: Map<string, NeutronNetwork>,
    neutron: NeutronApi,
    sgIds: string[],
  ): Promise<Array<[NetworkRequest, string | null]>> {
    const createdIds: string[] = [];
    const out: Array<[NetworkRequest, string | null]> = [];
    try {
      for (const request of ordered) {
        const network = request.network_id ? nets.get(request.network_id) : undefined;
        if (!network) continue;
        if (network.port_security_enabled ?? true) {
          if (!network.subnets || network.subnets.length === 0) throw NetworkErrors.securityGroupCannotBeApplied();
        } else if (sgIds.length > 0) {
          throw NetworkErrors.securityGroupCannotBeApplied();
        }
        let createdId: string | null = null;
        if (!request.port_id) {
          const port = await this.#createPortMinimal(ctx, neutron, instance, network.id, request.address, sgIds);
          createdId = port.id;
          createdIds.push(port.id);
        }
        out.push([request, createdId]);
      }
    } catch (err) {
      if (createdIds.length > 0) await this.#deletePorts(ctx, neutron, instance, createdIds);
      throw err;
    }
    return out;
  }

  /** _create_port_minimal */
  async #createPortMinimal(
    ctx: RequestContext,
    neutron: NeutronApi,
    instance: NovaObject,
    networkId: string,
    fixedIp: string | null,
    sgIds: string[],
  ): Promise<NeutronPort> {
    const uuid = instance.str('uuid') ?? '';
    const body: Record<string, unknown> = { device_id: uuid };
    if (fixedIp) body.fixed_ips = [{ ip_address: fixedIp }];
    body.network_id = networkId;
    body.admin_state_up = true;
    body.tenant_id = instance.str('project_id');
    if (sgIds.length > 0) body.security_groups = sgIds;
    let port: NeutronPort;
    try {
      port = await neutron.createPort(body as { network_id: string });
    } catch (err) {
      const t = err instanceof Error && isNeutronError(err, {}) ? err.neutronType : undefined;
      if (t === 'InvalidIpForNetwork' || t === 'InvalidIpForSubnet') {
        this.#logAt(
          'warn',
          `Neutron error: ${String(fixedIp)} is not a valid IP address for network ${networkId}.`,
          ctx,
          uuid,
        );
        throw NetworkErrors.invalidInput(
          `Fixed IP ${String(fixedIp)} is not a valid ip address for network ${networkId}.`,
          err,
        );
      }
      if (t === 'IpAddressInUse' || t === 'IpAddressAlreadyAllocated') {
        this.#logAt('warn', `Neutron error: Fixed IP ${String(fixedIp)} is already in use.`, ctx, uuid);
        throw NetworkErrors.fixedIpAlreadyInUse(String(fixedIp), err);
      }
      if (t === 'OverQuota') {
        this.#logAt('warn', `Neutron error: Port quota exceeded in tenant: ${String(body.tenant_id)}`, ctx, uuid);
        throw NetworkErrors.portLimitExceeded(err);
      }
      if (t === 'IpAddressGenerationFailure') {
        this.#logAt('warn', `Neutron error: No more fixed IPs in network: ${networkId}`, ctx, uuid);
        throw NetworkErrors.noMoreFixedIps(networkId, err);
      }
      this.#logAt('error', `Neutron error creating port on network ${networkId}: ${errorMessage(err)}`, ctx, uuid);
      throw err;
    }
    if (await this.#hasResourceRequest(neutron, port)) {
      this.#logAt(
        'info',
        `The auto-created port ${port.id} is being deleted due to its network having QoS policy.`,
        ctx,
        uuid,
      );
      await this.#deletePorts(ctx, neutron, instance, [port.id]);
      throw NetworkErrors.qosNotSupported(uuid, networkId);
    }
    try {
      ensureNoBindingFailure(port);
    } catch (err) {
      await neutron.deletePort(port.id);
      throw err;
    }
    this.#logAt('debug', `Successfully created port: ${port.id}`, ctx, uuid);
    return port;
  }

  async #hasResourceRequest(client: NeutronApi, port: NeutronPort): Promise<boolean> {
    const rr = port.resource_request ?? {};
    if (await this.#hasExtension(client, RESOURCE_REQUEST_GROUPS)) {
      const groups = rr.request_groups;
      return Array.isArray(groups) && groups.length > 0;
    }
    return Object.keys(rr).length > 0;
  }

  /**
   * _update_ports_for_instance: binds each port (admin): device_id,
   * device_owner compute:<az>, binding:host_id, dns_name; then its
   * VirtualInterface. On a failure: pre-existing ports unbound, created
   * ports deleted, VirtualInterfaces destroyed.
   */
  async #updatePorts(
    ctx: RequestContext,
    instance: NovaObject,
    neutron: NeutronApi,
    admin: NeutronApi,
    requestsAndCreated: Array<[NetworkRequest, string | null]>,
    nets: Map<string, NeutronNetwork>,
    bindHostId: string,
    requestedPorts: Map<string, NeutronPort>,
  ): Promise<{ nets: NeutronNetwork[]; portIds: string[]; preexisting: string[]; created: string[] }> {
    const uuid = instance.str('uuid') ?? '';
    const preexisting: string[] = [];
    // 2026.1 lists every created port up front, so a failure before its own turn still deletes it
    const created = requestsAndCreated.flatMap(([, id]) => (id ? [id] : []));
    const portIds: string[] = [];
    const netsInOrder: NeutronNetwork[] = [];
    const vifs: NovaObject[] = [];
    for (const [request, createdId] of requestsAndCreated) {
      const network = request.network_id ? nets.get(request.network_id) : undefined;
      if (!network) continue;
      netsInOrder.push(network);
      const body: Record<string, unknown> = {
        device_id: uuid,
        device_owner: `compute:${instance.str('availability_zone') ?? 'None'}`,
      };
      const existing = request.port_id ? requestedPorts.get(request.port_id) : undefined;
      if (existing && Object.keys(bindingProfile(existing)).length > 0)
        body['binding:profile'] = bindingProfile(existing);
      try {
        // _populate_neutron_extension_values
        body['binding:host_id'] = bindHostId;
        if ((await this.#hasExtension(neutron, DNS_INTEGRATION)) && !network.dns_domain) {
          body.dns_name = instance.str('hostname');
        }
        const portId = createdId ?? request.port_id ?? '';
        portIds.push(portId);
        const updated = await this.#updatePort(ctx, admin, instance, portId, body);
        // virtual_interfaces.address is unique: Nova namespaces the MAC with the port id
        const vif = NovaObject.create('VirtualInterface', this.#o.release.objects.VirtualInterface ?? '1.3', {
          instance_uuid: uuid,
          tag: request.tag,
          address: `${updated.mac_address}/${updated.id}`,
          uuid: portId,
        });
        await this.#o.conductor.objectAction(ctx, vif, 'create');
        vifs.push(vif);
        if (!createdId) preexisting.push(portId);
        await this.#updatePortDnsName(ctx, instance, network, portId, neutron);
      } catch (err) {
        await this.#unbindPorts(ctx, instance, preexisting, neutron, admin);
        await this.#deletePorts(ctx, neutron, instance, created);
        for (const v of vifs) {
          await this.#o.conductor
            .objectAction(ctx, v, 'destroy')
            .catch((e: unknown) =>
              this.#logAt(
                'warn',
                `Could not destroy VirtualInterface ${String(v.str('uuid'))}: ${errorMessage(e)}`,
                ctx,
                uuid,
              ),
            );
        }
        throw err;
      }
    }
    return { nets: netsInOrder, portIds, preexisting, created };
  }

  /** _update_port: the answer must not be binding_failed. */
  async #updatePort(
    ctx: RequestContext,
    admin: NeutronApi,
    instance: NovaObject,
    portId: string,
    body: Record<string, unknown>,
  ): Promise<NeutronPort> {
    let port: NeutronPort;
    try {
      port = await admin.updatePort(portId, body);
    } catch (err) {
      const t = isNeutronError(err, {}) ? err.neutronType : undefined;
      if (t === 'MacAddressInUse') throw NetworkErrors.portInUse(String(body.mac_address));
      if (t === 'HostNotCompatibleWithFixedIps') throw NetworkErrors.fixedIpInvalidOnHost(portId, err);
      throw err;
    }
    ensureNoBindingFailure(port);
    this.#logAt('debug', `Successfully updated port: ${portId}`, ctx, instance.str('uuid') ?? '');
    return port;
  }

  /** _update_port_dns_name: on a network with a dns_domain the user sets dns_name (external DNS, the user's zone). */
  async #updatePortDnsName(
    ctx: RequestContext,
    instance: NovaObject,
    network: NeutronNetwork,
    portId: string,
    neutron: NeutronApi,
  ): Promise<void> {
    if (!network.dns_domain || !(await this.#hasExtension(neutron, DNS_INTEGRATION))) return;
    const hostname = instance.str('hostname') ?? '';
    try {
      await neutron.updatePort(portId, { dns_name: hostname });
    } catch (err) {
      if (isNeutronError(err, { status: 400 })) {
        this.#logAt(
          'warn',
          `Neutron error: Instance hostname ${hostname} is not a valid DNS name`,
          ctx,
          instance.str('uuid') ?? '',
        );
        throw NetworkErrors.invalidInput(`Instance hostname ${hostname} is not a valid DNS name`, err);
      }
      throw err;
    }
  }

  /**
   * _unbind_ports (admin): device_id, device_owner and binding:host_id
   * cleared, binding:profile kept without the host-specific keys, dns_name
   * reset. Failures are logged: the port is the user's and outlives us.
   */
  async #unbindPorts(
    ctx: RequestContext,
    instance: NovaObject,
    portIds: readonly string[],
    neutron: NeutronApi,
    admin: NeutronApi,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    const networks = new Map<string, NeutronNetwork | Record<string, never>>();
    for (const portId of portIds) {
      const body: Record<string, unknown> = { device_id: '', device_owner: '', 'binding:host_id': null };
      let profile: Record<string, unknown> = {};
      let network: { dns_domain?: string } = {};
      try {
        const port = await this.#showPort(neutron, portId, ['binding:profile', 'network_id']);
        profile = { ...bindingProfile(port) };
        const netId = port.network_id;
        let net = networks.get(netId);
        if (!net) {
          net = await neutron.showNetwork(netId, ['dns_domain']);
          networks.set(netId, net);
        }
        network = net;
      } catch (err) {
        if (err instanceof NovaError && err.novaClass === 'PortNotFound') {
          this.#logAt('debug', `Unable to show port ${portId} as it no longer exists.`, ctx, uuid);
          continue;
        }
        this.#logAt('error', `Unable to get binding:profile for port '${portId}': ${errorMessage(err)}`, ctx, uuid);
      }
      for (const k of [
        'pci_vendor_info',
        'pci_slot',
        'allocation',
        'arq_uuid',
        'physical_network',
        'card_serial_number',
        'vf_num',
        'pf_mac_address',
        'device_mac_address',
      ]) {
        delete profile[k];
      }
      body['binding:profile'] = profile;
      try {
        if ((await this.#hasExtension(admin, DNS_INTEGRATION)) && !network.dns_domain) body.dns_name = '';
        await admin.updatePort(portId, body);
      } catch (err) {
        if (isNeutronError(err, { status: 404 })) {
          this.#logAt('debug', `Unable to unbind port ${portId} as it no longer exists.`, ctx, uuid);
        } else {
          this.#logAt('error', `Unable to clear device ID for port '${portId}': ${errorMessage(err)}`, ctx, uuid);
        }
      }
      // _reset_port_dns_name: external DNS records live in the user's zone
      if (network.dns_domain) {
        try {
          if (await this.#hasExtension(neutron, DNS_INTEGRATION)) await neutron.updatePort(portId, { dns_name: '' });
        } catch (err) {
          this.#logAt('error', `Failed to reset dns_name for port ${portId}: ${errorMessage(err)}`, ctx, uuid);
        }
      }
    }
  }

  /** _delete_ports: a missing port is fine; the first other failure is thrown when `raiseIfFail`. */
  async #deletePorts(
    ctx: RequestContext,
    neutron: NeutronApi,
    instance: NovaObject,
    portIds: readonly string[],
    raiseIfFail = false,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    const failures: unknown[] = [];
    for (const portId of portIds) {
      try {
        await neutron.deletePort(portId);
      } catch (err) {
        if (isNeutronError(err, { status: 404 })) {
          this.#logAt('warn', `Port ${portId} does not exist`, ctx, uuid);
        } else {
          failures.push(err);
          this.#logAt('warn', `Failed to delete port ${portId} for instance: ${errorMessage(err)}`, ctx, uuid);
        }
      }
    }
    if (failures.length > 0 && raiseIfFail)
      throw failures[0] instanceof Error ? failures[0] : new Error(String(failures[0]));
  }

  // ----------------------------------------------------------- deallocate

  /**
   * deallocate_for_instance: the user's own ports (preserve_on_delete in
   * the cache, and on a failed build the requested ones) are unbound, the
   * rest deleted; VirtualInterfaces deleted; the cache emptied.
   */
  async deallocateForInstance(
    ctx: RequestContext,
    instance: NovaObject,
    requested?: NetworkRequestList | null,
  ): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    this.#logAt('debug', 'deallocate_for_instance()', ctx, uuid);
    await this.ensureInfoCache(ctx, instance);
    const neutron = this.client(ctx);
    const ports = (await neutron.listPorts({ device_id: uuid })).map((p) => p.id);
    const skip = new Set([...(requested?.portIds ?? []), ...preexistingPortIds(instance)]);
    await this.#unbindPorts(ctx, instance, [...skip], neutron, this.client(ctx, true));
    await this.#deletePorts(
      ctx,
      neutron,
      instance,
      ports.filter((p) => !skip.has(p)),
      true,
    );
    await this.#o.conductor.classAction(ctx, 'VirtualInterface', 'delete_by_instance_uuid', [uuid]);
    await this.updateInstanceCache(ctx, instance, []);
  }

  /**
   * deallocate_port_for_instance (interface detach): the port unbound when
   * the user brought it, else deleted; its VirtualInterface destroyed; the
   * refreshed network_info returned (and saved).
   */
  async deallocatePortForInstance(ctx: RequestContext, instance: NovaObject, portId: string): Promise<NetworkInfo> {
    const uuid = instance.str('uuid') ?? '';
    await this.ensureInfoCache(ctx, instance);
    const neutron = this.client(ctx);
    if (preexistingPortIds(instance).includes(portId)) {
      await this.#unbindPorts(ctx, instance, [portId], neutron, this.client(ctx, true));
    } else {
      await this.#deletePorts(ctx, neutron, instance, [portId], true);
    }
    const vif = await this.#o.conductor.classActionObject(ctx, 'VirtualInterface', 'get_by_uuid', [portId]);
    if (vif) await this.#o.conductor.objectAction(ctx, vif, 'destroy');
    else this.#logAt('debug', `VirtualInterface not found for port: ${portId}`, ctx, uuid);
    return await this.getInstanceNwInfo(ctx, instance);
  }

  // ----------------------------------------------------------- network_info

  /**
   * get_instance_nw_info, under the instance's refresh_cache lock: builds
   * the model from Neutron (all of it, or only `refreshVifId`) and saves the
   * info cache.
   */
  async getInstanceNwInfo(ctx: RequestContext, instance: NovaObject, o: NwInfoOptions = {}): Promise<NetworkInfo> {
    const uuid = instance.str('uuid') ?? '';
    return await this.#cacheLocks.run(uuid, async () => {
      if (o.refreshVifId) this.#logAt('debug', `Refreshing network info cache for port ${o.refreshVifId}`, ctx, uuid);
      else this.#logAt('debug', 'Building network info cache for instance', ctx, uuid);
      await this.refreshInfoCache(ctx, instance);
      const nwInfo = await this.#buildNetworkInfoModel(ctx, instance, o);
      await this.#saveInfoCache(ctx, instance, nwInfo);
      return nwInfo;
    });
  }

  /** update_instance_cache_with_nw_info: saves `nwInfo` as the instance's cache (not for a deleted instance). */
  async updateInstanceCache(ctx: RequestContext, instance: NovaObject, nwInfo: NetworkInfo): Promise<void> {
    await this.#cacheLocks.run(instance.str('uuid') ?? '', () => this.#saveInfoCache(ctx, instance, nwInfo));
  }

  /**
   * instance.info_cache, loaded from the conductor when the caller did not
   * send it (Nova's lazy load): which ports the user brought is read there,
   * and a delete must never take them for ours.
   */
  async ensureInfoCache(ctx: RequestContext, instance: NovaObject): Promise<void> {
    if (instance.has('info_cache')) return;
    const uuid = instance.str('uuid') ?? '';
    try {
      const ic = await this.#o.conductor.classActionObject(ctx, 'InstanceInfoCache', 'get_by_instance_uuid', [uuid]);
      instance.applyUpdates({ info_cache: ic ? ic.toPrimitive() : null, obj_what_changed: instance.changes });
    } catch (err) {
      this.#logAt('debug', `Instance cache missing network info: ${errorMessage(err)}`, ctx, uuid);
    }
  }

  /** compute_utils.refresh_info_cache_for_instance: the cache as the database has it now. */
  async refreshInfoCache(ctx: RequestContext, instance: NovaObject): Promise<void> {
    // not sent with the instance: loaded now, which is the current one
    if (!instance.has('info_cache')) return await this.ensureInfoCache(ctx, instance);
    const ic = instance.get('info_cache');
    if (!isObjectPrimitive(ic) || instance.get('deleted') === true) return;
    const cache = NovaObject.fromPrimitive(ic);
    try {
      await this.#o.conductor.objectAction(ctx, cache, 'refresh');
      instance.applyUpdates({ info_cache: cache.toPrimitive(), obj_what_changed: instance.changes });
    } catch (err) {
      this.#logAt('debug', `Can not refresh info_cache: ${errorMessage(err)}`, ctx, instance.str('uuid') ?? '');
    }
  }

  async #saveInfoCache(ctx: RequestContext, instance: NovaObject, nwInfo: NetworkInfo): Promise<void> {
    const uuid = instance.str('uuid') ?? '';
    if (instance.get('deleted') === true) {
      this.#logAt('debug', 'Instance is deleted, no further info cache update', ctx, uuid);
      return;
    }
    const json = pythonJson(nwInfo);
    this.#logAt('debug', `Updating instance_info_cache with network_info: ${json}`, ctx, uuid);
    // InstanceInfoCache.new: instance_uuid and network_info both dirty
    const ic = NovaObject.create('InstanceInfoCache', this.#o.release.objects.InstanceInfoCache ?? '1.5', {
      instance_uuid: uuid,
      network_info: json,
    });
    await this.#o.conductor.objectAction(ctx, ic, 'save');
    // instance.info_cache = ic, loaded rather than changed: a later Instance.save does not resend it
    instance.applyUpdates({ info_cache: ic.toPrimitive(), obj_what_changed: instance.changes });
  }

  /** _build_network_info_model */
  async #buildNetworkInfoModel(ctx: RequestContext, instance: NovaObject, o: NwInfoOptions): Promise<NetworkInfo> {
    const uuid = instance.str('uuid') ?? '';
    const projectId = instance.str('project_id') ?? '';
    const client = o.admin ?? this.client(ctx, true);
    const current = await client.listPorts({ tenant_id: projectId, device_id: uuid });
    const byId = new Map(current.map((p) => [p.id, p]));
    const preexisting = new Set([...(o.preexistingPortIds ?? []), ...preexistingPortIds(instance)]);
    const cached = networkInfoOf(instance);

    if (o.refreshVifId !== undefined && cached.length > 0) {
      const port = byId.get(o.refreshVifId);
      const nwInfo = [...cached];
      const index = nwInfo.findIndex((v) => v.id === o.refreshVifId);
      if (port) {
        const networks = await this.availableNetworks(client, projectId, [port.network_id]);
        const vif = await this.#buildVifModel(client, port, networks, preexisting);
        if (index >= 0) {
          this.#logVnicTypeChange(ctx, uuid, port.id, nwInfo[index]!.vnic_type, vif.vnic_type);
          nwInfo[index] = vif;
          this.#logAt('debug', `Updated VIF entry in instance network info cache for port ${port.id}.`, ctx, uuid);
        } else {
          nwInfo.push(vif);
          this.#logAt('debug', `Added VIF to instance network info cache for port ${port.id}.`, ctx, uuid);
        }
      } else if (index >= 0) {
        this.#logAt(
          'info',
          `Port ${o.refreshVifId} from network info_cache is no longer associated with instance in Neutron. Removing from network info_cache.`,
          ctx,
          uuid,
        );
        nwInfo.splice(index, 1);
      }
      return nwInfo;
    }

    const refresh = o.networks === undefined && o.portIds === undefined;
    // _gather_port_ids_and_networks: the cache's ports and networks, plus the ones being attached
    let networks: Array<Pick<NeutronNetwork, 'id' | 'name'> & Partial<NeutronNetwork>>;
    let portIds: string[];
    if (refresh) {
      portIds = cached.map((v) => v.id);
      networks = await this.availableNetworks(
        client,
        projectId,
        cached.map((v) => v.network.id),
      );
    } else {
      const given = o.networks ?? [];
      const givenIds = new Set(given.map((n) => n.id));
      const wanted = new Set(o.portIds ?? []);
      networks = [
        ...given,
        ...cached
          .filter((v) => !givenIds.has(v.network.id))
          .map((v) => ({ id: v.network.id, name: v.network.label, tenant_id: v.network.meta.tenant_id ?? '' })),
      ];
      portIds = [...cached.filter((v) => !wanted.has(v.id)).map((v) => v.id), ...(o.portIds ?? [])];
    }
    const nwInfo: NetworkInfo = [];
    for (const portId of portIds) {
      const port = byId.get(portId);
      if (port) {
        const vif = await this.#buildVifModel(client, port, networks, preexisting);
        const old = cached.find((v) => v.id === portId);
        if (old) this.#logVnicTypeChange(ctx, uuid, portId, old.vnic_type, vif.vnic_type);
        nwInfo.push(vif);
      } else if (refresh) {
        this.#logAt(
          'info',
          `Port ${portId} from network info_cache is no longer associated with instance in Neutron. Removing from network info_cache.`,
          ctx,
          uuid,
        );
      }
    }
    return nwInfo;
  }

  #logVnicTypeChange(ctx: RequestContext, uuid: string, portId: string, before: string, after: string): void {
    if (before && before !== after) {
      this.#logAt(
        'error',
        `The vnic_type of the bound port ${portId} has been changed in neutron from "${before}" to "${after}". Changing vnic_type of a bound port is not supported by Nova. To avoid breaking the connectivity of the instance please change the port vnic_type back to "${before}".`,
        ctx,
        uuid,
      );
    }
  }

  /** _build_vif_model: one port → model.VIF, keys in Nova's order. */
  async #buildVifModel(
    client: NeutronApi,
    port: NeutronPort,
    networks: ReadonlyArray<Partial<NeutronNetwork> & { id: string }>,
    preexisting: ReadonlySet<string>,
  ): Promise<VifModel> {
    const active = port.admin_state_up === false || port.status === 'ACTIVE';
    // _nw_info_get_ips
    const ips: NetworkIp[] = [];
    for (const fixed of port.fixed_ips ?? []) {
      const floats = await safeFloatingIps(client, fixed.ip_address, port.id);
      const floating: NetworkIp[] = [];
      for (const f of floats) {
        const ip = modelIp(f.floating_ip_address, 'floating');
        if (!floating.some((x) => x.address === ip.address)) floating.push(ip);
      }
      ips.push({ ...modelIp(fixed.ip_address, 'fixed'), floating_ips: floating });
    }
    // _nw_info_get_subnets
    const subnets = await this.#subnetsOfPort(client, port);
    for (const s of subnets) s.ips = ips.filter((ip) => inCidr(ip.address, s.cidr));
    const { network, ovsInterfaceId } = await this.#buildNetwork(client, port, networks, subnets);
    return {
      id: port.id,
      address: port.mac_address,
      network,
      type: port['binding:vif_type'] ?? null,
      details: port['binding:vif_details'] ?? {},
      devname: vifDevname(port.id),
      ovs_interfaceid: ovsInterfaceId,
      qbh_params: null,
      qbg_params: null,
      active,
      vnic_type: port['binding:vnic_type'] ?? 'normal',
      profile: bindingProfile(port),
      preserve_on_delete: preexisting.has(port.id),
      delegate_create: true,
      meta: {},
    } as VifModel;
  }

  /** _get_subnets_from_port; the subnet meta differs by release (NovaRelease.subnetDhcpMeta). */
  async #subnetsOfPort(client: NeutronApi, port: NeutronPort): Promise<NetworkSubnet[]> {
    const fixed = port.fixed_ips ?? [];
    // list_subnets(id=[]) would list every subnet the caller sees
    if (fixed.length === 0) return [];
    const ids = [...new Set(fixed.map((f) => f.subnet_id))];
    const found: NeutronSubnet[] = await client.listSubnets({ id: ids });
    const enableDhcpMeta = this.#o.release.subnetDhcpMeta === 'enable_dhcp';
    const out: NetworkSubnet[] = [];
    for (const subnet of found) {
      // Subnet(**subnet_dict): every key but cidr/gateway lands in meta, in this order
      const meta: Record<string, unknown> = {};
      if (enableDhcpMeta) meta.enable_dhcp = false;
      if (subnet.ipv6_address_mode) meta.ipv6_address_mode = subnet.ipv6_address_mode;
      const dhcpPorts = await client.listPorts({ network_id: subnet.network_id, device_owner: 'network:dhcp' });
      for (const p of dhcpPorts) {
        const pair = (p.fixed_ips ?? []).find((ip) => ip.subnet_id === subnet.id);
        if (pair) meta.dhcp_server = pair.ip_address;
      }
      if (enableDhcpMeta) {
        if (subnet.enable_dhcp) meta.enable_dhcp = true;
      } else if (subnet.enable_dhcp && !('dhcp_server' in meta)) {
        // Zed: the metadata API needs a dhcp_server; the gateway stands in (nova bug 1888895)
        meta.dhcp_server = subnet.gateway_ip;
      }
      const dns: NetworkIp[] = [];
      for (const a of subnet.dns_nameservers ?? []) {
        if (!dns.some((d) => d.address === a)) dns.push(modelIp(a, 'dns'));
      }
      const routes: NetworkRoute[] = [];
      for (const r of subnet.host_routes ?? []) {
        if (!routes.some((x) => x.cidr === r.destination && x.gateway?.address === r.nexthop)) {
          routes.push({ cidr: r.destination, gateway: modelIp(r.nexthop, 'gateway'), interface: null, meta: {} });
        }
      }
      out.push({
        cidr: subnet.cidr,
        dns,
        gateway: subnet.gateway_ip ? modelIp(subnet.gateway_ip, 'gateway') : gatewayNone(),
        ips: [],
        routes,
        version: isIP(subnet.cidr.split('/')[0] ?? '') === 6 ? 6 : 4,
        meta,
      });
    }
    return out;
  }

  /** _nw_info_build_network */
  async #buildNetwork(
    client: NeutronApi,
    port: NeutronPort,
    networks: ReadonlyArray<Partial<NeutronNetwork> & { id: string }>,
    subnets: NetworkSubnet[],
  ): Promise<{ network: NetworkModel; ovsInterfaceId: string | null }> {
    const net = networks.find((n) => n.id === port.network_id);
    const label = net?.name ?? null;
    const tenantId = net ? tenantOf(net) : tenantOf(port);
    if (!net) {
      this.#log.warn(
        `Network ${port.network_id} not matched with the tenants network! The ports tenant ${tenantId} will be used.`,
        { logger: LOGGER },
      );
    }
    const mtu = net?.mtu ?? null;
    const vifType = port['binding:vif_type'];
    const details = port['binding:vif_details'] ?? {};
    const bridgeName = typeof details.bridge_name === 'string' ? details.bridge_name : undefined;
    let bridge: string | null = null;
    let ovsInterfaceId: string | null = null;
    let shouldCreateBridge: boolean | undefined;
    if (vifType === 'ovs' || vifType === 'agilio_ovs') {
      bridge = bridgeName ?? this.#o.ovsBridge ?? 'br-int';
      ovsInterfaceId = port.id;
    } else if (vifType === 'bridge') {
      bridge = bridgeName ?? `brq${port.network_id}`;
      shouldCreateBridge = true;
    } else if (vifType === 'dvs') {
      bridge = port.network_id;
    } else if (vifType === 'vhostuser' && details.vhostuser_ovs_plug === true) {
      bridge = bridgeName ?? this.#o.ovsBridge ?? 'br-int';
      ovsInterfaceId = port.id;
    } else if (vifType === 'vhostuser' && details.vhostuser_fp_plug === true) {
      bridge = bridgeName ?? `brq${port.network_id}`;
    }
    if (bridge !== null && vifType !== 'dvs') bridge = bridge.slice(0, 14);
    const { physnet, tunneled } = await this.#physnetTunneled(client, port.network_id);
    const network = {
      id: port.network_id,
      bridge,
      label,
      subnets,
      // Network(..., injected=CONF.flat_injected, tenant_id, mtu, physical_network, tunneled): meta in that order
      meta: { injected: false, tenant_id: tenantId, mtu, physical_network: physnet, tunneled },
      ...(shouldCreateBridge !== undefined ? { should_create_bridge: shouldCreateBridge } : {}),
    } as NetworkModel;
    return { network, ovsInterfaceId };
  }

  /** _get_physnet_tunneled_info (admin client) */
  async #physnetTunneled(client: NeutronApi, netId: string): Promise<{ physnet: string | null; tunneled: boolean }> {
    if (await this.#hasExtension(client, MULTI_PROVIDER)) {
      const net = await client.showNetwork(netId, ['segments']);
      const segments = net.segments ?? [];
      for (const s of segments) {
        const physnet = s['provider:physical_network'];
        if (typeof physnet === 'string' && physnet) return { physnet, tunneled: false };
      }
      if (segments.length > 0) {
        throw novaError('NovaException', `None of the segments of network ${netId} provides a physical_network`, {});
      }
    }
    const net = await client.showNetwork(netId, ['provider:physical_network', 'provider:network_type']);
    return {
      physnet: net['provider:physical_network'] ?? null,
      tunneled: L3_NETWORK_TYPES.includes(net['provider:network_type'] ?? ''),
    };
  }
}

/** _safe_get_floating_ips: a Neutron without the L3 API (no router plugin) answers 404: no floating IPs. */
async function safeFloatingIps(client: NeutronApi, fixedIp: string, portId: string) {
  try {
    return await client.listFloatingIps({ fixed_ip_address: fixedIp, port_id: portId });
  } catch (err) {
    if (isNeutronError(err, { status: 404 })) return [];
    throw err;
  }
}

/** model.IP(address=None, type='gateway') of a subnet without a gateway. */
function gatewayNone(): NetworkIp {
  return { address: null, type: 'gateway', version: null, meta: {} } as unknown as NetworkIp;
}

/** _clean_security_groups: ['default'] alone is what Neutron applies anyway. */
function cleanSecurityGroups(groups: readonly string[] | undefined): string[] {
  if (!groups || groups.length === 0) return [];
  if (groups.length === 1 && groups[0] === 'default') return [];
  return [...groups];
}

/** _ensure_no_port_binding_failure */
export function ensureNoBindingFailure(port: NeutronPort): void {
  if (port['binding:vif_type'] === 'binding_failed') throw NetworkErrors.portBindingFailed(port.id);
}

/** _get_preexisting_port_ids: the cache's VIFs the user brought. */
export function preexistingPortIds(instance: NovaObject): string[] {
  return networkInfoOf(instance)
    .filter((v) => v.preserve_on_delete)
    .map((v) => v.id);
}
