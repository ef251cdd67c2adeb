/**
 * utils.synchronized(instance.uuid) of nova's compute manager: one operation
 * at a time per instance, in arrival order. Build and terminate take it, as
 * in Nova, and so does every operation InstanceStore.decorated runs (power
 * actions, rebuild, each resize step, snapshot and backup, shelve, offload
 * and unshelve; Nova locks only some of these), so a delete that arrives
 * mid-build or mid-rebuild waits for it to settle (it fails at its next
 * state save, `deleting` being set) and then removes whatever it left; no
 * destroy ever races a spawn of the same instance. The running-deleted
 * reaper takes it too.
 */
export class InstanceLocks {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(uuid: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(uuid) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = prev.then(() => mine);
    this.tails.set(uuid, tail);
    await prev;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(uuid) === tail) this.tails.delete(uuid);
    }
  }
}
