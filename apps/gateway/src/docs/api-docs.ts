import { createRequire } from 'node:module';
import path from 'node:path';
import { openApiDocument, type Operation, serviceAuthorization } from '@gpu-telemetry/service-kit';
import express, { Router } from 'express';
import { request } from 'undici';
import { z } from 'zod';
import { SCOPES } from '../auth/api-keys.service';
import type { ProxyRoute } from '../proxy/proxy';
import { latencyQuery, requestsQuery } from '../routes/analytics.routes';
import { createBody } from '../routes/keys.routes';

const time = z.string().describe('RFC 3339 date-time');
const keyView = z.object({
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
});

/** The gateway's own API. */
export const gatewayOperations: Operation[] = [
  {
    method: 'post',
    path: '/api/v1/keys',
    summary: 'Create an API key (admin); the key is in this response only',
    tags: ['keys'],
    body: createBody,
    responses: { 201: { description: 'Created', schema: keyView.extend({ key: z.string() }) } },
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
        schema: z.object({
          from: time,
          to: time,
          routes: z.array(
            z.object({
              route: z.string(),
              count: z.number(),
              errorRate: z.number(),
              p50Ms: z.number(),
              p90Ms: z.number(),
              p99Ms: z.number(),
            }),
          ),
        }),
      },
    },
  },
  {
    method: 'get',
    path: '/api/v1/requests',
    summary: 'Recent proxied requests, newest first (read)',
    tags: ['observability'],
    query: requestsQuery,
    responses: { 200: { description: 'A page of request records' } },
  },
  {
    method: 'get',
    path: '/api/v1/traces/{traceId}',
    summary: 'A trace received over OTLP, as span trees (read)',
    tags: ['observability'],
    params: z.object({ traceId: z.string() }),
    responses: { 200: { description: 'The trace' } },
  },
  {
    method: 'post',
    path: '/v1/traces',
    summary: 'OTLP/HTTP trace receiver: application/x-protobuf or application/json, optionally gzip',
    tags: ['observability'],
    responses: { 200: { description: 'Stored' } },
  },
];

const CACHE_MS = 30_000;

/**
 * GET /openapi.json merges the gateway's own operations with each upstream's document, its paths
 * moved under the gateway's prefixes; GET /docs renders it with Swagger UI served from the
 * installed swagger-ui-dist package (no CDN).
 */
export function docsRoutes(routes: ProxyRoute[], serviceToken: string): Router {
  const router = Router();
  let cached: { at: number; body: string } | undefined;

  async function merged(): Promise<string> {
    if (cached && Date.now() - cached.at < CACHE_MS) return cached.body;
    const document = openApiDocument(
      {
        title: 'gpu-telemetry',
        version: '0.1.0',
        description:
          'Everything through the gateway. Send an API key: Authorization: Bearer <key>, or X-API-Key. ' +
          'Scopes: read (GET anything), publish (POST /api/v1/topics/{topic}/messages), consume (leases, ' +
          'acks, nacks, extend, release), admin (everything, keys included), traces (POST /v1/traces only). ' +
          'A key created with `topics` reaches only /api/v1/topics/{topic} for those topics. Repeated ' +
          'failed authentications from one address are answered 429 with Retry-After.',
      },
      gatewayOperations,
    ) as { paths: Record<string, unknown>; [key: string]: unknown };
    const missing: string[] = [];
    for (const route of routes) {
      const upstream = route.upstreams[0];
      try {
        const res = await request(`${upstream?.origin}/openapi.json`, {
          headers: { authorization: serviceAuthorization(serviceToken) },
          headersTimeout: 2_000,
          bodyTimeout: 2_000,
        });
        const upstreamDoc = (await res.body.json()) as { paths?: Record<string, unknown> };
        for (const [p, item] of Object.entries(upstreamDoc.paths ?? {})) {
          if (p === route.target || p.startsWith(`${route.target}/`))
            document.paths[route.prefix + p.slice(route.target.length)] = item;
        }
      } catch {
        missing.push(route.name);
      }
    }
    document['components'] = {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
      },
    };
    document['security'] = [{ bearer: [] }, { apiKey: [] }];
    const body = JSON.stringify(document);
    // Only cache a complete document; retry the missing upstreams next time.
    if (missing.length === 0) cached = { at: Date.now(), body };
    return body;
  }

  router.get('/openapi.json', async (_req, res) => {
    res.type('application/json').send(await merged());
  });

  const assets = path.dirname(createRequire(__filename).resolve('swagger-ui-dist/package.json'));
  router.use('/docs/assets', express.static(assets, { index: false, maxAge: '1h' }));
  router.get('/docs', (_req, res) => {
    res.type('html').send(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>gpu-telemetry API</title><link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#ui', persistAuthorization: true });</script>
</body>
</html>`);
  });
  return router;
}
