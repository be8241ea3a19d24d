export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * One breaker per upstream instance. After `threshold` consecutive failures it opens: requests
 * skip the instance for `cooldownMs`. Then it half-opens and lets one probe through; a success
 * closes it, a failure opens it again. A probe that has not answered within PROBE_MS (a lease
 * long-poll answers only when it ends, up to a minute later) no longer holds the others back: the
 * next request probes too.
 */
export const PROBE_MS = 1_000;

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  private probeAt = 0;
  state: BreakerState = 'closed';

  constructor(
    private readonly threshold: number,
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
    private readonly onChange: (state: BreakerState) => void = () => undefined,
  ) {}

  /** May a request go to this upstream now? Claims the probe slot when half-open. */
  tryAcquire(): boolean {
    if (this.state === 'open' && this.now() - this.openedAt >= this.cooldownMs) this.set('half-open');
    if (this.state === 'closed') return true;
    if (this.state === 'half-open' && (!this.probing || this.now() - this.probeAt >= PROBE_MS)) {
      this.probing = true;
      this.probeAt = this.now();
      return true;
    }
    return false;
  }

  /** Seconds until an open breaker lets a probe through. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((this.cooldownMs - (this.now() - this.openedAt)) / 1000));
  }

  success(): void {
    this.failures = 0;
    this.probing = false;
    if (this.state !== 'closed') this.set('closed');
  }

  /**
   * Neither: the request failed for its own reasons (refused by the client library, body too
   * large, client gone) and says nothing about the upstream. Frees the probe slot when half-open.
   */
  release(): void {
    this.probing = false;
  }

  failure(): void {
    this.probing = false;
    this.failures++;
    if (this.state === 'half-open' || this.failures >= this.threshold) {
      this.openedAt = this.now();
      if (this.state !== 'open') this.set('open');
    }
  }

  private set(state: BreakerState): void {
    this.state = state;
    this.onChange(state);
  }
}
