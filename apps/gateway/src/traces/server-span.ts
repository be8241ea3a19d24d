import type { IncomingMessage, RequestListener } from 'node:http';
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';

const tracer = trace.getTracer('gateway');

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
    const parent = propagation.extract(context.active(), req.headers);
    const span = tracer.startSpan(
      req.method ?? 'GET',
      {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': req.method ?? '', 'url.path': path },
      },
      parent,
    );
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
    context.with(trace.setSpan(parent, span), () => handler(req, res));
  };
}

/** The route pattern Express matched on this request, if any (set on the request object itself). */
function matchedRoute(
  req: IncomingMessage & { route?: { path?: unknown }; baseUrl?: string },
): string | undefined {
  const path = req.route?.path;
  return typeof path === 'string' ? `${req.baseUrl ?? ''}${path}` : undefined;
}
