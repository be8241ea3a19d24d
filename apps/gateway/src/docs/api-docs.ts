import { createRequire } from 'node:module';
import path from 'node:path';
import {
  apiRouter,
  type OpenApiDocument,
  openApiDocument,
  type Operation,
  problemResponse,
  type Problems,
  serviceAuthorization,
  shapeOf,
} from '@gpu-telemetry/service-kit';
import express, { type Router } from 'express';
import { request } from 'undici';
import { z } from 'zod';
import { type ApiKeyView, SCOPES } from '../auth/api-keys.service';
import type { ProxyRoute } from '../proxy/proxy';
import type { AnalyticsService, RouteLatency } from '../records/analytics.service';
import { latencyQuery, requestsQuery } from '../routes/analytics.routes';
import { createBody } from '../routes/keys.routes';
import type { SpanNode } from '../traces/traces.service';

const time = z.iso.datetime({ offset: true });
const keyView = shapeOf<ApiKeyView>()(
  z.object({
    id: z.string(),
    name: z.string(),
    prefix: z.string(),
    scopes: z.array(z.enum(SCOPES)),
    topics: z
      .array(z.string())
      .nullable()
      .describe('The queue topics the key is limited to (names, or prefixes ending in *); null: not limited'),
    createdAt: time,
    revokedAt: time.nullable(),
    lastUsedAt: time.nullable(),
  }),
);
const routeLatency = shapeOf<RouteLatency>()(
  z.object({
    route: z.string(),
    count: z.number().int(),
    errorRate: z.number().describe('Share of 5xx answers'),
    p50Ms: z.number(),
    p90Ms: z.number(),
    p99Ms: z.number(),
  }),
);
const requestsPage = shapeOf<Awaited<ReturnType<AnalyticsService['requests']>>>()(
  z.object({
    requests: z.array(
      z.object({
        id: z.string(),
        at: time,
        route: z.string(),
        method: z.string(),
        path: z.string(),
        status: z.number().int(),
        latencyMs: z.number(),
        bytesIn: z.number().int(),
        bytesOut: z.number().int(),
        keyId: z.string().nullable(),
        requestId: z.string(),
        traceId: z.string().nullable(),
        upstream: z
          .string()
          .nullable()
          .describe('The instance that answered: its backend and place in GATEWAY_*_URLS, e.g. queue-1'),
      }),
    ),
    nextCursor: z.string().nullable().describe('Pass as before= for the next page; null on the last'),
  }),
);
const spanNode: z.ZodType<SpanNode> = shapeOf<SpanNode>()(
  z
    .object({
      spanId: z.string(),
      parentSpanId: z.string().nullable(),
      service: z.string(),
      name: z.string(),
      kind: z.number().int(),
      start: time,
      end: time,
      durationMs: z.number(),
      status: z.object({ code: z.number().int(), message: z.string().nullable() }),
      attributes: z.record(z.string(), z.unknown()),
      links: z
        .array(
          z.object({
            traceId: z.string(),
            spanId: z.string(),
            attributes: z.record(z.string(), z.unknown()).optional(),
          }),
        )
        .meta({ description: "Spans it follows from (a batch's: the publishes of its queue messages)" }),
      get children() {
        return z.array(spanNode);
      },
    })
    .meta({ id: 'SpanNode' }),
);

/** What the key check answers on every keyed route, the gateway's own and the proxied ones. */
const KEY_PROBLEMS: Problems = {
  401: 'No API key, or an unknown or revoked one',
  403: 'The key lacks the scope, or is limited to other queue topics',
  429: 'Rate limit exceeded, or too many failed authentications; retry after Retry-After',
};

/** What the proxy answers on its own, before or instead of the upstream. */
const PROXY_PROBLEMS: Problems = {
  ...KEY_PROBLEMS,
  400: "The path holds characters a URL path cannot, or a '.' or '..' segment, or the request cannot be forwarded as sent",
  413: 'The body is larger than GATEWAY_BODY_LIMIT',
  502: 'The upstream is unreachable, or failed',
  503: 'Every upstream instance is failing (the circuit is open), too many requests or long-polls are in flight (in all, or for this key or address), or keys cannot be checked; retry after Retry-After',
  504: 'The upstream did not answer within the route timeout',
};

/** The gateway's own API. */
export const gatewayOperations: Operation[] = [
  {
    method: 'post',
    path: '/api/v1/keys',
    summary: 'Create an API key (admin); the key is in this response only',
    tags: ['keys'],
    body: createBody,
    responses: { 201: { description: 'Created', schema: keyView.extend({ key: z.string() }) } },
    problems: { 400: 'A field is invalid (the problem names it)' },
  },
  {
    method: 'get',
    path: '/api/v1/keys',
    summary: 'List API keys (admin)',
    tags: ['keys'],
    responses: { 200: { description: 'Keys', schema: z.object({ keys: z.array(keyView) }) } },
  },
  {
    method: 'delete',
    path: '/api/v1/keys/{id}',
    summary: 'Revoke an API key (admin)',
    tags: ['keys'],
    params: z.object({ id: z.string() }),
    responses: { 200: { description: 'Revoked', schema: keyView } },
    problems: { 400: 'The id is not a UUID', 404: 'No active key has this id' },
  },
  {
    method: 'get',
    path: '/api/v1/analytics/latency',
    summary: 'Count, 5xx rate and p50/p90/p99 latency per route (read)',
    tags: ['observability'],
    query: latencyQuery,
    responses: {
      200: {
        description: 'Per route',
        schema: z.object({ from: time, to: time, routes: z.array(routeLatency) }),
      },
    },
    problems: {
      400: 'A query parameter is invalid, or from is not before to',
      503: 'The read took longer than 10 s and was cancelled: ask for a shorter range or a narrower filter',
    },
  },
  {
    method: 'get',
    path: '/api/v1/requests',
    summary: 'Recent proxied requests, newest first (read)',
    tags: ['observability'],
    query: requestsQuery,
    responses: { 200: { description: 'A page of request records', schema: requestsPage } },
    problems: {
      400: 'A query parameter is invalid',
      503: 'The read took longer than 10 s and was cancelled: ask for a shorter range or a narrower filter',
    },
  },
  {
    method: 'get',
    path: '/api/v1/traces/{traceId}',
    summary:
      'A trace received over OTLP, as span trees (read): at most 10,000 spans, trees at most 64 deep (a deeper span, or one in a parent cycle, starts a tree of its own). To a key without the admin scope, attributes that name where a service or Postgres is reached (server.address, url.full, net.peer.name, db.connection_string and the like) read REDACTED',
    tags: ['observability'],
    params: z.object({ traceId: z.string() }),
    responses: {
      200: {
        description: 'The trace: its spans as trees under their roots',
        schema: z.object({
          traceId: z.string(),
          spanCount: z.number().int(),
          truncated: z
            .boolean()
            .meta({ description: 'Whether the trace has more than the 10,000 spans read, the earliest' }),
          services: z.array(z.string()),
          roots: z.array(spanNode),
          linkedFrom: z
            .array(
              z.object({
                traceId: z.string(),
                spanId: z.string(),
                service: z.string(),
                name: z.string(),
                start: time,
              }),
            )
            .meta({
              description:
                "Spans of other traces that link to this one, the earliest 100 (a publish's trace: the batches that stored its messages)",
            }),
        }),
      },
    },
    problems: {
      400: 'The trace id is not 32 lower-case hex characters',
      404: 'No span of this trace was received',
      503: 'The read took longer than 10 s and was cancelled',
    },
  },
  {
    method: 'post',
    path: '/v1/traces',
    summary:
      'OTLP/HTTP trace receiver: application/x-protobuf or application/json, optionally gzip. A span keeps a service name of 256 characters, a name of 1,024 and 128 attributes (values cut at 4,096 characters, 16,384 in all, 4 deep); a span cut so is stored with gateway.truncated: true',
    tags: ['observability'],
    responses: {
      200: {
        description: 'Stored: an empty ExportTraceServiceResponse, in the media type sent',
        schema: z.object({}),
        alsoAs: ['application/x-protobuf'],
      },
    },
    problems: {
      400: 'The body is not a valid ExportTraceServiceRequest, could not be read, or holds a span starting more than a day ahead',
      405: 'Spans are sent with POST',
      413: 'The body (gunzipped) is larger than 8 MiB',
      429: "Over the key's rate limit (Retry-After)",
      503: 'Four exports are being read already, or the spans could not be stored (Retry-After)',
      415: 'Neither application/x-protobuf nor application/json, or an encoding other than gzip',
    },
  },
];

/** The gateway's own routes; tests hold their answers to it. */
export const gatewayApi = openApiDocument(
  {
    title: 'gpu-telemetry',
    version: '0.1.0',
    description:
      'Everything through the gateway. Send an API key: Authorization: Bearer <key>, X-API-Key, or ' +
      'Authorization: Basic with the key as the password (any user name). ' +
      'Scopes: read (GET anything), publish (POST /api/v1/topics/{topic}/messages, and Prometheus ' +
      'remote write to POST /api/v1/write, which publishes to the telemetry topic), consume (leases, ' +
      'acks, nacks, extend, release), admin (everything, keys included), traces (POST /v1/traces only). ' +
      'The Prometheus HTTP API (/prometheus/api/v1/*, for Grafana and promtool) needs read, for GET and ' +
      'form-encoded POST alike (any other method there, or under /api/v1/write, needs admin). A key created ' +
      'with `topics` reaches only /api/v1/topics/{topic} for those topics, and POST /api/v1/write when ' +
      'telemetry is among them. Each key ' +
      '(without one, each address, or IPv6 /64) has one rate-limit budget for every route, answered 429 ' +
      'with Retry-After and RateLimit headers once spent; repeated failed authentications from one ' +
      'address are answered 429 too.',
  },
  gatewayOperations,
  { problems: KEY_PROBLEMS },
);

/**
 * An upstream's operation as the gateway serves it: the proxy's own problems are added to the
 * upstream's, and its 401 (the service credential, which the gateway always sends) becomes the
 * API key's.
 */
function proxied(operation: {
  responses?: Record<string, { description?: string; content?: Record<string, unknown> }>;
}) {
  const responses = { ...operation.responses };
  delete responses['401'];
  for (const [status, description] of Object.entries(PROXY_PROBLEMS)) {
    const upstream = responses[status];
    const problem = problemResponse(
      Number(status),
      upstream?.description ? `${description}; or ${upstream.description}` : description,
    );
    // An upstream that answers the status in its own shape too (Prometheus' error envelope)
    // keeps it beside the proxy's problem.
    responses[status] = { ...problem, content: { ...upstream?.content, ...problem.content } };
  }
  return { ...operation, responses };
}

const CACHE_MS = 30_000;
/** How long a document missing an upstream's operations is served before that upstream is asked again. */
const PARTIAL_CACHE_MS = 5_000;

/** An upstream service's own document, or undefined when it cannot be had. */
async function upstreamDocument(
  origin: string,
  serviceToken: string,
): Promise<Partial<OpenApiDocument> | undefined> {
  try {
    const res = await request(`${origin}/openapi.json`, {
      headers: { authorization: serviceAuthorization(serviceToken) },
      headersTimeout: 2_000,
      bodyTimeout: 2_000,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return undefined;
    }
    return (await res.body.json()) as Partial<OpenApiDocument>;
  } catch {
    return undefined;
  }
}

/**
 * What the docs page may do: scripts, styles, fonts and images from the gateway (Swagger UI sets
 * inline styles, and draws icons as data: images), calls to the gateway alone, no frames, no forms.
 */
const DOCS_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * GET /openapi.json merges the gateway's own operations with each upstream's document, its paths
 * moved under the gateway's prefixes; GET /docs renders it with Swagger UI served from the
 * installed swagger-ui-dist package (no CDN). The document is built once for all the callers
 * asking meanwhile, each upstream asked once and all side by side, and kept 30 s (5 s while an
 * upstream is missing from it): anonymous callers cannot multiply the calls to the upstreams.
 */
export function docsRoutes(routes: ProxyRoute[], serviceToken: string): Router {
  const router = apiRouter();
  let cached: { at: number; body: string; complete: boolean } | undefined;
  let building: Promise<string> | undefined;

  function merged(): Promise<string> {
    if (cached && Date.now() - cached.at < (cached.complete ? CACHE_MS : PARTIAL_CACHE_MS))
      return Promise.resolve(cached.body);
    building ??= build().finally(() => (building = undefined));
    return building;
  }

  async function build(): Promise<string> {
    const document: OpenApiDocument = structuredClone(gatewayApi);
    const schemas: Record<string, unknown> = { ...document.components?.schemas };
    const origins = [...new Set(routes.map((route) => route.upstreams[0]?.origin ?? ''))];
    const documents = new Map(
      await Promise.all(
        origins.map(async (origin) => [origin, await upstreamDocument(origin, serviceToken)] as const),
      ),
    );
    let complete = true;
    for (const route of routes) {
      const upstreamDoc = documents.get(route.upstreams[0]?.origin ?? '');
      if (!upstreamDoc) {
        complete = false;
        continue;
      }
      for (const [p, item] of Object.entries(upstreamDoc.paths ?? {})) {
        if (p !== route.target && !p.startsWith(`${route.target}/`)) continue;
        document.paths[route.prefix + p.slice(route.target.length)] = Object.fromEntries(
          Object.entries(item).map(([method, operation]) => [method, proxied(operation as object)]),
        );
      }
      Object.assign(schemas, upstreamDoc.components?.schemas);
    }
    document.components = {
      ...(Object.keys(schemas).length ? { schemas } : {}),
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
    };
    document['security'] = [{ bearer: [] }, { apiKey: [] }];
    const body = JSON.stringify(document);
    cached = { at: Date.now(), body, complete };
    return body;
  }

  router.get('/openapi.json', async (_req, res) => {
    res.type('application/json').send(await merged());
  });

  const assets = path.dirname(createRequire(__filename).resolve('swagger-ui-dist/package.json'));
  router.use('/docs/assets', express.static(assets, { index: false, maxAge: '1h' }));
  // The page runs only the gateway's own scripts (its start-up one too is a file, not inline), may
  // call only the gateway, and cannot be framed: a key pasted into it stays with the gateway.
  router.get('/docs/start.js', (_req, res) => {
    res
      .type('text/javascript')
      .send(
        "window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#ui', persistAuthorization: true });\n",
      );
  });
  router.get('/docs', (_req, res) => {
    res.set('content-security-policy', DOCS_POLICY);
    res.type('html').send(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>gpu-telemetry API</title><link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/start.js"></script>
</body>
</html>`);
  });
  return router;
}
