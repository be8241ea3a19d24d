import type { IncomingMessage, RequestListener } from 'node:http';
import {
  type Attributes,
  type Context,
  context,
  propagation,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';

const tracer = trace.getTracer('gateway');

/**
 * A server span for `req`, child of the caller's `traceparent`, with its method and path, and the
 * context to run its handling in (the span active). Without the SDK the span is a no-op and the
 * caller's context passes through.
 */
export function startServerSpan(
  req: IncomingMessage,
  name: string,
  attributes: Attributes = {},
): { span: Span; context: Context } {
  const parent = propagation.extract(context.active(), req.headers);
  const span = tracer.startSpan(
    name,
    {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': req.method ?? '',
        'url.path': (req.url ?? '').split('?')[0] ?? '',
        ...attributes,
      },
    },
    parent,
  );
  return { span, context: trace.setSpan(parent, span) };
}

// Probes and scrapes, as on the other services: a trace of each would bury the ones that matter.
const UNTRACED = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * The gateway's own routes (keys, analytics, trace reads, documents) under one server span each,
 * child of the caller's `traceparent`, as the proxied routes are: the gateway runs without the
 * automatic http instrumentation (its hot path traces itself), so without this the key store's
 * queries, a 500 and the request's log line would belong to no trace. The span is named by the
 * route Express matched (`POST /api/v1/keys`), never by the raw path.
 */
export function withServerSpan(handler: RequestListener): RequestListener {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (UNTRACED.has(path)) return handler(req, res);
    const { span, context: spanContext } = startServerSpan(req, req.method ?? 'GET');
    res.once('close', () => {
      const route = matchedRoute(req);
      if (route) {
        span.updateName(`${req.method} ${route}`);
        span.setAttribute('http.route', route);
      }
      // A connection closed before the answer was complete is 499, as the request line says.
      const status = res.writableFinished ? res.statusCode : 499;
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    });
    context.with(spanContext, () => handler(req, res));
  };
}

/** The route pattern Express matched on this request, if any (set on the request object itself). */
function matchedRoute(
  req: IncomingMessage & { route?: { path?: unknown }; baseUrl?: string },
): string | undefined {
  const path = req.route?.path;
  return typeof path === 'string' ? `${req.baseUrl ?? ''}${path}` : undefined;
}
