/**
 * Where the lifecycle lines of each instance's console live between reads:
 * `<dir>/<uuid>/console-lifecycle.jsonl` (the driver passes Nova's
 * instances_path, where libvirt keeps an instance's console.log), one JSON
 * record a line, at most `maxRecords` (the newest), removed with the
 * instance. A file and not `docker inspect` alone: the Engine remembers only
 * the last run (State.StartedAt / FinishedAt; a start resets ExitCode and
 * OOMKilled), so a reboot's exit or an OOM kill before it would be gone, and
 * not container labels: they cannot change after create. The file survives
 * an agent restart; what the Engine did meanwhile is filled in from inspect
 * (console-log.ts `reconcile`). Without a directory the records stay in
 * memory (tests).
 *
 * Every change of one instance runs after the one before (a promise chain),
 * so an event, an action and a read never interleave their read-modify-write.
 * Failures are logged, never thrown: a console line is never the reason an
 * action fails.
 */
import { mkdir, readFile, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../common/errors.js';
import type { Logger } from '../../common/log.js';
import { type LifecycleRecord, normalize, timeFromMs } from './console-log.js';

export const JOURNAL_FILE = 'console-lifecycle.jsonl';
/** About 40 KiB of lines: a long life's worth of reboots, far more than a console shows. */
export const MAX_RECORDS = 256;
/** Container ids of removed guests remembered, so late events (die, destroy) cannot bring a file back. */
const REMOVED_MEMORY = 4096;

const UUID = /^[0-9a-fA-F-]{1,64}$/;

export class LifecycleJournal {
  private readonly memory = new Map<string, LifecycleRecord[]>();
  private readonly queues = new Map<string, Promise<void>>();
  private readonly removed = new Set<string>();

  constructor(
    private readonly dir: string | undefined,
    private readonly log: Logger,
    private readonly maxRecords = MAX_RECORDS,
  ) {}

  /** The file of an instance (undefined without a directory). */
  fileOf(uuid: string): string | undefined {
    if (this.dir === undefined) return undefined;
    if (!UUID.test(uuid)) throw new TypeError(`not an instance uuid: ${JSON.stringify(uuid)}`);
    return join(this.dir, uuid, JOURNAL_FILE);
  }

  /** The records of an instance, oldest first. */
  async read(uuid: string): Promise<LifecycleRecord[]> {
    return await this.update(uuid, () => false);
  }

  /**
   * Runs `change` on the instance's records (it edits them in place and says
   * whether it changed anything) and saves them; returns the records after.
   * Skipped when `containerId` names a container removed meanwhile.
   */
  async update(
    uuid: string,
    change: (records: LifecycleRecord[]) => boolean | Promise<boolean>,
    containerId?: string,
  ): Promise<LifecycleRecord[]> {
    try {
      return await this.serial(uuid, async () => {
        if (containerId !== undefined && this.removed.has(containerId)) return [];
        let records = await this.load(uuid);
        if (await change(records)) {
          records = normalize(records, this.maxRecords);
          await this.save(uuid, records);
        }
        return records;
      });
    } catch (err) {
      this.failed(uuid, err);
      return [];
    }
  }

  /** Adds a line about what Nova asked for, timed now (when asked, not when the queue gets to it). */
  note(uuid: string, text: string, containerId?: string): Promise<void> {
    const t = timeFromMs(Date.now());
    return this.update(
      uuid,
      (records) => {
        records.push({ t, kind: 'action', text });
        return true;
      },
      containerId,
    ).then(() => undefined);
  }

  /** Forgets the instance; events of `containerId` that arrive later are ignored. */
  async remove(uuid: string, containerId?: string): Promise<void> {
    if (containerId !== undefined) this.forgetContainer(containerId);
    await this.serial(uuid, async () => {
      this.memory.delete(uuid);
      const file = this.fileOf(uuid);
      if (file === undefined || this.dir === undefined) return;
      await unlink(file).catch((e: unknown) => {
        if (code(e) !== 'ENOENT') throw e;
      });
      // the instance's directory goes too, unless someone else keeps files there
      await rmdir(join(this.dir, uuid)).catch(() => undefined);
    }).catch((err: unknown) => this.failed(uuid, err));
  }

  /** Ignores whatever `update` is asked about this container from now on (it is being removed). */
  forgetContainer(containerId: string): void {
    this.removed.add(containerId);
    if (this.removed.size > REMOVED_MEMORY) {
      const oldest = this.removed.values().next().value;
      if (oldest !== undefined) this.removed.delete(oldest);
    }
  }

  private failed(uuid: string, err: unknown): void {
    this.log.warn(`console lifecycle lines of ${uuid}: ${errorMessage(err)}`, { instance_uuid: uuid });
  }

  private async serial<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(uuid) ?? Promise.resolve();
    const run = prev.then(fn);
    const done = run.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(uuid, done);
    void done.then(() => {
      if (this.queues.get(uuid) === done) this.queues.delete(uuid);
    });
    return await run;
  }

  private async load(uuid: string): Promise<LifecycleRecord[]> {
    const file = this.fileOf(uuid);
    if (file === undefined) return (this.memory.get(uuid) ?? []).map((r) => ({ ...r }));
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (code(err) === 'ENOENT') return [];
      throw err;
    }
    const out: LifecycleRecord[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        const r = JSON.parse(line) as unknown;
        if (isRecord(r)) out.push(r);
      } catch {
        // a torn line (a crash mid-write is ruled out by the rename, a hand edit is not): skipped
      }
    }
    return out;
  }

  private async save(uuid: string, records: LifecycleRecord[]): Promise<void> {
    const file = this.fileOf(uuid);
    if (file === undefined || this.dir === undefined) {
      this.memory.set(
        uuid,
        records.map((r) => ({ ...r })),
      );
      return;
    }
    await mkdir(join(this.dir, uuid), { recursive: true });
    const tmp = `${file}.tmp`;
    await writeFile(tmp, records.map((r) => JSON.stringify(r)).join('\n') + '\n', { mode: 0o640 });
    await rename(tmp, file);
  }
}

function code(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

function isRecord(v: unknown): v is LifecycleRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r['t'] === 'string' &&
    typeof r['text'] === 'string' &&
    (r['kind'] === 'action' || r['kind'] === 'started' || r['kind'] === 'exited' || r['kind'] === 'oom')
  );
}
