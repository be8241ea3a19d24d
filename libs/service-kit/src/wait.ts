/**
 * Waits for `work` to settle, or `ms` at most, whichever comes first; the work goes on either way.
 * The timer is cleared when the work wins, so it holds the process open no longer than needed.
 */
export async function waitAtMost(work: Promise<unknown> | undefined, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([work, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
