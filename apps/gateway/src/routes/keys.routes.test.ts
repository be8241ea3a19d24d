import { createServer, type Server } from 'node:http';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import request from 'supertest';
import type { GatewayApp } from '../app';
import { createTestGateway, serve } from '../testing/gateway-test-app';
import type { GatewayDatabase } from '../gateway.tables';

/** Keys with finer scopes and topic limits, created and used through the HTTP API. */
const ADMIN = 'bootstrap-admin-key-for-keys-routes-0123456789';
let database: TestDatabase<GatewayDatabase>;
let upstream: Server;
let gateway: GatewayApp;
const reached: string[] = [];

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  upstream = createServer((req, res) => {
    reached.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  const url = await serve(upstream);
  gateway = createTestGateway(database, {
    GATEWAY_ADMIN_KEY: ADMIN,
    GATEWAY_STREAMER_URLS: url,
    GATEWAY_QUEUE_URLS: url,
    GATEWAY_COLLECTOR_URLS: url,
    GATEWAY_RECORDS: 'false',
  });
});

afterAll(async () => {
  await gateway.close();
  upstream.close();
  await database.drop();
});

const api = () => request(gateway.handler);
const create = (body: unknown) =>
  api()
    .post('/api/v1/keys')
    .set('x-api-key', ADMIN)
    .send(body as object);

describe('POST /api/v1/keys', () => {
  it('creates a key limited to topics, and lists it with its topics', async () => {
    const res = await create({
      name: 'jobs',
      scopes: ['publish', 'consume'],
      topics: ['telemetry', 'jobs.*'],
    }).expect(201);
    expect(res.body).toMatchObject({ scopes: ['publish', 'consume'], topics: ['telemetry', 'jobs.*'] });
    const unlimited = await create({ name: 'all', scopes: ['read'] }).expect(201);
    expect(unlimited.body.topics).toBeNull();
    const listed = (await api().get('/api/v1/keys').set('x-api-key', ADMIN).expect(200)).body.keys;
    expect(listed.find((k: { id: string }) => k.id === res.body.id).topics).toEqual(['telemetry', 'jobs.*']);
  });

  it('answers a method the keys do not take with 405 and Allow', async () => {
    const wrong = await api().put('/api/v1/keys').set('x-api-key', ADMIN).send({}).expect(405);
    expect(wrong.headers['allow']).toBe('GET, HEAD, POST');
    expect(wrong.body.detail).toBe('PUT is not allowed on /api/v1/keys; it takes GET, HEAD, POST.');
    // A caller's own X-Forwarded-Uri is not believed at the edge.
    const claimed = await api()
      .put('/api/v1/keys')
      .set('x-api-key', ADMIN)
      .set('x-forwarded-uri', '/call-0800-scam')
      .send({})
      .expect(405);
    expect(claimed.body.detail).toBe('PUT is not allowed on /api/v1/keys; it takes GET, HEAD, POST.');
    // Without a key, the key comes first, whatever the method.
    await api().put('/api/v1/keys').send({}).expect(401);
    await api().get('/api/v1/keys').expect(401);
  });

  it('names the field of a bad scope or topic list', async () => {
    const cases: [unknown, string, RegExp][] = [
      [{ name: 'x', scopes: ['consume', 'root'] }, 'scopes[1]', /read, publish, consume, admin or traces/],
      [{ name: 'x', scopes: ['read'], topics: ['Jobs'] }, 'topics[0]', /topic name, or a name prefix/],
      [{ name: 'x', scopes: ['read'], topics: ['*'] }, 'topics[0]', /topic name, or a name prefix/],
      [{ name: 'x', scopes: ['read'], topics: ['jo*bs'] }, 'topics[0]', /topic name, or a name prefix/],
      [{ name: 'x', scopes: ['read'], topics: [] }, 'topics', /at least one topic/],
      [{ name: 'x', scopes: ['read'], topics: 'jobs' }, 'topics', /array/],
      [
        { name: 'x', scopes: ['admin'], topics: ['jobs'] },
        'topics',
        /cannot limit a key with the admin scope/,
      ],
      [{ name: 'x', scopes: ['read', 'traces'], topics: ['jobs'] }, 'topics', /traces scope/],
      [{ name: 'a\u0000b', scopes: ['read'] }, 'name', /NUL/],
    ];
    for (const [body, field, message] of cases) {
      const res = await create(body).expect(400);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.body.errors[0].field).toBe(field);
      expect(res.body.errors[0].message).toMatch(message);
    }
  });
});

describe('a key limited to topics', () => {
  let key: string;

  beforeAll(async () => {
    key = (
      await create({
        name: 'limited',
        scopes: ['read', 'publish', 'consume'],
        topics: ['telemetry', 'jobs.*'],
      }).expect(201)
    ).body.key;
  });

  const as = () => ({
    get: (path: string) => api().get(path).set('x-api-key', key),
    post: (path: string) => api().post(path).set('x-api-key', key).send({}),
  });

  it('reaches its topics, by name or prefix, with the scopes it has', async () => {
    const before = reached.length;
    await as().post('/api/v1/topics/telemetry/messages').expect(200);
    await as().post('/api/v1/topics/jobs.render/leases').expect(200);
    await as().post('/api/v1/topics/jobs.render.eu/acks').expect(200);
    await as().post('/api/v1/topics/jobs.x/leases/l1/extend').expect(200);
    await as().get('/api/v1/topics/telemetry').expect(200);
    await as().get('/api/v1/topics/jobs.render/dead').expect(200);
    // Encoded as the queue decodes it: still jobs.render.
    await as().post('/api/v1/topics/%6Aobs.render/messages').expect(200);
    expect(reached.length - before).toBe(7);
  });

  it('gets 403 on other topics, the topic listing and every other route, before reaching the upstream', async () => {
    const before = reached.length;
    const other = await as().post('/api/v1/topics/billing/messages').expect(403);
    expect(other.body.detail).toBe('This API key is limited to other topics than "billing".');
    await as().post('/api/v1/topics/jobs/messages').expect(403); // `jobs.*` is the prefix `jobs.`
    await as().post('/api/v1/topics/telemetry2/messages').expect(403);
    await as().post('/api/v1/topics/jobs.%2F..%2Fbilling/messages').expect(403);
    await as().post('/api/v1/topics/%E0%A4%A/messages').expect(403);
    const listing = await as().get('/api/v1/topics').expect(403);
    expect(listing.body.detail).toContain('listing every topic needs a key that is not');
    await as().get('/api/v1/topics/').expect(403);
    await as().get('/api/v1/topics?x=1').expect(403);
    await as().get('/api/v1/gpus').expect(403);
    await as().get('/api/v1/targets').expect(403);
    await as().get('/api/v1/requests').expect(403);
    await as().get('/api/v1/analytics/latency').expect(403);
    expect(reached.length).toBe(before);
    // Scopes still hold within its topics.
    await as().post('/api/v1/topics/telemetry/dead/redrive').expect(403);
    const metrics = (await request(gateway.app).get('/metrics')).text;
    expect(metrics).toMatch(/gateway_auth_failures_total\{reason="topic",service="gateway"\} 12/);
  });

  it('leaves unlimited keys as they were: the listing and every topic', async () => {
    const reader = (await create({ name: 'reader', scopes: ['read'] }).expect(201)).body.key;
    await api().get('/api/v1/topics').set('x-api-key', reader).expect(200);
    await api().get('/api/v1/topics/billing').set('x-api-key', reader).expect(200);
    await api().get('/api/v1/gpus').set('x-api-key', reader).expect(200);
  });
});
