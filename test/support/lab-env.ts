/**
 * Which real Nova control plane the e2e tests, the fault suite and the
 * benches drive: `NOVA_DOCKER_LAB` = zed (../shared/lab, the standard
 * ports; the default), 2025.1 or 2026.1 (test/lab/release-lab.sh, the same
 * services in a Debian 13 / testing root filesystem, ports + 100 / + 200).
 * One table, so every test reaches the same lab.
 */
import { KeystoneClient } from '../../src/clients/keystone/index.js';
import { execFileP, rabbitmqctl, REPO_ROOT, SYSTEM_ENV } from './broker.js';

export type LabRelease = 'zed' | '2025.1' | '2026.1';

const OFFSETS: Record<LabRelease, number> = { zed: 0, '2025.1': 100, '2026.1': 200 };

function labRelease(v: string | undefined): LabRelease {
  if (v === undefined || v === '') return 'zed';
  if (v in OFFSETS) return v as LabRelease;
  throw new Error(`NOVA_DOCKER_LAB=${v}: expected zed, 2025.1 or 2026.1`);
}

export const LAB_RELEASE: LabRelease = labRelease(process.env.NOVA_DOCKER_LAB);
const port = (p: number): number => p + OFFSETS[LAB_RELEASE];

export const RELEASE_LAB_SCRIPT = `${REPO_ROOT}test/lab/release-lab.sh`;

export const LAB_ENDPOINTS = {
  keystone: `http://127.0.0.1:${port(5000)}/v3`,
  nova: `http://127.0.0.1:${port(8774)}/v2.1`,
  glance: `http://127.0.0.1:${port(9292)}`,
  placement: `http://127.0.0.1:${port(8778)}`,
  transportUrl: `rabbit://openstack:labrabbit@127.0.0.1:${port(5672)}/`,
  rabbitPort: port(5672),
  /** Every lab's agents pull from the Zed lab's registry (../shared/lab/openstack-up.sh starts it). */
  registry: '127.0.0.1:5042',
};

/** Keystone as the lab's `nova` service user (nova.conf's service credentials), at `authUrl`. */
export function labServiceKeystone(authUrl: string = LAB_ENDPOINTS.keystone): KeystoneClient {
  return new KeystoneClient({
    authUrl,
    username: 'nova',
    password: 'labservice',
    projectName: 'service',
    userDomainName: 'Default',
    projectDomainName: 'Default',
    regionName: 'RegionOne',
  });
}

/**
 * The lab's Neutron (ML2/OVS on this machine's Open vSwitch, userspace datapath): Zed's is
 * test/lab/neutron-lab.sh, the others' release-lab.sh's (`env` prints the same as NETLAB_*).
 * An agent whose ports are to be bound runs with `host = agentHost` (Neutron binds a port to the
 * OVS agent of its binding:host_id); ports land on `integrationBridge` (binding:vif_details
 * bridge_name); `network` is the shared test network each lab makes.
 */
export const LAB_NEUTRON = {
  url: `http://127.0.0.1:${port(9696)}`,
  agentHost: LAB_RELEASE === 'zed' ? 'nova-docker-net' : `nova-docker-net-${LAB_RELEASE.replace('.', '-')}`,
  integrationBridge: LAB_RELEASE === 'zed' ? 'br-int' : `br-int${LAB_RELEASE.slice(2, 4)}`,
  network: 'nova-docker-lab-net',
  subnetCidr: `10.251.${OFFSETS[LAB_RELEASE]}.0/24`,
};

/**
 * Runs a command where the lab's control plane lives, as root: on this
 * machine for Zed, inside the release's root filesystem otherwise (e.g.
 * nova-manage, nova-status).
 */
export async function labExec(args: string[], timeoutMs = 120_000): Promise<string> {
  const [cmd, ...rest] = LAB_RELEASE === 'zed' ? args : ['bash', RELEASE_LAB_SCRIPT, 'exec', LAB_RELEASE, ...args];
  const { stdout } = await execFileP(cmd ?? 'true', rest, { env: SYSTEM_ENV, timeout: timeoutMs, maxBuffer: 16 << 20 });
  return stdout;
}

/** The lab broker's rabbitmqctl: the host's node for Zed, the release lab's own node otherwise. */
export async function labRabbitmqctl(...args: string[]): Promise<string> {
  if (LAB_RELEASE === 'zed') return await rabbitmqctl(...args);
  const { stdout } = await execFileP('bash', [RELEASE_LAB_SCRIPT, 'rabbitmqctl', LAB_RELEASE, ...args], {
    env: SYSTEM_ENV,
    timeout: 120_000,
  });
  return stdout;
}

/** Stops or starts one daemon of a release lab (release-lab.sh daemon), e.g. its glance-api. */
export async function releaseLabDaemon(name: 'glance-api', action: 'stop' | 'start'): Promise<void> {
  await execFileP('bash', [RELEASE_LAB_SCRIPT, 'daemon', LAB_RELEASE, name, action], {
    env: SYSTEM_ENV,
    timeout: 180_000,
  });
}
