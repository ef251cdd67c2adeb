/**
 * Plugging Neutron VIFs (Nova's network_info, ../network-model.ts) into an
 * instance's network namespace, the one its netns holder container owns
 * (docs/docker-driver.md "Networking"). One VIF of type `ovs` is a veth pair:
 * the host end `tap<port[:11]>` in the integration bridge with the external
 * ids Neutron's OVS agent (or ovn-controller) looks for, the other end
 * `eth<i>` created directly inside the namespace with the port's MAC and the
 * network's MTU, then every fixed IP, the default routes (first VIF) and the
 * subnets' host routes. As os-vif's ovs plugin and libvirt's interface
 * setup, but with iproute2/ovs-vsctl run as processes behind HostNet, so the
 * exact commands are unit-tested without root.
 *
 * Per plug of n VIFs: one `ip -batch -` on the host, one `ovs-vsctl`, one
 * `nsenter … ip -batch -` inside, and 2n `ethtool` (run in parallel): the
 * userspace (netdev) datapath stalls TCP unless TX checksum offload and
 * TSO/GSO are off on both veth ends.
 *
 * Ownership marks, so unplugging never touches devices of others (the DHCP
 * and L3 agents' taps share the `tap` prefix): the host end's alias is
 * `nova-docker:<instance uuid>`, the OVS Interface has Nova's
 * `external_ids:vm-uuid`.
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { AgentError, errorMessage } from '../../common/errors.js';
import { type Logger, nullLogger } from '../../common/log.js';
import { vifPlugFailure } from '../errors.js';
import { type VifModel, vifDevname } from '../network-model.js';

/** The host's network tools, as the plugger uses them (tests record the calls instead). */
export interface HostNet {
  /**
   * Runs `argv` (no shell) with `input` on stdin; resolves with its stdout.
   * Rejects with HostCommandError when it cannot start or exits non-zero.
   */
  run(argv: readonly string[], input?: string): Promise<string>;
  /** The alias of a host network device: undefined when there is no such device, '' when it has none. */
  linkAlias(name: string): Promise<string | undefined>;
  /** Writes /proc/sys/<key with dots as slashes>. */
  setSysctl(key: string, value: string): Promise<void>;
}

export class HostCommandError extends AgentError {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    cause?: unknown,
  ) {
    super(
      `${argv.join(' ')} failed` +
        (exitCode !== null ? ` (exit status ${exitCode})` : '') +
        (stderr.trim() ? `: ${stderr.trim()}` : cause !== undefined ? `: ${errorMessage(cause)}` : ''),
      cause === undefined ? {} : { cause },
    );
  }
}

/** HostNet on this machine: processes through child_process, /sys and /proc through fs. */
export class ProcessHostNet implements HostNet {
  /** `rootHelper` prefixes every command (e.g. `['sudo', '-n']` when the agent is not root). */
  constructor(
    private readonly rootHelper: readonly string[] = [],
    private readonly timeoutMs = 60_000,
  ) {}

  run(argv: readonly string[], input?: string): Promise<string> {
    const full = [...this.rootHelper, ...argv];
    return new Promise((resolve, reject) => {
      const [cmd, ...args] = full;
      if (!cmd) return reject(new TypeError('empty command'));
      const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: this.timeoutMs });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => reject(new HostCommandError(argv, null, '', e)));
      child.on('close', (code, signal) => {
        const stderr = Buffer.concat(err).toString('utf8');
        if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
        else reject(new HostCommandError(argv, code, stderr || (signal ? `killed by ${signal}` : '')));
      });
      // a tool that exits before reading its input must not crash us with EPIPE
      child.stdin.on('error', () => undefined);
      child.stdin.end(input ?? '');
    });
  }

  async linkAlias(name: string): Promise<string | undefined> {
    if (!/^[\w.:-]{1,15}$/.test(name)) return undefined;
    try {
      return (await readFile(`/sys/class/net/${name}/ifalias`, 'utf8')).trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async setSysctl(key: string, value: string): Promise<void> {
    await writeFile(`/proc/sys/${key.replace(/\./g, '/')}`, value);
  }
}

/** Default integration bridge ([neutron] ovs_bridge in Nova). */
export const DEFAULT_OVS_BRIDGE = 'br-int';

/** The host end's alias: which instance made the device. */
export function tapAlias(instanceUuid: string): string {
  return `nova-docker:${instanceUuid}`;
}

/** The device name inside the instance for the VIF at position `index` of network_info. */
export function guestDevname(index: number): string {
  return `eth${index}`;
}

/** The host end of a VIF: Nova's devname when it has one, else ('tap' + port id)[:14]. */
export function tapName(vif: VifModel): string {
  return vif.devname || vifDevname(vif.id);
}

/** The OVS bridge of a VIF: binding:vif_details.bridge_name, else the configured integration bridge. */
export function bridgeOf(vif: VifModel, defaultBridge: string = DEFAULT_OVS_BRIDGE): string {
  const b = vif.details?.['bridge_name'];
  return typeof b === 'string' && b ? b : defaultBridge;
}

/**
 * Why this driver cannot plug `vif`, or undefined when it can: only vif type
 * `ovs` with vnic_type normal (the veth + OVS plug); a failed or missing
 * binding is named as such.
 */
export function unpluggableReason(vif: VifModel): string | undefined {
  if (vif.type === 'binding_failed' || vif.type === 'unbound') {
    return `its binding failed (binding:vif_type ${vif.type}): no agent on this host can bind it`;
  }
  if (vif.type !== 'ovs') return `vif type '${vif.type}' is not supported by the docker driver (only 'ovs')`;
  const vnic = vif.vnic_type ?? 'normal';
  if (vnic !== 'normal') return `vnic_type '${vnic}' is not supported by the docker driver (only 'normal')`;
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(vif.address ?? '')) return `invalid MAC address '${vif.address}'`;
  const mtu = vif.network?.meta?.mtu;
  if (mtu !== undefined && mtu !== null && !(Number.isInteger(mtu) && mtu >= 68 && mtu <= 65535)) {
    return `invalid network MTU ${String(mtu)}`;
  }
  if (!/^[\w.-]{1,15}$/.test(tapName(vif))) return `invalid device name '${tapName(vif)}'`;
  return undefined;
}

/** Throws VirtualInterfacePlugException for the first VIF that cannot be plugged. */
export function checkPluggable(instanceUuid: string, vifs: readonly VifModel[]): void {
  for (const vif of vifs) {
    const reason = unpluggableReason(vif);
    if (reason) throw vifPlugFailure(instanceUuid, vif.id, reason);
  }
}

/** A VIF with the position that names its device inside (`eth<index>`). */
export interface IndexedVif {
  vif: VifModel;
  index: number;
}

function mtuOf(vif: VifModel): number | undefined {
  const m = vif.network?.meta?.mtu;
  return typeof m === 'number' ? m : undefined;
}

/**
 * Host side, one `ip -batch -`: the veth pair with its peer made directly in
 * the holder's namespace (no rename, no move), the MAC and MTU on the inside,
 * the alias and link up on the outside. Stale devices of ours named in
 * `stale` are deleted first.
 */
export function hostLinkBatch(
  instanceUuid: string,
  pid: number,
  items: readonly IndexedVif[],
  stale: readonly string[] = [],
): string {
  const lines: string[] = stale.map((t) => `link del ${t}`);
  for (const { vif, index } of items) {
    const tap = tapName(vif);
    const mtu = mtuOf(vif);
    const m = mtu !== undefined ? ` mtu ${mtu}` : '';
    lines.push(
      `link add ${tap}${m} type veth peer name ${guestDevname(index)} netns ${pid} address ${vif.address.toLowerCase()}${m}`,
      `link set ${tap} alias ${tapAlias(instanceUuid)}`,
      `link set ${tap} up`,
    );
  }
  return lines.join('\n') + '\n';
}

/** `ethtool -K <dev> tx off tso off gso off` (argv), run in the host or, for the inner end, through nsenter. */
export function offloadArgs(dev: string): string[] {
  return ['ethtool', '-K', dev, 'tx', 'off', 'tso', 'off', 'gso', 'off'];
}

/** `argv` in the network namespace of process `pid`. */
export function inNetns(pid: number, argv: readonly string[]): string[] {
  return ['nsenter', '--net', `--target=${pid}`, '--', ...argv];
}

/** The OVS timeout for one ovs-vsctl transaction (it waits for ovs-vswitchd to apply it). */
const OVS_TIMEOUT_S = 30;

/**
 * os-vif's create_ovs_vif_port as one ovs-vsctl transaction for all `vifs`:
 * the port in its bridge with Nova's external ids (the agent binds by
 * iface-id; vm-uuid marks it ours).
 */
export function ovsAddPortArgs(instanceUuid: string, vifs: readonly VifModel[], defaultBridge: string): string[] {
  const argv = ['ovs-vsctl', `--timeout=${OVS_TIMEOUT_S}`];
  for (const vif of vifs) {
    const tap = tapName(vif);
    argv.push(
      '--',
      '--may-exist',
      'add-port',
      bridgeOf(vif, defaultBridge),
      tap,
      '--',
      'set',
      'Interface',
      tap,
      `external_ids:iface-id=${vif.id}`,
      'external_ids:iface-status=active',
      `external_ids:attached-mac=${vif.address.toLowerCase()}`,
      `external_ids:vm-uuid=${instanceUuid}`,
    );
  }
  return argv;
}

/** Deletes OVS ports by name; absent ones are fine. */
export function ovsDelPortsArgs(taps: readonly string[]): string[] {
  const argv = ['ovs-vsctl', `--timeout=${OVS_TIMEOUT_S}`];
  for (const t of taps) argv.push('--', '--if-exists', 'del-port', t);
  return argv;
}

/** Names of the OVS interfaces marked with this instance (`external_ids:vm-uuid`), one per line. */
export function ovsFindOursArgs(instanceUuid: string): string[] {
  return [
    'ovs-vsctl',
    `--timeout=${OVS_TIMEOUT_S}`,
    '--bare',
    '--columns=name',
    'find',
    'Interface',
    `external_ids:vm-uuid=${instanceUuid}`,
  ];
}

function prefixLen(cidr: string): string {
  const p = cidr.split('/')[1];
  if (!p || !/^\d{1,3}$/.test(p)) throw new TypeError(`subnet cidr ${cidr} has no prefix length`);
  return p;
}

/**
 * Inside the namespace, one `ip -batch -`: lo up; per VIF the device up,
 * every fixed IP of every subnet (IPv6 without duplicate address detection,
 * so it is usable at once), the subnets' host routes; when `defaults`, the
 * default routes via the gateways of the first IPv4 and first IPv6 subnet of
 * the first VIF (Nova's network_info order decides, as the first NIC's
 * gateway does for a VM). `route replace` so a replug of the first VIF into a
 * living namespace does not trip over what is left.
 */
export function netnsBatch(items: readonly IndexedVif[], defaults: boolean): string {
  const lines = ['link set lo up'];
  for (const { vif, index } of items) {
    const dev = guestDevname(index);
    lines.push(`link set ${dev} up`);
    for (const subnet of vif.network?.subnets ?? []) {
      const len = prefixLen(subnet.cidr);
      for (const ip of subnet.ips ?? []) {
        lines.push(`addr add ${ip.address}/${len} dev ${dev}${subnet.version === 6 ? ' nodad' : ''}`);
      }
    }
  }
  for (const { vif, index } of items) {
    const dev = guestDevname(index);
    const subnets = (vif.network?.subnets ?? []).filter((s) => (s.ips ?? []).length > 0);
    if (defaults && index === 0) {
      for (const version of [4, 6] as const) {
        const gw = subnets.find((s) => s.version === version && s.gateway?.address)?.gateway?.address;
        if (gw) lines.push(`route replace ${version === 4 ? 'default' : '::/0'} via ${gw} dev ${dev}`);
      }
    }
    for (const subnet of subnets) {
      for (const r of subnet.routes ?? []) {
        const via = r.gateway?.address ? ` via ${r.gateway.address}` : '';
        lines.push(`route replace ${r.cidr}${via} dev ${dev}`);
      }
    }
  }
  return lines.join('\n') + '\n';
}

/** resolv.conf's limit (MAXNS). */
const MAX_NAMESERVERS = 3;

/**
 * What DHCP would have told the instance: the subnets' dns servers, else the
 * subnet's DHCP server (Zed's meta.dhcp_server; Neutron's dnsmasq answers for
 * the network's names). No search domain: network_info carries none.
 */
export function nameserversOf(vifs: readonly VifModel[]): string[] {
  const out: string[] = [];
  const add = (a: unknown) => {
    if (typeof a === 'string' && a && !out.includes(a)) out.push(a);
  };
  for (const vif of vifs) for (const s of vif.network?.subnets ?? []) for (const d of s.dns ?? []) add(d.address);
  if (out.length === 0) {
    for (const vif of vifs) for (const s of vif.network?.subnets ?? []) add(s.meta?.['dhcp_server']);
  }
  return out.slice(0, MAX_NAMESERVERS);
}

export function resolvConf(vifs: readonly VifModel[]): string {
  const ns = nameserversOf(vifs);
  const head = "# written by nova-docker from the instance's network_info (subnet dns servers)\n";
  if (ns.length === 0) return `${head}# no DNS server on the instance's subnets\n`;
  return head + ns.map((a) => `nameserver ${a}\n`).join('');
}

/** /etc/hosts: localhost and the instance's hostname on its first fixed IP (as DHCP + cloud-init would). */
export function hostsFile(hostname: string | undefined, vifs: readonly VifModel[]): string {
  let text = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n';
  const first = vifs[0]?.network?.subnets?.flatMap((s) => s.ips ?? [])[0]?.address;
  if (hostname) text += first ? `${first}\t${hostname}\n` : `127.0.1.1\t${hostname}\n`;
  return text;
}

/** Timing of a plug, for the metrics. */
export interface VifObserver {
  /** `vifs` VIFs plugged (or failed to) in `seconds`. */
  plugged(seconds: number, vifs: number, ok: boolean): void;
}

export interface VifPluggerOptions {
  /** The integration bridge when a VIF's details name none. Default br-int. */
  defaultBridge?: string;
  observer?: VifObserver | undefined;
}

/**
 * Plugs and unplugs the VIFs of one instance at a time (the driver
 * serialises per instance). Every operation is idempotent and leaves nothing
 * half-made: a failed plug removes what it made.
 */
export class VifPlugger {
  private readonly defaultBridge: string;
  private readonly log: Logger;

  constructor(
    private readonly net: HostNet,
    private readonly opts: VifPluggerOptions = {},
    log: Logger = nullLogger(),
  ) {
    this.defaultBridge = opts.defaultBridge ?? DEFAULT_OVS_BRIDGE;
    this.log = log.child({ logger: 'nova_docker.virt.docker.vif' });
  }

  /**
   * Plugs `items` into the namespace of `pid` (the holder's). A device of
   * ours left under a tap's name is replaced; one of somebody else makes
   * the plug fail. `defaults`: this set includes network_info's first VIF,
   * whose gateways become the default routes. On failure, everything this
   * call made is removed and VirtualInterfacePlugException names the port.
   */
  async plug(instanceUuid: string, pid: number, items: readonly IndexedVif[], defaults = true): Promise<void> {
    if (items.length === 0) return;
    checkPluggable(
      instanceUuid,
      items.map((i) => i.vif),
    );
    const t0 = performance.now();
    const taps = items.map((i) => tapName(i.vif));
    const stale: string[] = [];
    for (const { vif } of items) {
      const tap = tapName(vif);
      const alias = await this.net.linkAlias(tap);
      if (alias === undefined) continue;
      if (alias !== tapAlias(instanceUuid)) {
        throw vifPlugFailure(
          instanceUuid,
          vif.id,
          `device ${tap} exists and is not this instance's (alias '${alias}')`,
        );
      }
      stale.push(tap);
    }
    let step = 'creating the veth pair';
    try {
      // an OVS port left by a namespace that died keeps its dead device open in ovs-vswitchd (it matches
      // ports by name), so a new device under that name would pass no traffic: delete it first, separately
      await Promise.all([
        this.net.run(['ip', '-batch', '-'], hostLinkBatch(instanceUuid, pid, items, stale)),
        this.net.run(ovsDelPortsArgs(taps)),
      ]);
      // the host end needs no addresses: no IPv6 link-local chatter towards the instance
      await Promise.all(
        taps.map((t) => this.net.setSysctl(`net.ipv6.conf.${t}.disable_ipv6`, '1').catch(() => undefined)),
      );
      step = 'turning off offloads / adding the OVS port';
      await Promise.all([
        ...taps.map((t) => this.net.run(offloadArgs(t))),
        ...items.map((i) => this.net.run(inNetns(pid, offloadArgs(guestDevname(i.index))))),
        this.net.run(
          ovsAddPortArgs(
            instanceUuid,
            items.map((i) => i.vif),
            this.defaultBridge,
          ),
        ),
      ]);
      step = 'configuring addresses and routes inside';
      await this.net.run(inNetns(pid, ['ip', '-batch', '-']), netnsBatch(items, defaults));
    } catch (err) {
      this.opts.observer?.plugged((performance.now() - t0) / 1000, items.length, false);
      await this.unplug(
        instanceUuid,
        items.map((i) => i.vif),
      ).catch((e: unknown) =>
        this.log.error(`could not remove the devices of a failed plug: ${errorMessage(e)}`, {
          instance_uuid: instanceUuid,
        }),
      );
      const port = items.map((i) => i.vif.id).join(', ');
      throw vifPlugFailure(instanceUuid, port, `${step} failed: ${errorMessage(err)}`, err);
    }
    const s = (performance.now() - t0) / 1000;
    this.opts.observer?.plugged(s, items.length, true);
    this.log.info(`plugged ${items.length} VIF(s) (${taps.join(', ')}) in ${Math.round(s * 1000)} ms`, {
      instance_uuid: instanceUuid,
    });
  }

  /**
   * Unplugs `vifs`: their OVS ports and their veth pairs, only when marked as
   * this instance's. Missing ones are fine.
   */
  async unplug(instanceUuid: string, vifs: readonly VifModel[]): Promise<void> {
    const taps = vifs.map(tapName);
    const ours: string[] = [];
    for (const t of taps) if ((await this.net.linkAlias(t)) === tapAlias(instanceUuid)) ours.push(t);
    const inOvs = new Set(await this.ovsPortsOf(instanceUuid));
    await this.removeExact(
      taps.filter((t) => inOvs.has(t)),
      ours,
    );
  }

  /**
   * Unplugs every device marked as this instance's, whatever network_info
   * says (destroy, power off): OVS ports by vm-uuid, host links by alias
   * among those and `alsoCheck`.
   */
  async unplugAll(instanceUuid: string, alsoCheck: readonly VifModel[] = []): Promise<void> {
    const ports = await this.ovsPortsOf(instanceUuid);
    const links: string[] = [];
    for (const t of new Set([...ports, ...alsoCheck.map(tapName)])) {
      if ((await this.net.linkAlias(t)) === tapAlias(instanceUuid)) links.push(t);
    }
    await this.removeExact(ports, links);
  }

  /** VIFs of `vifs` whose host device is missing (to replug), in their order. */
  async missing(vifs: readonly VifModel[]): Promise<VifModel[]> {
    const out: VifModel[] = [];
    for (const v of vifs) if ((await this.net.linkAlias(tapName(v))) === undefined) out.push(v);
    return out;
  }

  /** Names of the OVS interfaces marked with this instance. */
  async ovsPortsOf(instanceUuid: string): Promise<string[]> {
    const out = await this.net.run(ovsFindOursArgs(instanceUuid));
    return out
      .split('\n')
      .map((l) => l.trim().replace(/^"|"$/g, ''))
      .filter(Boolean);
  }

  /** The eth<i> devices inside the namespace of `pid`. */
  async guestDevices(pid: number): Promise<string[]> {
    const out = await this.net.run(inNetns(pid, ['ip', '-o', 'link', 'show']));
    const names: string[] = [];
    for (const m of out.matchAll(/^\d+:\s+([^:@\s]+)[@:]/gm)) if (m[1]) names.push(m[1]);
    return names;
  }

  private async removeExact(ports: readonly string[], links: readonly string[]): Promise<void> {
    if (ports.length > 0) await this.net.run(ovsDelPortsArgs(ports));
    // deleting one end deletes the pair; a pair already gone (its namespace died) is fine
    for (const l of links) {
      if ((await this.net.linkAlias(l)) === undefined) continue;
      await this.net.run(['ip', 'link', 'del', l]).catch(async (err: unknown) => {
        if ((await this.net.linkAlias(l)) !== undefined) throw err;
      });
    }
  }
}
