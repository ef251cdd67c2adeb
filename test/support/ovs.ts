/**
 * Open vSwitch and host-link checks for the driver's networking tests: a
 * bridge of the test's own (datapath_type=netdev, the userspace datapath this
 * machine has) standing in for br-int, and what is left on the host.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

async function run(argv: string[], input?: string): Promise<string> {
  const [cmd, ...args] = argv;
  const p = execFileP(cmd!, args, { timeout: 60_000 });
  if (input !== undefined) p.child.stdin?.end(input);
  return (await p).stdout;
}

/** Whether this machine can run the networking tests: root and a working ovs-vsctl. */
export async function ovsUsable(): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  try {
    await run(['ovs-vsctl', '--timeout=5', 'show']);
    return true;
  } catch {
    return false;
  }
}

export async function addBridge(name: string): Promise<void> {
  await run([
    'ovs-vsctl',
    '--timeout=30',
    '--may-exist',
    'add-br',
    name,
    '--',
    'set',
    'Bridge',
    name,
    'datapath_type=netdev',
  ]);
  await run(['ip', 'link', 'set', name, 'up']);
}

export async function delBridge(name: string): Promise<void> {
  await run(['ovs-vsctl', '--timeout=30', '--if-exists', 'del-br', name]);
}

interface OvsRow {
  name: string;
  ids: Record<string, string>;
}

/** OVS interfaces with external_ids:vm-uuid=`uuid`. */
export async function ovsInterfacesOf(uuid: string): Promise<OvsRow[]> {
  const out = await run([
    'ovs-vsctl',
    '--timeout=30',
    '--format=json',
    '--columns=name,external_ids',
    'find',
    'Interface',
    `external_ids:vm-uuid=${uuid}`,
  ]);
  const j = JSON.parse(out) as { data: Array<[string, ['map', Array<[string, string]>]]> };
  return j.data.map(([name, [, pairs]]) => ({ name, ids: Object.fromEntries(pairs) }));
}

/** Ports of `bridge`. */
export async function bridgePorts(bridge: string): Promise<string[]> {
  return (await run(['ovs-vsctl', '--timeout=30', 'list-ports', bridge])).split('\n').filter(Boolean);
}

export function linkExists(name: string): boolean {
  return existsSync(`/sys/class/net/${name}`);
}

/** Host links whose alias is `alias`. */
export function linksWithAlias(alias: string): string[] {
  return readdirSync('/sys/class/net').filter((n) => {
    try {
      return readFileSync(`/sys/class/net/${n}/ifalias`, 'utf8').trim() === alias;
    } catch {
      return false;
    }
  });
}

/** Port ids of the instance whose OVS port exists and whose host device exists. */
export async function pluggedPorts(uuid: string): Promise<string[]> {
  return (await ovsInterfacesOf(uuid)).filter((r) => linkExists(r.name)).map((r) => r.ids['iface-id'] ?? r.name);
}

/** Whether any device (OVS port, host link) marked as the instance's is left. */
export async function deviceLeftovers(uuid: string): Promise<string[]> {
  return [...(await ovsInterfacesOf(uuid)).map((r) => `ovs:${r.name}`), ...linksWithAlias(`nova-docker:${uuid}`)];
}

export { run as hostRun };
