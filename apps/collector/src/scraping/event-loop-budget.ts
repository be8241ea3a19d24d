/**
 * Shares the event loop between the CPU work of many scrapes (parsing, mapping, serialising), so
 * that however large or hostile the bodies, timers, health checks and other requests get a turn
 * every `budgetMs` or so. Work runs in small steps and asks `turn()` before each: while this turn
 * of the event loop has spent less than the budget it goes on; past it, the step waits for a later
 * turn. Waiting work resumes one scrape per turn, first come first served, so a scrape that always
 * has more to parse cannot starve the others.
 */
export class EventLoopBudget {
  /** When the current turn's budget began; -1 when no work has run since the last turn ended. */
  private startedAt = -1;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly budgetMs = 10) {}

  /** Undefined while the budget lasts (go on at once); else a promise that resolves in a later turn. */
  turn(): Promise<void> | undefined {
    if (this.startedAt < 0) {
      this.begin();
      return undefined;
    }
    if (performance.now() - this.startedAt < this.budgetMs) return undefined;
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Steps waiting for a turn. */
  get queued(): number {
    return this.waiting.length;
  }

  private begin(): void {
    this.startedAt = performance.now();
    // Immediates run after I/O callbacks: by the time this ends the turn, requests have been served.
    setImmediate(this.endTurn);
  }

  private readonly endTurn = (): void => {
    this.startedAt = -1;
    const next = this.waiting.shift();
    if (next) {
      // The one resumed gets a fresh budget; the turn after it resumes the next in line.
      this.begin();
      next();
    }
  };
}
