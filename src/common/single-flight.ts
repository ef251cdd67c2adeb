/**
 * Keyed de-duplication of in-flight work: concurrent callers asking for the
 * same key share one promise. The entry is dropped as soon as that promise
 * settles (success or failure), so a later call starts fresh work and a
 * failure is never cached.
 */
export class SingleFlight<K, V> {
  readonly #inFlight = new Map<K, Promise<V>>();

  /** Runs `fn` unless work for `key` is already in flight, in which case its promise is returned. */
  run(key: K, fn: () => Promise<V>): Promise<V> {
    const existing = this.#inFlight.get(key);
    if (existing) return existing;
    let p: Promise<V>;
    try {
      p = fn();
    } catch (err) {
      // A synchronous throw behaves like a rejected promise and leaves nothing behind.
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const entry = p.finally(() => {
      if (this.#inFlight.get(key) === entry) this.#inFlight.delete(key);
    });
    this.#inFlight.set(key, entry);
    return entry;
  }

  /** Whether work for `key` is in flight. */
  has(key: K): boolean {
    return this.#inFlight.has(key);
  }

  /** Number of keys in flight. */
  get size(): number {
    return this.#inFlight.size;
  }
}

/** Wraps a keyed async function so concurrent calls with the same key share one execution. */
export function singleFlight<K, V>(fn: (key: K) => Promise<V>): (key: K) => Promise<V> {
  const group = new SingleFlight<K, V>();
  return (key: K) => group.run(key, () => fn(key));
}
