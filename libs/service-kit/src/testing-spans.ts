import { context, propagation, trace } from '@opentelemetry/api';
import { node, tracing } from '@opentelemetry/sdk-node';

/**
 * Spans recorded in memory for tests that read what a service traced: a tracer provider with the
 * W3C propagator and the async context manager, as `startTelemetry` sets up in production, so
 * that incoming `traceparent` headers are continued and a span stays active across awaits.
 * `stop()` puts the no-op globals back.
 */
export function recordSpans(): {
  spans(): tracing.ReadableSpan[];
  reset(): void;
  stop(): Promise<void>;
} {
  const exporter = new tracing.InMemorySpanExporter();
  const provider = new node.NodeTracerProvider({
    spanProcessors: [new tracing.SimpleSpanProcessor(exporter)],
  });
  provider.register();
  return {
    spans: () => exporter.getFinishedSpans(),
    reset: () => exporter.reset(),
    stop: async () => {
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}
