import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;

export function createGatewayMetrics(registry: Registry) {
  const registers = [registry];
  return {
    requests: new Histogram({
      name: 'gateway_proxy_request_duration_seconds',
      help: 'Proxied requests by route, method, status and upstream instance.',
      labelNames: ['route', 'method', 'status', 'upstream'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    authFailures: new Counter({
      name: 'gateway_auth_failures_total',
      help: 'Requests refused by the key check: missing, invalid, scope, topic, or throttled (too many failures from the address).',
      labelNames: ['reason'] as const,
      registers,
    }),
    rejected: new Counter({
      name: 'gateway_rejected_total',
      help: 'Proxied requests refused or cut short: rate_limit, concurrency (every slot held), concurrency_per_client (the key or address holds its share), long_polls (every long-poll slot held), long_polls_per_client (the key or address holds its share), circuit_open, body_too_large, client_closed, unforwardable, auth_unavailable, malformed_path, expectation.',
      labelNames: ['reason'] as const,
      registers,
    }),
    requestsInFlight: new Gauge({
      name: 'gateway_requests_in_flight',
      help: 'Proxied requests in flight to upstreams, queue long-polls apart (at most GATEWAY_MAX_CONCURRENCY, GATEWAY_MAX_CONCURRENCY_PER_CLIENT for one key or address).',
      registers,
    }),
    longPollsWaiting: new Gauge({
      name: 'gateway_long_polls_waiting',
      help: 'Queue long-polls (lease requests) waiting upstream (at most GATEWAY_MAX_LONG_POLLS).',
      registers,
    }),
    breaker: new Gauge({
      name: 'gateway_breaker_state',
      help: 'Circuit breaker per upstream instance: 0 closed, 1 open, 2 half-open.',
      labelNames: ['upstream'] as const,
      registers,
    }),
    recordsWritten: new Counter({
      name: 'gateway_records_written_total',
      help: 'Request records written to Postgres.',
      registers,
    }),
    recordsDropped: new Counter({
      name: 'gateway_records_dropped_total',
      help: 'Request records dropped because the buffer was full (Postgres slow or down).',
      registers,
    }),
    recordsBuffered: new Gauge({
      name: 'gateway_records_buffered',
      help: 'Request records waiting to be written.',
      registers,
    }),
    retentionFailures: new Counter({
      name: 'gateway_retention_failures_total',
      help: 'Hourly deletions of expired request records and spans that failed (tried again next hour).',
      registers,
    }),
    otlpRequests: new Counter({
      name: 'gateway_otlp_requests_total',
      help: 'OTLP trace exports received, by outcome: stored, rejected (bad content, too large), throttled (rate limit, too many at once), unauthorized, failed (not stored; retried by the exporter).',
      labelNames: ['outcome'] as const,
      registers,
    }),
    spansStored: new Counter({
      name: 'gateway_spans_stored_total',
      help: 'Spans stored from OTLP exports.',
      registers,
    }),
    spansTruncated: new Counter({
      name: 'gateway_spans_truncated_total',
      help: 'Spans received with more than a span keeps (long names or values, too many or too deep attributes): stored cut, marked gateway.truncated.',
      registers,
    }),
    upstreamErrors: new Counter({
      name: 'gateway_upstream_errors_total',
      help: 'Upstream requests that failed without an answer, by whose fault: upstream (counts toward the breaker) or request (does not).',
      labelNames: ['route', 'fault', 'code'] as const,
      registers,
    }),
    previousKeyUses: new Counter({
      name: 'gateway_previous_key_uses_total',
      help: 'Requests authenticated with GATEWAY_ADMIN_KEY_PREVIOUS or GATEWAY_OTLP_KEY_PREVIOUS: rotation is done when this stops growing.',
      labelNames: ['key'] as const,
      registers,
    }),
    retries: new Counter({
      name: 'gateway_upstream_retries_total',
      help: 'Idempotent requests retried after a connection failure.',
      labelNames: ['route'] as const,
      registers,
    }),
  };
}
