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
      help: 'Requests refused by authentication or scope.',
      labelNames: ['reason'] as const,
      registers,
    }),
    rejected: new Counter({
      name: 'gateway_rejected_total',
      help: 'Requests refused: rate_limit, concurrency, circuit_open.',
      labelNames: ['reason'] as const,
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
    otlpRequests: new Counter({
      name: 'gateway_otlp_requests_total',
      help: 'OTLP trace exports received, by outcome (stored, rejected, failed).',
      labelNames: ['outcome'] as const,
      registers,
    }),
    spansStored: new Counter({
      name: 'gateway_spans_stored_total',
      help: 'Spans stored from OTLP exports.',
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
