import { bytes, duration, flag, int, list, loadConfig, serviceEnv } from '@gpu-telemetry/config';
import { z } from 'zod';
import { isAddressOrBlock } from './auth/client-address';

export const gatewayEnv = z.object({
  ...serviceEnv(8080),
  /** Upstream instances per route, comma-separated; requests go round robin. */
  GATEWAY_STREAMER_URLS: list().transform((urls) => (urls.length ? urls : ['http://localhost:8082'])),
  GATEWAY_QUEUE_URLS: list().transform((urls) => (urls.length ? urls : ['http://localhost:8081'])),
  GATEWAY_COLLECTOR_URLS: list().transform((urls) => (urls.length ? urls : ['http://localhost:8083'])),
  /** Require an API key on /api (health endpoints stay open). */
  GATEWAY_AUTH: flag(true),
  /** A bootstrap key with every scope, to create the real ones (at least 24 characters). */
  GATEWAY_ADMIN_KEY: z.string().min(24, 'must be at least 24 characters').optional(),
  /** A key that may only send spans to POST /v1/traces (scope `traces`), for the services' exporters. */
  GATEWAY_OTLP_KEY: z.string().min(24, 'must be at least 24 characters').optional(),
  /** While rotating: the replaced admin / span-export key, still accepted (each use is counted and logged). */
  GATEWAY_ADMIN_KEY_PREVIOUS: z.string().min(24, 'must be at least 24 characters').optional(),
  GATEWAY_OTLP_KEY_PREVIOUS: z.string().min(24, 'must be at least 24 characters').optional(),
  /**
   * Failed authentications (no key, unknown key) per client address: a minute's refill and the
   * burst; past them, 429 before any key lookup. 0 turns the limit off.
   */
  GATEWAY_AUTH_FAILURE_LIMIT: int(30, 0, 1_000_000),
  GATEWAY_AUTH_FAILURE_BURST: int(20, 1, 1_000_000),
  /**
   * Load balancers or ingresses in front of the gateway (IPs or CIDRs): for requests from them the
   * client address is taken from X-Forwarded-For. Empty: the socket's peer is the client.
   */
  GATEWAY_TRUSTED_PROXIES: list().refine(
    (entries) => entries.every(isAddressOrBlock),
    'must be IP addresses or CIDR blocks, comma-separated',
  ),
  /** Time to wait for an upstream's response headers (queue long-polls get their wait on top). */
  GATEWAY_TIMEOUT: duration('30s', { min: '100ms', max: '10m' }),
  /**
   * Time to wait for the streamer's answer to a PromQL query (/prometheus/api/v1/*): longer than
   * its PROMQL_TIMEOUT (2m), so its own timeout answer, in Prometheus' envelope, reaches the client.
   */
  GATEWAY_PROMQL_TIMEOUT: duration('150s', { min: '1s', max: '1h' }),
  GATEWAY_CONNECT_TIMEOUT: duration('5s', { min: '100ms', max: '1m' }),
  GATEWAY_BODY_LIMIT: bytes('32mb'),
  /** Token bucket per API key (per client IP when anonymous): sustained requests/s and burst. */
  GATEWAY_RATE_LIMIT: int(200, 1, 1_000_000),
  GATEWAY_RATE_BURST: int(400, 1, 1_000_000),
  /** Consecutive failures that open an upstream's circuit breaker, and how long it stays open. */
  GATEWAY_BREAKER_FAILURES: int(5, 1, 1000),
  GATEWAY_BREAKER_COOLDOWN: duration('10s', { min: '100ms', max: '10m' }),
  /** Record every proxied request in Postgres, buffering up to this many, written every flush interval. */
  GATEWAY_RECORDS: flag(true),
  GATEWAY_RECORDS_BUFFER: int(10_000, 1, 10_000_000),
  GATEWAY_RECORDS_FLUSH: duration('1s', { min: '10ms', max: '1m' }),
  /** Keep request records and received spans this long; 0 keeps everything. */
  GATEWAY_RETENTION: duration('7d'),
  /**
   * Most requests in flight to upstreams at once, long-polls apart: in all, and per client (an API
   * key, or an address when anonymous; a request holds its slot while its body arrives, however
   * slowly); beyond either, 503. Per client 0: a quarter of GATEWAY_MAX_CONCURRENCY.
   */
  GATEWAY_MAX_CONCURRENCY: int(1024, 1, 1_000_000),
  GATEWAY_MAX_CONCURRENCY_PER_CLIENT: int(0, 0, 1_000_000),
  /**
   * Most queue long-polls (lease requests, which may wait up to a minute) waiting at once: in all,
   * and per client (an API key, or an address when anonymous); beyond either, 503. They take no
   * slot of GATEWAY_MAX_CONCURRENCY. 0: as many as GATEWAY_MAX_CONCURRENCY, a quarter of that each.
   */
  GATEWAY_MAX_LONG_POLLS: int(0, 0, 1_000_000),
  GATEWAY_MAX_LONG_POLLS_PER_CLIENT: int(0, 0, 1_000_000),
});

export type GatewayConfig = z.output<typeof gatewayEnv>;

/** A previous key is only accepted next to a current one, and must differ from it. */
function checkRotation(env: GatewayConfig, ctx: z.RefinementCtx<GatewayConfig>): void {
  for (const name of ['GATEWAY_ADMIN_KEY', 'GATEWAY_OTLP_KEY'] as const) {
    const previous = env[`${name}_PREVIOUS`];
    if (previous === undefined) continue;
    if (env[name] === undefined) ctx.addIssue({ code: 'custom', path: [name], message: 'is required' });
    else if (env[name] === previous)
      ctx.addIssue({ code: 'custom', path: [`${name}_PREVIOUS`], message: `must differ from ${name}` });
  }
}

/** The in-flight budgets in force: GATEWAY_MAX_CONCURRENCY(_PER_CLIENT), the share derived when 0. */
export function concurrencyLimits(
  config: Pick<GatewayConfig, 'GATEWAY_MAX_CONCURRENCY' | 'GATEWAY_MAX_CONCURRENCY_PER_CLIENT'>,
): { max: number; perClient: number } {
  const max = config.GATEWAY_MAX_CONCURRENCY;
  return { max, perClient: shareOf(max, config.GATEWAY_MAX_CONCURRENCY_PER_CLIENT) };
}

/** One client's share of a budget of `max` slots: as set, or a quarter of them (rounded up) when 0. */
const shareOf = (max: number, set: number): number => set || Math.ceil(max / 4);

/** A key's share of the requests in flight cannot be more than all of them. */
function checkConcurrency(env: GatewayConfig, ctx: z.RefinementCtx<GatewayConfig>): void {
  if (env.GATEWAY_MAX_CONCURRENCY_PER_CLIENT > env.GATEWAY_MAX_CONCURRENCY)
    ctx.addIssue({
      code: 'custom',
      path: ['GATEWAY_MAX_CONCURRENCY_PER_CLIENT'],
      message: `must be at most GATEWAY_MAX_CONCURRENCY (${env.GATEWAY_MAX_CONCURRENCY})`,
    });
}

/** The long-poll budgets in force: GATEWAY_MAX_LONG_POLLS(_PER_CLIENT), or the values derived when 0. */
export function longPollLimits(
  config: Pick<
    GatewayConfig,
    'GATEWAY_MAX_CONCURRENCY' | 'GATEWAY_MAX_LONG_POLLS' | 'GATEWAY_MAX_LONG_POLLS_PER_CLIENT'
  >,
): { max: number; perClient: number } {
  const max = config.GATEWAY_MAX_LONG_POLLS || config.GATEWAY_MAX_CONCURRENCY;
  return { max, perClient: shareOf(max, config.GATEWAY_MAX_LONG_POLLS_PER_CLIENT) };
}

/** A key's share of the long-polls cannot be more than all of them. */
function checkLongPolls(env: GatewayConfig, ctx: z.RefinementCtx<GatewayConfig>): void {
  const { max } = longPollLimits(env);
  if (env.GATEWAY_MAX_LONG_POLLS_PER_CLIENT > max)
    ctx.addIssue({
      code: 'custom',
      path: ['GATEWAY_MAX_LONG_POLLS_PER_CLIENT'],
      message: `must be at most GATEWAY_MAX_LONG_POLLS (${max}${env.GATEWAY_MAX_LONG_POLLS ? '' : ', from GATEWAY_MAX_CONCURRENCY'})`,
    });
}

export function loadGatewayConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  return loadConfig(
    gatewayEnv.superRefine(checkRotation).superRefine(checkConcurrency).superRefine(checkLongPolls),
    env,
  );
}
