/**
 * A token bucket of failures per client: `perMinute` refill up to `burst`. A client whose bucket is
 * empty is throttled until a token is back. Bounded: past `maxClients` it forgets first the clients
 * whose buckets are full again, then those that failed least recently (each sweep frees a tenth, so
 * sweeps are rare). A perMinute of 0 turns it off.
 */
export class FailureThrottle {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly ratePerMs: number;

  constructor(
    perMinute: number,
    private readonly burst: number,
    private readonly maxClients = 100_000,
    private readonly now: () => number = Date.now,
  ) {
    this.ratePerMs = perMinute / 60_000;
  }

  get enabled(): boolean {
    return this.ratePerMs > 0;
  }

  /** Seconds until `client` may fail again; 0 while it is not throttled. */
  retryAfterSeconds(client: string): number {
    const bucket = this.buckets.get(client);
    if (!bucket || !this.enabled) return 0;
    const tokens = this.tokens(bucket, this.now());
    return tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / this.ratePerMs / 1000));
  }

  /** Counts one failure; true when it used the client's last token (it is throttled from now). */
  fail(client: string): boolean {
    if (!this.enabled) return false;
    const now = this.now();
    const bucket = this.buckets.get(client);
    const tokens = (bucket ? this.tokens(bucket, now) : this.burst) - 1;
    // Re-inserted, so the map's order is least recently failed first.
    this.buckets.delete(client);
    this.buckets.set(client, { tokens, at: now });
    if (this.buckets.size > this.maxClients) this.sweep(now);
    return tokens < 1;
  }

  /** Gives back the token a failure took (its request turned out not to fail); never past the burst. */
  refund(client: string): void {
    const bucket = this.buckets.get(client);
    if (!bucket || !this.enabled) return;
    const now = this.now();
    bucket.tokens = Math.min(this.burst, this.tokens(bucket, now) + 1);
    bucket.at = now;
  }

  get size(): number {
    return this.buckets.size;
  }

  private tokens(bucket: { tokens: number; at: number }, now: number): number {
    return Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.ratePerMs);
  }

  private sweep(now: number): void {
    for (const [client, bucket] of this.buckets) {
      if (this.tokens(bucket, now) >= this.burst) this.buckets.delete(client);
    }
    const target = Math.floor(this.maxClients * 0.9);
    for (const client of this.buckets.keys()) {
      if (this.buckets.size <= target) break;
      this.buckets.delete(client);
    }
  }
}
