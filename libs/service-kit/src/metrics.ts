import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { spanExportStats } from './span-export-stats';

export interface ServiceMetrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
}

/** A registry per service (never the global one, so tests can build many apps in one process). */
export function createMetrics(service: string, options: { defaultMetrics?: boolean } = {}): ServiceMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const httpDuration = new Histogram({
    name: 'http_server_request_duration_seconds',
    help: 'HTTP requests served, by method, route pattern and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  new Counter({
    name: 'otlp_spans_exported_total',
    help: 'Spans for the OTLP endpoint: success; failure (endpoint down, refused, timed out); dropped (queue full).',
    labelNames: ['outcome'] as const,
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ outcome: 'success' }, spanExportStats.exported);
      this.inc({ outcome: 'failure' }, spanExportStats.failed);
      this.inc({ outcome: 'dropped' }, spanExportStats.dropped);
    },
  });
  return { registry, httpDuration };
}
