/** Polls `fn` until it returns a value other than undefined, or the deadline passes. */
export async function pollUntil<T>(
  fn: () => Promise<T | undefined> | T | undefined,
  opts: { timeoutMs: number; intervalMs?: number; what?: string },
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 100;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what ?? 'condition'}${why}`, {
        cause: lastError,
      });
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}
