/**
 * The agent's Prometheus metrics: the only module that imports prom-client.
 * The layers below report through small observer interfaces (RpcObserver,
 * ImageCacheObserver, VifObserver, the manager's onBoot); this module implements them, so
 * none of them depends on a metrics library.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BootTiming } from '../compute/collaborators.js';
import type { VifPlugging } from '../compute/instance-events.js';
import type { RpcObserver } from '../rpc/server.js';
import type { ImageCacheObserver } from '../virt/docker/images.js';
import type { VifObserver } from '../virt/docker/vif.js';
import { POWER_STATE_NAMES, type PowerState } from '../virt/power-state.js';

/** Boot phases, each measured from the moment the build request arrived. */
export const BOOT_PHASES = ['spawning', 'image_ready', 'guest_created', 'spawned', 'active'] as const;
export type BootPhase = (typeof BOOT_PHASES)[number];

/** Seconds: a cached image boots in well under a second, a first download can take minutes. */
const BOOT_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300];

export class AgentMetrics {
  readonly registry = new Registry();
  readonly rpc: RpcObserver;
  readonly images: ImageCacheObserver;
  readonly vifs: VifObserver;
  readonly vifWait: NonNullable<VifPlugging['onWaited']>;
  private readonly bootPhase: Histogram<'phase'>;
  private readonly boots: Counter<'result'>;
  private readonly instances: Gauge<'power_state'>;
  private readonly hypervisorUp: Gauge;
  private instanceSource: (() => Promise<Map<string, PowerState>>) | undefined;

  constructor(opts: { version: string; host: string; processMetrics?: boolean }) {
    const registers = [this.registry];
    if (opts.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    new Gauge({
      name: 'nova_docker_info',
      help: 'Always 1; the labels name the agent version and its compute host.',
      labelNames: ['version', 'host'],
      registers,
    }).set({ version: opts.version, host: opts.host }, 1);

    const received = new Counter({
      name: 'nova_docker_rpc_messages_received_total',
      help: 'RPC messages received on the compute topic, by kind (call or cast) and method (other: not served).',
      labelNames: ['kind', 'method'],
      registers,
    });
    const failures = new Counter({
      name: 'nova_docker_rpc_failures_total',
      help: 'RPC calls and casts that failed, by kind, method and exception class.',
      labelNames: ['kind', 'method', 'exception'],
      registers,
    });
    const replies = new Counter({
      name: 'nova_docker_rpc_replies_sent_total',
      help: 'Final replies sent to RPC callers, by outcome (result or failure); heartbeats excluded.',
      labelNames: ['outcome'],
      registers,
    });
    this.rpc = {
      received: (kind, method) => received.inc({ kind, method }),
      failed: (kind, method, exception) => failures.inc({ kind, method, exception }),
      replied: (outcome) => replies.inc({ outcome }),
    };

    this.bootPhase = new Histogram({
      name: 'nova_docker_boot_phase_seconds',
      help:
        'Seconds from receiving build_and_run_instance to each boot phase: spawning (the state saves are done), ' +
        'image_ready, guest_created (container created, not started), spawned (running), active (saved ACTIVE). ' +
        'Successful builds only. The saves overlap the image and container work, so those phases may come in ' +
        'either order.',
      labelNames: ['phase'],
      buckets: BOOT_BUCKETS,
      registers,
    });
    this.boots = new Counter({
      name: 'nova_docker_boots_total',
      help: 'Finished builds, by result (success or failure).',
      labelNames: ['result'],
      registers,
    });

    const lookups = new Counter({
      name: 'nova_docker_image_cache_lookups_total',
      help: 'Images asked for by a spawn, by source (glance or registry) and result (hit: already local; miss: downloaded or pulled).',
      labelNames: ['source', 'result'],
      registers,
    });
    this.images = { lookup: (source, result) => lookups.inc({ source, result }) };

    const plugs = new Histogram({
      name: 'nova_docker_vif_plug_seconds',
      help:
        'Seconds to plug the VIFs of one operation (spawn, power on, attach, replug) into the instance: veth, ' +
        'offloads, OVS port, addresses and routes; by result (success or failure).',
      labelNames: ['result'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers,
    });
    this.vifs = {
      plugged: (seconds, _vifs, ok) => plugs.observe({ result: ok ? 'success' : 'failure' }, seconds),
    };
    const vifWaits = new Histogram({
      name: 'nova_docker_vif_plugged_wait_seconds',
      help:
        'Seconds from the end of a plug to the last network-vif-plugged event Neutron sent for it (the wait bounded ' +
        'by vif_plugging_timeout); by outcome (completed, failed, timeout).',
      labelNames: ['outcome'],
      buckets: [0.5, 1, 2, 3, 5, 8, 13, 20, 60, 300],
      registers,
    });
    this.vifWait = (seconds, outcome) => vifWaits.observe({ outcome }, seconds);

    // both set by render(), from one hypervisor call per scrape
    this.instances = new Gauge({
      name: 'nova_docker_instances',
      help: 'Guests of this compute host by Nova power state, as the hypervisor reports them.',
      labelNames: ['power_state'],
      registers,
    });
    this.hypervisorUp = new Gauge({
      name: 'nova_docker_hypervisor_up',
      help: '1 when the last scrape could list the guests from the hypervisor (dockerd), else 0.',
      registers,
    });
  }

  /** Where the instance gauge reads power states from (the driver's one-call listing). */
  watchInstances(source: () => Promise<Map<string, PowerState>>): void {
    this.instanceSource = source;
  }

  /** The manager's onBoot. */
  readonly boot = (t: BootTiming): void => {
    this.boots.inc({ result: t.ok ? 'success' : 'failure' });
    if (!t.ok) return;
    for (const phase of BOOT_PHASES) {
      const ms = t[phase];
      if (ms > 0) this.bootPhase.observe({ phase }, ms / 1000);
    }
  };

  private async readInstances(): Promise<void> {
    const source = this.instanceSource;
    if (!source) return;
    this.instances.reset();
    let states: Map<string, PowerState>;
    try {
      states = await source();
    } catch {
      this.hypervisorUp.set(0);
      return;
    }
    this.hypervisorUp.set(1);
    for (const name of Object.values(POWER_STATE_NAMES)) this.instances.set({ power_state: name }, 0);
    for (const state of states.values()) {
      this.instances.inc({ power_state: POWER_STATE_NAMES[state] ?? String(state) });
    }
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ contentType: string; body: string }> {
    await this.readInstances();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
