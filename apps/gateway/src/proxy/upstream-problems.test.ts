import { createServer, type Server } from 'node:http';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import {
  createLogger,
  createMetrics,
  createServiceApp,
  openApiDocument,
  SERVICE_CREDENTIAL_PROBLEMS,
  SERVICE_CREDENTIAL_SECURITY,
  serviceTokenFrom,
} from '@gpu-telemetry/service-kit';
import { TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { z } from 'zod';
import { type ListeningGateway, listenGatewayTo, serve } from '../testing/gateway-test-app';
import type { GatewayDatabase } from '../gateway.tables';

/**
 * What a caller meets when a backend turns a request down for its path or method: the backend's
 * service frame (the one every backend is built on, asking for the service credential as they do)
 * behind the gateway as in production. Its 404s and 405s are problems naming the path the caller
 * asked the gateway for, never the backend's own (/v1/gpus for /api/v1/gpus).
 */
const ADMIN = 'bootstrap-admin-key-for-upstream-problems-0123456789';
let database: TestDatabase<GatewayDatabase>;
let backend: Server;
let running: ListeningGateway;

const ok = { 200: { description: 'OK', schema: z.object({ ok: z.boolean() }) } };
const backendApi = openApiDocument(
  { title: 'backend', version: '1' },
  [
    { method: 'get', path: '/v1/gpus', summary: 'GPUs', tags: ['gpus'], responses: ok },
    { method: 'get', path: '/v1/gpus/{id}/telemetry', summary: 'Telemetry', tags: ['gpus'], responses: ok },
    {
      method: 'post',
      path: '/v1/topics/{topic}/messages',
      summary: 'Publish',
      tags: ['topics'],
      responses: ok,
    },
    { method: 'get', path: '/v1/topics/{topic}', summary: 'Topic', tags: ['topics'], responses: ok },
    { method: 'delete', path: '/v1/topics/{topic}', summary: 'Delete', tags: ['topics'], responses: ok },
  ],
  { problems: SERVICE_CREDENTIAL_PROBLEMS, ...SERVICE_CREDENTIAL_SECURITY },
);

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  const app = createServiceApp({
    service: 'backend',
    logger: createLogger('backend', 'silent'),
    metrics: createMetrics('backend', { defaultMetrics: false }),
    readiness: [],
    serviceToken: serviceTokenFrom({ SERVICE_TOKEN: TEST_SERVICE_TOKEN }),
    openapi: backendApi,
    routes: (routed) => {
      const answer = (_req: unknown, res: { json(body: object): void }) => res.json({ ok: true });
      routed.get('/v1/gpus', answer);
      routed.get('/v1/gpus/:id/telemetry', answer);
      routed.post('/v1/topics/:topic/messages', answer);
      routed.get('/v1/topics/:topic', answer);
      routed.delete('/v1/topics/:topic', answer);
    },
  });
  backend = createServer(app);
  running = await listenGatewayTo(database, await serve(backend), ADMIN, {});
});

afterAll(async () => {
  await running.server.close();
  await running.gateway.close();
  backend.closeAllConnections();
  backend.close();
  await database.drop();
});

const api = () => request(running.base);

describe('a backend’s 404 through the gateway', () => {
  it('is a problem naming the path the caller asked for', async () => {
    for (const path of ['/api/v1/gpus/GPU-1/nothing', '/api/v1/topics/jobs/messages/7', '/api/v1/storage']) {
      const missing = await api().get(`${path}?metric=x`).set('x-api-key', ADMIN).expect(404);
      expect(missing.headers['content-type']).toContain('application/problem+json');
      expect(missing.body).toMatchObject({ status: 404, detail: `No route for GET ${path}.` });
      expect(missing.body.detail).not.toContain(' /v1/');
    }
  });
});

describe('a wrong method on a backend’s route through the gateway', () => {
  it('is a 405 whose Allow lists the methods the route takes, naming the path asked for', async () => {
    const wrong = await api().delete('/api/v1/gpus').set('x-api-key', ADMIN).expect(405);
    expect(wrong.headers['content-type']).toContain('application/problem+json');
    expect(wrong.headers['allow']).toBe('GET, HEAD');
    expect(wrong.body).toMatchObject({
      status: 405,
      detail: 'DELETE is not allowed on /api/v1/gpus; it takes GET, HEAD.',
    });
    const publish = await api()
      .put('/api/v1/topics/jobs/messages')
      .set('x-api-key', ADMIN)
      .send({ messages: [] })
      .expect(405);
    expect(publish.headers['allow']).toBe('POST');
    expect(publish.body.detail).toBe('PUT is not allowed on /api/v1/topics/jobs/messages; it takes POST.');
    const topic = await api().post('/api/v1/topics/jobs').set('x-api-key', ADMIN).send({}).expect(405);
    expect(topic.headers['allow']).toBe('GET, HEAD, DELETE');
  });

  it('answers OPTIONS with the methods in Allow', async () => {
    const options = await api().options('/api/v1/gpus/GPU-1/telemetry').set('x-api-key', ADMIN).expect(204);
    expect(options.headers['allow']).toBe('GET, HEAD');
  });
});
