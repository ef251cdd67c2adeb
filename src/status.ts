/**
 * `nova-docker status`: this host's containers (one label-filtered Docker
 * call) beside what Nova says about them (InstanceList.get_by_host, one
 * conductor call) when RabbitMQ answers; Docker alone, with a note, when not.
 */
import type { Config } from './config/index.js';
import { errorMessage } from './common/errors.js';
import { nullLogger } from './common/log.js';
import { DockerClient, type DockerContainerSummary } from './clients/docker/index.js';
import { isObjectPrimitive, listObjects, NovaObject } from './objects/base.js';
import { ConductorAPI } from './objects/conductor.js';
import { controlPlaneFor, describeControlPlane } from './objects/release-select.js';
import { RELEASES, ZED } from './objects/releases.js';
import { adminContext } from './rpc/context.js';
import { messagingOptionsFromConfig } from './rpc/config.js';
import { Messaging } from './rpc/messaging.js';
import { hostLabelFilter, LABELS } from './virt/docker/labels.js';
import { powerStateOfSummary } from './virt/docker/power-state.js';
import { POWER_STATE_NAMES, type PowerState } from './virt/power-state.js';
import { dockerClientOptions } from './wiring.js';

/** What Nova has for one instance on this host (the fields status shows). */
export interface NovaInstanceState {
  uuid: string;
  display_name: string | null;
  vm_state: string | null;
  task_state: string | null;
  power_state: number | null;
}

export interface StatusRow {
  uuid: string;
  /** Nova's display name, else the container's display-name label. */
  name: string | null;
  flavor: string | null;
  container: string | null;
  /** Docker's state (running, exited, …); null when Nova has the instance but there is no container. */
  container_state: string | null;
  /** Docker's status text ("Up 3 minutes"). */
  container_status: string | null;
  /** The power state the agent derives from the container (Nova's names). */
  power_state: string | null;
  /** From Nova; null when Nova was not asked or has no such instance on this host. */
  vm_state: string | null;
  task_state: string | null;
  in_nova: boolean | null;
}

export interface StatusReport {
  host: string;
  nova: {
    reachable: boolean;
    error?: string;
    /** The release this host's Service record reports (e.g. "2025.1 (service version 68)"). */
    release?: string;
    /** The control plane, from nova-conductor's service version. */
    control_plane?: string;
  };
  instances: StatusRow[];
}

function powerName(state: number | null | undefined): string | null {
  if (state === null || state === undefined) return null;
  return POWER_STATE_NAMES[state as PowerState] ?? String(state);
}

/** Joins containers and Nova's instances by uuid; `nova` undefined = Nova not reachable. */
export function statusRows(containers: DockerContainerSummary[], nova: NovaInstanceState[] | undefined): StatusRow[] {
  const byUuid = new Map((nova ?? []).map((i) => [i.uuid, i]));
  const rows: StatusRow[] = [];
  const seen = new Set<string>();
  for (const c of containers) {
    const labels = c.Labels ?? {};
    const uuid = labels[LABELS.instanceUuid];
    // an instance's helper containers (its netns holder) are not rows of their own
    if (!uuid || labels[LABELS.role] !== undefined) continue;
    seen.add(uuid);
    const n = byUuid.get(uuid);
    rows.push({
      uuid,
      name: n?.display_name ?? labels[LABELS.displayName] ?? null,
      flavor: labels[LABELS.flavor] ?? null,
      container: (c.Names[0] ?? c.Id.slice(0, 12)).replace(/^\//, ''),
      container_state: c.State,
      container_status: c.Status,
      power_state: powerName(powerStateOfSummary(c.State, c.Status)),
      vm_state: n?.vm_state ?? null,
      task_state: n?.task_state ?? null,
      in_nova: nova === undefined ? null : n !== undefined,
    });
  }
  for (const n of nova ?? []) {
    if (seen.has(n.uuid)) continue;
    rows.push({
      uuid: n.uuid,
      name: n.display_name,
      flavor: null,
      container: null,
      container_state: null,
      container_status: null,
      power_state: null,
      vm_state: n.vm_state,
      task_state: n.task_state,
      in_nova: true,
    });
  }
  return rows.sort((a, b) => (a.name ?? '').localeCompare(b.name ?? '') || a.uuid.localeCompare(b.uuid));
}

/** A plain-text table, `docker ps` style, and a note when Nova was not asked. */
export function formatStatusTable(report: StatusReport): string {
  const withNova = report.nova.reachable;
  const head = ['UUID', 'NAME', 'FLAVOR', 'CONTAINER', 'POWER STATE', ...(withNova ? ['VM STATE', 'TASK STATE'] : [])];
  const cells = report.instances.map((r) => [
    r.uuid,
    r.name ?? '-',
    r.flavor ?? '-',
    r.container_state ? `${r.container_state} (${r.container_status ?? ''})` : 'no container',
    r.power_state ?? '-',
    ...(withNova ? [r.in_nova ? (r.vm_state ?? '-') : 'not in Nova', r.task_state ?? '-'] : []),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const line = (row: string[]): string =>
    row
      .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const out = [line(head), ...cells.map(line)];
  if (report.instances.length === 0) out.push(`(no instances on host ${report.host})`);
  if (report.nova.release)
    out.push(`nova release: ${report.nova.release}; control plane: ${report.nova.control_plane ?? '?'}`);
  if (!withNova) {
    out.push(
      `note: Nova's view is missing (${report.nova.error ?? 'not asked'}); showing Docker only, ` +
        'so vm_state and task_state are unknown',
    );
  }
  return `${out.join('\n')}\n`;
}

export function formatStatusJson(report: StatusReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** InstanceList.get_by_host, this host's Service version and the conductor's, through the conductor, bounded by `timeoutMs` including the connection. */
async function novaView(
  config: Config,
  timeoutMs: number,
): Promise<{ instances: NovaInstanceState[]; release: string; controlPlane: string }> {
  // every release's InstanceList and Service are read alike; the conductor backports to what we ask
  const release = ZED;
  const options = messagingOptionsFromConfig(config, nullLogger());
  const messaging = new Messaging(options);
  let timer: NodeJS.Timeout | undefined;
  const started = messaging.start();
  started.catch(() => undefined); // rejected by close() when the broker never answered
  try {
    await Promise.race([
      started,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`RabbitMQ did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
        messaging.transport.on('connect_failed', (err: unknown, attempt: number) => {
          if (attempt >= options.hosts.length) reject(new Error(`RabbitMQ is unreachable: ${errorMessage(err)}`));
        });
      }),
    ]);
    clearTimeout(timer);
    const conductor = new ConductorAPI(messaging.client('conductor'), release);
    const ctx = adminContext();
    const timeoutS = Math.max(1, Math.ceil(timeoutMs / 1000));
    const [list, service, conductorVersion] = await Promise.all([
      conductor.classAction(
        ctx,
        'InstanceList',
        'get_by_host',
        [config.DEFAULT.host],
        { expected_attrs: [], use_slave: true },
        { timeoutS },
      ),
      conductor.classAction(
        ctx,
        'Service',
        'get_by_host_and_binary',
        [config.DEFAULT.host, 'nova-compute'],
        {},
        {
          timeoutS,
        },
      ),
      conductor.classAction(ctx, 'Service', 'get_minimum_version', ['nova-conductor'], {}, { timeoutS }),
    ]);
    const version = isObjectPrimitive(service) ? NovaObject.fromPrimitive(service).num('version') : undefined;
    const known = RELEASES.find((r) => r.serviceVersion === version);
    return {
      instances: listObjects(list).map((i) => ({
        uuid: i.str('uuid') ?? '',
        display_name: i.str('display_name') ?? null,
        vm_state: i.str('vm_state') ?? null,
        task_state: i.str('task_state') ?? null,
        power_state: i.num('power_state') ?? null,
      })),
      release:
        version === undefined
          ? 'not registered'
          : `${known?.name ?? 'unknown'} (service version ${version}, [docker] nova_release = ${config.docker.nova_release})`,
      controlPlane:
        typeof conductorVersion === 'number' ? describeControlPlane(controlPlaneFor(conductorVersion)) : '?',
    };
  } finally {
    clearTimeout(timer);
    await messaging.close(0).catch(() => undefined);
  }
}

/** Gathers the report: Docker must answer (else it throws); Nova may not. */
export async function gatherStatus(config: Config, opts: { novaTimeoutMs?: number } = {}): Promise<StatusReport> {
  const host = config.DEFAULT.host;
  const docker = new DockerClient(dockerClientOptions(config));
  const containers = await docker.listContainers({ all: true, filters: { label: hostLabelFilter(host) } });
  let view: Awaited<ReturnType<typeof novaView>> | undefined;
  let error: string | undefined;
  try {
    view = await novaView(config, opts.novaTimeoutMs ?? 10_000);
  } catch (err) {
    error = errorMessage(err);
  }
  return {
    host,
    nova: view
      ? { reachable: true, release: view.release, control_plane: view.controlPlane }
      : { reachable: false, ...(error ? { error } : {}) },
    instances: statusRows(containers, view?.instances),
  };
}
