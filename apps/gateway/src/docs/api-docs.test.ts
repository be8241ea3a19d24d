import { createServer, type Server } from 'node:http';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import request from 'supertest';
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
