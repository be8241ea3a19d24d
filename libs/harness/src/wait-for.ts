export interface WaitForOptions {
  /** Give up after this long (default 20 s, inside a test's default 30 s). */
  timeoutMs?: number;
  /** Pause between checks (default 50 ms). */
  intervalMs?: number;
  /** Stop waiting at once when this aborts: the promise rejects with its reason. */
  signal?: AbortSignal;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Checks `condition` now and every `intervalMs` until it holds; resolves with the milliseconds
 * waited. A check that throws counts as "not yet" (a service still starting refuses connections),
 * and its last error is quoted if time runs out.
 */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  options: WaitForOptions = {},
): Promise<number> {
  // Scripts in plain JavaScript call this too: a bare number would silently mean the default.
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`waitFor(${JSON.stringify(what)}): pass options as { timeoutMs, intervalMs }`);
  }
  const { timeoutMs = 20_000, intervalMs = 50, signal } = options;
  const started = Date.now();
  let lastError: unknown;
  for (;;) {
    signal?.throwIfAborted();
    try {
      if (await condition()) return Date.now() - started;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    signal?.throwIfAborted();
    if (Date.now() - started >= timeoutMs) {
      const last = lastError instanceof Error ? ` (last check: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last}`);
    }
    await sleep(intervalMs);
  }
}
