/**
 * The network of one instance with VIFs (docs/docker-driver.md
 * "Networking"): its netns holder container `nova-<uuid>-net`, the VIFs
 * plugged into the holder's namespace (vif.ts), and the resolv.conf / hosts
 * files the instance container bind-mounts. The instance container joins the
 * holder's namespace (NetworkMode container:<holder>), so the network exists
 * before the instance's command runs and outlives its restarts; stopping the
 * holder (power off) takes the namespace and the veths with it.
 *
 * Operations on one instance run one at a time (a holder start seen on the
 * event stream may race the driver's own power on); every one is idempotent.
 */
import { mkdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DockerClient } from '../../clients/docker/client.js';
import type { DockerContainerInspect } from '../../clients/docker/types.js';
import { ConflictError, NotFoundError } from '../../clients/errors.js';
import { NovaError, errorMessage } from '../../common/errors.js';
import { type Logger, nullLogger } from '../../common/log.js';
import { instanceDeployFailure, vifPlugFailure } from '../errors.js';
import type { VifModel } from '../network-model.js';
import type { InstanceSpec, NetworkInfo } from '../types.js';
import { buildHolderSpec, containerHostname } from './container-spec.js';
import { ROLE_NET, holderName, ownedWithRole } from './labels.js';
import { PAUSE_CMD, type PauseImage } from './pause-image.js';
import { type IndexedVif, type VifPlugger, checkPluggable, guestDevname, hostsFile, resolvConf } from './vif.js';

export interface InstanceNetworkOptions {
  host: string;
  extraLabels: Record<string, string>;
  logMaxBytes: number;
  /** Where `<uuid>/resolv.conf` and `<uuid>/hosts` are kept. */
  stateDir: string;
}

/** The files an instance container bind-mounts. */
export interface NetworkFiles {
  resolvConf: string;
  hosts: string;
}

/** What a running holder gives: its container id and the pid whose namespace the VIFs go into. */
export interface HolderState {
  id: string;
  pid: number;
}

export class InstanceNetworks {
  private readonly tails = new Map<string, Promise<void>>();
  /** The network_info last plugged per instance: what a replug outside Nova's calls (holder restarted) uses. */
  private readonly known = new Map<string, NetworkInfo>();
  private readonly log: Logger;

  constructor(
    private readonly docker: DockerClient,
    private readonly plugger: VifPlugger,
    private readonly pause: PauseImage,
    private readonly opts: InstanceNetworkOptions,
    log: Logger = nullLogger(),
  ) {
    this.log = log.child({ logger: 'nova_docker.virt.docker.network' });
  }

  /** The holder image; called at initHost so the first boot with a port does not build it. */
  ensurePauseImage(): Promise<string> {
    return this.pause.ensure();
  }

  /** One operation at a time per instance. */
  serial<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(uuid) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(uuid, tail);
    return prev.then(async () => {
      try {
        return await fn();
      } finally {
        release();
        if (this.tails.get(uuid) === tail) this.tails.delete(uuid);
      }
    });
  }

  /** The network_info last plugged (empty when none is known). */
  knownVifs(uuid: string): NetworkInfo {
    return this.known.get(uuid) ?? [];
  }

  files(uuid: string): NetworkFiles {
    const dir = join(this.opts.stateDir, uuid);
    return { resolvConf: join(dir, 'resolv.conf'), hosts: join(dir, 'hosts') };
  }

  /** The holder of `uuid` on this host, if any. */
  async findHolder(uuid: string): Promise<DockerContainerInspect | undefined> {
    try {
      const c = await this.docker.inspectContainer(holderName(uuid));
      return ownedWithRole(c.Config.Labels, this.opts.host, ROLE_NET, uuid) ? c : undefined;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /**
   * spawn's network: the holder created and started, every VIF plugged into
   * its namespace (inside `wrap`, Nova's wait for network-vif-plugged), the
   * DNS/hosts files written. Returns what the instance container needs. On
   * failure nothing of it is left (the caller's cleanup is `remove`).
   */
  async create(
    instance: InstanceSpec,
    vifs: NetworkInfo,
    wrap: (plug: () => Promise<void>) => Promise<void>,
  ): Promise<NetworkFiles & { holder: string }> {
    checkPluggable(instance.uuid, vifs);
    const pauseRef = await this.pause.ensure().catch((err: unknown) => {
      throw instanceDeployFailure(instance.uuid, `the netns holder image is unavailable: ${errorMessage(err)}`, err);
    });
    return this.serial(instance.uuid, async () => {
      const spec = buildHolderSpec({ instance, pauseRef, cmd: PAUSE_CMD, options: this.opts });
      let holder: HolderState;
      try {
        const created = await this.docker.createContainer(spec.name, spec.body);
        holder = await this.startHolder(created.Id);
      } catch (err) {
        if (err instanceof ConflictError) {
          throw instanceDeployFailure(instance.uuid, `a netns holder ${spec.name} exists already`, err);
        }
        if (err instanceof NovaError) throw err;
        throw instanceDeployFailure(instance.uuid, `creating the netns holder failed: ${errorMessage(err)}`, err);
      }
      await wrap(() => this.plugger.plug(instance.uuid, holder.pid, indexed(vifs)));
      this.known.set(instance.uuid, vifs);
      const files = await this.writeFiles(instance, vifs);
      return { ...files, holder: spec.name };
    });
  }

  /**
   * Brings the network of an existing instance up (power on, reboot, plug_vifs,
   * a resize's power on): the holder started when `start` and it is not
   * running, the VIFs whose tap is missing (re)plugged, DNS/hosts rewritten.
   * `vifs` empty: the last known ones. False when the instance has no holder
   * (booted without network).
   */
  async ensureUp(instance: InstanceSpec, vifs: NetworkInfo, start: boolean, rewriteFiles = true): Promise<boolean> {
    return this.serial(instance.uuid, async () => {
      const c = await this.findHolder(instance.uuid);
      if (!c) return false;
      const use = vifs.length > 0 ? vifs : this.knownVifs(instance.uuid);
      checkPluggable(instance.uuid, use);
      let pid = c.State.Running ? (c.State.Pid ?? 0) : 0;
      if (!pid) {
        if (!start) {
          if (use.length > 0) this.known.set(instance.uuid, use);
          return true;
        }
        // the namespace died with the holder: the OVS ports of its veths are stale
        await this.plugger.unplugAll(instance.uuid, use);
        pid = (await this.startHolder(c.Id)).pid;
      }
      const missing = new Set((await this.plugger.missing(use)).map((v) => v.id));
      const items = indexed(use).filter((i) => missing.has(i.vif.id));
      if (items.length > 0) {
        // a missing tap's OVS port is stale (its device vanished): plug() deletes it before adding
        this.log.info(`plugging ${items.length} missing VIF(s): ${items.map((i) => i.vif.id).join(', ')}`, {
          instance_uuid: instance.uuid,
        });
        await this.plugger.plug(
          instance.uuid,
          pid,
          items,
          items.some((i) => i.index === 0),
        );
      }
      this.known.set(instance.uuid, use);
      if (rewriteFiles) await this.writeFiles(instance, use);
      return true;
    });
  }

  /** Power off: the holder stopped (its namespace and veths go), the OVS ports removed. */
  async stop(uuid: string): Promise<void> {
    await this.serial(uuid, async () => {
      const c = await this.findHolder(uuid);
      if (!c) return;
      if (c.State.Running) await this.docker.stopContainer(c.Id, 0);
      await this.plugger.unplugAll(uuid, this.knownVifs(uuid));
    });
  }

  /**
   * Everything of the instance's network, whatever its state: the holder,
   * the devices marked as the instance's, the files. `vifs` adds tap names to
   * check (only removed when marked as ours).
   */
  async remove(uuid: string, vifs: NetworkInfo): Promise<void> {
    await this.serial(uuid, async () => {
      const c = await this.findHolder(uuid);
      const any = vifs.length > 0 || this.known.has(uuid);
      if (c) {
        await this.docker.removeContainer(c.Id, { force: true, v: true }).catch((err: unknown) => {
          if (!(err instanceof NotFoundError)) throw err;
        });
      }
      if (c || any) await this.plugger.unplugAll(uuid, [...vifs, ...this.knownVifs(uuid)]);
      this.known.delete(uuid);
      const f = this.files(uuid);
      await rm(f.resolvConf, { force: true });
      await rm(f.hosts, { force: true });
      // the directory is shared with the console journal, which removes it when it is the last one out
      await rmdir(join(this.opts.stateDir, uuid)).catch(() => undefined);
    });
  }

  /**
   * Hot-plug of one VIF (attach_interface): `eth<n>` with the next free n.
   * On a stopped instance nothing is plugged now (power on plugs it from
   * network_info). Throws when the instance has no holder.
   */
  async attach(instance: InstanceSpec, vif: VifModel): Promise<void> {
    checkPluggable(instance.uuid, [vif]);
    await this.serial(instance.uuid, async () => {
      const c = await this.findHolder(instance.uuid);
      if (!c) {
        throw vifPlugFailure(
          instance.uuid,
          vif.id,
          'the instance was booted without a network (--nic none): its container has no namespace to plug into',
        );
      }
      const others = this.knownVifs(instance.uuid).filter((v) => v.id !== vif.id);
      const all = [...others, vif];
      const pid = c.State.Running ? (c.State.Pid ?? 0) : 0;
      if (pid > 0 && (await this.plugger.missing([vif])).length > 0) {
        const used = new Set(await this.plugger.guestDevices(pid));
        let n = 0;
        while (used.has(guestDevname(n))) n++;
        await this.plugger.plug(instance.uuid, pid, [{ vif, index: n }], n === 0);
      }
      this.known.set(instance.uuid, all);
      await this.writeFiles(instance, all);
    });
  }

  /** Hot-unplug of one VIF (detach_interface); idempotent. */
  async detach(instance: InstanceSpec, vif: VifModel): Promise<void> {
    await this.serial(instance.uuid, async () => {
      await this.plugger.unplug(instance.uuid, [vif]);
      const rest = this.knownVifs(instance.uuid).filter((v) => v.id !== vif.id);
      this.known.set(instance.uuid, rest);
      if (await this.findHolder(instance.uuid)) await this.writeFiles(instance, rest);
    });
  }

  /**
   * A holder start the driver did not make (someone ran `docker start`, an
   * Engine restart policy): its namespace is new and empty, so the known
   * VIFs are plugged again.
   */
  async holderStarted(uuid: string): Promise<void> {
    const vifs = this.known.get(uuid);
    if (!vifs || vifs.length === 0) return;
    const instance = { uuid } as InstanceSpec;
    await this.ensureUp(instance, vifs, false, false).catch((err: unknown) => {
      this.log.error(`replug after a holder start failed: ${errorMessage(err)}`, { instance_uuid: uuid });
    });
  }

  private async startHolder(id: string): Promise<HolderState> {
    await this.docker.startContainer(id);
    const c = await this.docker.inspectContainer(id);
    if (!c.State.Running || !c.State.Pid) {
      throw new Error(`the netns holder ${id.slice(0, 12)} did not keep running (exit status ${c.State.ExitCode})`);
    }
    return { id, pid: c.State.Pid };
  }

  private async writeFiles(instance: InstanceSpec, vifs: NetworkInfo): Promise<NetworkFiles> {
    const f = this.files(instance.uuid);
    await mkdir(join(this.opts.stateDir, instance.uuid), { recursive: true });
    // written in place, never renamed over: the instance container bind-mounts these inodes
    await writeFile(f.resolvConf, resolvConf(vifs), { mode: 0o644 });
    await writeFile(f.hosts, hostsFile(containerHostname(instance), vifs), { mode: 0o644 });
    return f;
  }
}

/** network_info order names the devices: eth0 for the first VIF. */
export function indexed(vifs: readonly VifModel[]): IndexedVif[] {
  return vifs.map((vif, index) => ({ vif, index }));
}
