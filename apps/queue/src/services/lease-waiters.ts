/**
 * Long-poll wake-ups inside one process. Each topic has a version that every publish bumps; a
 * waiter remembers the version it saw before its (empty) lease query, so a publish that commits
 * between that query and the wait is never missed.
 */
export class LeaseWaiters {
  private readonly versions = new Map<string, number>();
  private readonly sleepers = new Map<string, Set<() => void>>();
  private closed = false;

  version(topic: string): number {
    return this.versions.get(topic) ?? 0;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get waiting(): number {
    let n = 0;
    for (const set of this.sleepers.values()) n += set.size;
    return n;
  }

  /** Topics someone is waiting on: none once nobody waits, whatever names were waited on. */
  get topicsWaitedOn(): number {
    return this.sleepers.size;
  }

  /** Something became ready on `topic`: wake everyone waiting on it. */
  notify(topic: string): void {
    this.versions.set(topic, this.version(topic) + 1);
    const set = this.sleepers.get(topic);
    if (!set) return;
    this.sleepers.delete(topic);
    for (const wake of set) wake();
  }

  /** Resolves on a notify after `seenVersion`, after `ms`, on abort, or on close. */
  wait(topic: string, seenVersion: number, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.closed || signal?.aborted || this.version(topic) !== seenVersion || ms <= 0)
      return Promise.resolve();
    return new Promise((resolve) => {
      const set = this.sleepers.get(topic) ?? new Set();
      this.sleepers.set(topic, set);
      const wake = () => {
        clearTimeout(timer);
        set.delete(wake);
        // The last sleeper forgets the topic (unless a notify already has, and a new set replaced it).
        if (set.size === 0 && this.sleepers.get(topic) === set) this.sleepers.delete(topic);
        signal?.removeEventListener('abort', wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      signal?.addEventListener('abort', wake, { once: true });
      set.add(wake);
    });
  }

  /** Shutdown: every long-poll returns now (empty), so the server can drain. */
  close(): void {
    this.closed = true;
    for (const topic of [...this.sleepers.keys()]) this.notify(topic);
  }
}
