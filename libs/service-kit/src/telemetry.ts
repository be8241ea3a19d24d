import {
  type Attributes,
  diag,
  DiagLogLevel,
  isSpanContextValid,
  type Link,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
  type Tracer,
} from '@opentelemetry/api';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
} from '@opentelemetry/semantic-conventions';
import { createLogger, type Logger } from './logger';
import { OtlpSpanProcessor } from './otlp-span-processor';
import { plainAddress } from './peer-address';

export { OtlpSpanProcessor } from './otlp-span-processor';

// Probes, scrapes and span exports themselves (a trace of exporting traces would feed itself).
const UNTRACED_PATHS = ['/healthz', '/readyz', '/metrics', '/v1/traces'];

/**
 * Starts the OpenTelemetry SDK. Called from each service's instrumentation.ts, which node loads
 * with --import before the app, so http, undici and pg are patched before anything requires them.
 * Spans are always created (their ids go into logs and onto outgoing calls); they are exported
 * over OTLP/HTTP only when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, encoded as
 * they end so that no request waits for a whole batch's encoding (see otlp-span-processor.ts).
 */
export interface TelemetryOptions {
  version?: string;
  /**
   * Automatic server spans for incoming requests (default on). Off where the service traces its
   * hot path itself: ignoring a path instead would also suppress the spans it creates.
   */
  incomingHttp?: boolean;
  /**
   * Automatic spans for outgoing node:http requests (default on). Off where the only such requests
   * are the span exporter's own, which would pay the instrumentation's wrapper for nothing.
   */
  outgoingHttp?: boolean;
  /** Automatic spans for outgoing undici requests (default on). */
  undici?: boolean;
}

export function startTelemetry(service: string, options: TelemetryOptions = {}): NodeSDK | undefined {
  const version = options.version ?? '0.1.0';
  if (process.env['OTEL_SDK_DISABLED'] === 'true') return undefined;
  const level = process.env['LOG_LEVEL'];
  logDiagnostics(createLogger(service, level === 'error' || level === 'silent' ? level : 'warn'));
  // This SDK exports traces only: metrics are Prometheus (prom-client), logs are stdout.
  process.env['OTEL_METRICS_EXPORTER'] ??= 'none';
  process.env['OTEL_LOGS_EXPORTER'] ??= 'none';
  const exporting = Boolean(
    process.env['OTEL_EXPORTER_OTLP_ENDPOINT'] || process.env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'],
  );
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: process.env['OTEL_SERVICE_NAME'] ?? service,
      [ATTR_SERVICE_VERSION]: version,
    }),
    spanProcessors: [exporting ? new OtlpSpanProcessor() : new NoopSpanProcessor()],
    instrumentations: [
      ...(options.incomingHttp === false && options.outgoingHttp === false
        ? []
        : [
            new HttpInstrumentation({
              disableIncomingRequestInstrumentation: options.incomingHttp === false,
              disableOutgoingRequestInstrumentation: options.outgoingHttp === false,
              ignoreIncomingRequestHook: (req) => UNTRACED_PATHS.some((path) => req.url?.startsWith(path)),
              startIncomingSpanHook: incomingSpanAttributes,
            }),
          ]),
      ...(options.undici === false ? [] : [new UndiciInstrumentation()]),
      // Only queries made inside a traced operation: not the idle polling of background loops.
      new PgInstrumentation({ requireParentSpan: true }),
    ],
  });
  sdk.start();
  return sdk;
}

/**
 * What an incoming request's span says of its peer, where the instrumentation's own words would be
 * a dual-stack socket's: an IPv4 client of a service listening on every address is `::ffff:10.0.0.1`
 * to the socket, and 10.0.0.1 in `network.peer.address`, and in `client.address` where no
 * Forwarded or X-Forwarded-For header names the client instead.
 */
export function incomingSpanAttributes(req: {
  socket: { remoteAddress?: string };
  headers: Record<string, string | string[] | undefined>;
}): Attributes {
  const peer = req.socket.remoteAddress;
  if (!peer) return {};
  const plain = plainAddress(peer);
  if (plain === peer) return {};
  const forwarded = req.headers['forwarded'] !== undefined || req.headers['x-forwarded-for'] !== undefined;
  return { [ATTR_NETWORK_PEER_ADDRESS]: plain, ...(forwarded ? {} : { [ATTR_CLIENT_ADDRESS]: plain }) };
}

/**
 * The SDK's own warnings and errors as log lines of the service (`component: "opentelemetry"`):
 * failed span exports, spans dropped from a full queue. Left alone, the SDK says nothing.
 */
export function logDiagnostics(logger: Logger): void {
  const write =
    (level: 'error' | 'warn') =>
    (message: string, ...args: unknown[]): void => {
      const err = args.find((arg) => arg instanceof Error);
      logger[level]({ component: 'opentelemetry', ...(err ? { err } : {}) }, message);
    };
  const ignore = (): void => undefined;
  diag.setLogger(
    { error: write('error'), warn: write('warn'), info: ignore, debug: ignore, verbose: ignore },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
}

/** Runs `fn` inside an active span that records failures and always ends. */
export async function withSpan<T>(
  tracer: Tracer,
  name: string,
  attributes: Attributes,
  fn: (span: Span) => Promise<T>,
  kind: SpanKind = SpanKind.INTERNAL,
  links: Link[] = [],
): Promise<T> {
  return tracer.startActiveSpan(name, { attributes, kind, links }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: error instanceof Error ? error.message : String(error),
      });
      throw error;
    } finally {
      span.end();
    }
  });
}

export function getTracer(name: string): Tracer {
  return trace.getTracer(name);
}

/** A W3C trace context (version 00; trace id, span id and flags captured; ids not all zeros). */
export const TRACEPARENT = /^00-(?!0{32})([0-9a-f]{32})-(?!0{16})([0-9a-f]{16})-([0-9a-f]{2})$/;

/** `span`'s context as a W3C `traceparent` (to carry it where no header goes); none if invalid. */
export function traceparentOf(span: Span): string | undefined {
  const context = span.spanContext();
  if (!isSpanContextValid(context)) return undefined;
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}

/** A link to the span a `traceparent` names (a message's producer); none for anything else. */
export function linkTo(traceparent: unknown): Link | undefined {
  const match = typeof traceparent === 'string' ? TRACEPARENT.exec(traceparent) : null;
  if (!match) return undefined;
  const [, traceId, spanId, flags] = match as unknown as [string, string, string, string];
  return { context: { traceId, spanId, traceFlags: parseInt(flags, 16), isRemote: true } };
}
