import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { LARGE_REQUEST_HEADERS, type RunningServer } from '@gpu-telemetry/service-kit';
import request from 'supertest';
import type { GatewayApp } from '../app';
import type { GatewayDatabase } from '../gateway.tables';
import { createTestGateway, listenGateway, serve } from '../testing/gateway-test-app';

/**
 * /prometheus/api/v1/* in front of an upstream that reports what reached it: the streamer's
 * /v1/prometheus/api/v1/* with the service credential, GET and form POST alike, for keys with the
 * read scope (Bearer, X-API-Key, or Basic with the key as password), as Grafana and promtool call it.
 */
const ADMIN = 'bootstrap-admin-key-for-tests-0123456789';
let database: TestDatabase<GatewayDatabase>;
let upstream: Server;
let upstreamUrl: string;
const seen: { method?: string; url?: string; headers: IncomingMessage['headers']; body: string }[] = [];
let gateway: GatewayApp;
let server: RunningServer;
let base: string;

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  // As the streamer listens: request lines and headers up to 1 MiB (LARGE_REQUEST_HEADERS).
  upstream = createServer({ maxHeaderSize: LARGE_REQUEST_HEADERS }, (req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body });
      if (req.url?.includes('/query_range')) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'invalid parameter "start"' }),
        );
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [] } }));
    });
  });
  upstreamUrl = await serve(upstream);
  gateway = createTestGateway(database, {
    GATEWAY_ADMIN_KEY: ADMIN,
    GATEWAY_STREAMER_URLS: upstreamUrl,
    GATEWAY_COLLECTOR_URLS: 'http://127.0.0.1:9',
    GATEWAY_QUEUE_URLS: 'http://127.0.0.1:9',
  });
  ({ server, base } = await listenGateway(gateway));
});

afterAll(async () => {
  await server.close();
  await gateway.close();
  upstream.closeAllConnections();
  upstream.close();
  await database.drop();
});

const api = () => request(base);

async function key(scopes: string[], topics?: string[]): Promise<string> {
  const res = await api()
    .post('/api/v1/keys')
    .set('authorization', `Bearer ${ADMIN}`)
    .send({ name: scopes.join('+'), scopes, ...(topics ? { topics } : {}) })
    .expect(201);
  return res.body.key;
}

describe('/prometheus/api/v1/*', () => {
  it("reaches the streamer's Prometheus API with the service credential, query string and form body intact", async () => {
    const reader = await key(['read']);
    seen.length = 0;
    await api()
      .get('/prometheus/api/v1/query?query=up%7Bjob%3D%22a%22%7D&time=1')
      .set('authorization', `Bearer ${reader}`)
      .expect(200);
    await api()
      .post('/prometheus/api/v1/query')
      .set('authorization', `Bearer ${reader}`)
      .type('form')
      .send('query=sum(rate(x[5m]))&time=2')
      .expect(200);
    expect(seen[0]).toMatchObject({
      method: 'GET',
      url: '/v1/prometheus/api/v1/query?query=up%7Bjob%3D%22a%22%7D&time=1',
    });
    expect(seen[0]?.headers['authorization']).not.toContain(reader);
    expect(seen[1]).toMatchObject({
      method: 'POST',
      url: '/v1/prometheus/api/v1/query',
      body: 'query=sum(rate(x[5m]))&time=2',
    });
    expect(seen[1]?.headers['content-type']).toBe('application/x-www-form-urlencoded');
  });

  it("passes a label-values GET whose match[] lists 2,000 GPUs (Grafana's All of a variable), as Prometheus takes it", async () => {
    const uuids = Array.from(
      { length: 2_000 },
      (_, i) => `GPU-${String(i).padStart(8, '0')}-aaaa-bbbb-cccc-000000000000`,
    );
    const match = `DCGM_FI_DEV_GPU_UTIL{UUID=~"(${uuids.join('|')})"}`;
    seen.length = 0;
    const res = await api()
      .get('/prometheus/api/v1/label/gpu/values')
      .query({ 'match[]': match, start: '1700000000', end: '1700003600' })
      .set('authorization', `Bearer ${ADMIN}`)
      .expect(200);
    expect(res.body.status).toBe('success');
    const url = new URL(seen[0]?.url ?? '', 'http://upstream');
    expect(url.pathname).toBe('/v1/prometheus/api/v1/label/gpu/values');
    expect(url.searchParams.get('match[]')).toBe(match);
    expect(match.length).toBeGreaterThan(80_000);
  });

  it("passes Prometheus' error envelope through with its status", async () => {
    const reader = await key(['read']);
    const res = await api()
      .get('/prometheus/api/v1/query_range?query=up')
      .set('x-api-key', reader)
      .expect(400);
    expect(res.body).toEqual({ status: 'error', errorType: 'bad_data', error: 'invalid parameter "start"' });
  });

  it('needs the read scope for GET and POST, and refuses keys limited to topics', async () => {
    await api().get('/prometheus/api/v1/labels').expect(401);
    const publisher = await key(['publish']);
    const refused = await api()
      .post('/prometheus/api/v1/query')
      .set('x-api-key', publisher)
      .type('form')
      .send('query=up')
      .expect(403);
    expect(refused.body.detail).toContain('"read" scope');
    const limited = await key(['read'], ['jobs']);
    await api().get('/prometheus/api/v1/labels').set('x-api-key', limited).expect(403);
  });

  it('takes the key as the password of Basic authentication, as promtool sends it from the URL', async () => {
    const reader = await key(['read']);
    const basic = Buffer.from(`prometheus:${reader}`).toString('base64');
    await api().get('/prometheus/api/v1/status/buildinfo').set('authorization', `Basic ${basic}`).expect(200);
    const wrong = Buffer.from('prometheus:gt_nope').toString('base64');
    await api().get('/prometheus/api/v1/status/buildinfo').set('authorization', `Basic ${wrong}`).expect(401);
    const noPassword = Buffer.from(`${reader}`).toString('base64');
    await api()
      .get('/prometheus/api/v1/status/buildinfo')
      .set('authorization', `Basic ${noPassword}`)
      .expect(401);
  });
});
