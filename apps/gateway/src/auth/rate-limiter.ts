import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from './api-keys.service';
import { addressGroup, type ClientAddressOf } from './client-address';

/**
 * A token bucket per client: `rate` tokens a second up to `burst`. Returns what the RateLimit
 * headers report. Buckets idle long enough to be full again are forgotten.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private sweptAt = 0;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {}

  take(client: string): { allowed: boolean; limit: number; remaining: number; resetSeconds: number } {
    const now = this.now();
    const bucket = this.buckets.get(client) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate);
    bucket.at = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.buckets.set(client, bucket);
    // Past 100,000 clients, forget the idle ones: at most once a second, so that as many clients
    // all active at once do not cost a walk over every bucket on every request.
    if (this.buckets.size > 100_000 && now - this.sweptAt >= 1_000) this.sweep(now);
    const missing = allowed ? this.burst - bucket.tokens : 1 - bucket.tokens;
    return {
      allowed,
      limit: this.burst,
      remaining: Math.floor(bucket.tokens),
      resetSeconds: Math.max(1, Math.ceil(missing / this.rate)),
    };
  }

  private sweep(now: number): void {
    this.sweptAt = now;
    for (const [client, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.rate >= this.burst) this.buckets.delete(client);
    }
  }
}

/** What a request's client is counted as: its key, or without one its address (an IPv6 /64). */
export function clientOf(
  req: IncomingMessage,
  principal: Principal | undefined,
  address: ClientAddressOf,
): string {
  return principal ? `key:${principal.keyId}` : `ip:${addressGroup(address(req))}`;
}

/**
 * Takes a token for the request's client and sets the RateLimit headers; returns the seconds to
 * wait when the bucket is empty, undefined when the request may go on. The proxied routes and
 * the gateway's own share one limiter: a key has one budget, whatever it calls.
 */
export function takeToken(limiter: RateLimiter, res: ServerResponse, client: string): number | undefined {
  const verdict = limiter.take(client);
  res.setHeader('ratelimit-limit', String(verdict.limit));
  res.setHeader('ratelimit-remaining', String(verdict.remaining));
  res.setHeader('ratelimit-reset', String(verdict.resetSeconds));
  return verdict.allowed ? undefined : verdict.resetSeconds;
}
