import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { QueueClient } from '@gpu-telemetry/queue-client';
import request from 'supertest';
import { asService } from '@gpu-telemetry/service-kit/testing';
import type { CollectorApp } from '../app';
import { loadCollectorConfig, scrapeTimeoutMs } from '../config';
import { createTestCollector } from '../testing/collector-test-app';
import type { CollectorDatabase } from '../collector.tables';

let database: TestDatabase<CollectorDatabase>;
let collector: CollectorApp;
const queue = new QueueClient({ url: 'http://127.0.0.1:9' });

beforeAll(async () => {
  database = await createTestDatabase<CollectorDatabase>();
  collector = createTestCollector(database, queue, { COLLECT_TARGETS: 'http://gpu-{1..2}:9400/metrics' });
});

afterAll(async () => {
  await queue.close();
  await database.drop();
});

const api = () => request(asService(collector.app));

describe('GET/POST/DELETE /v1/targets', () => {
  it('lists static targets, adds one at runtime, and removes it', async () => {
    const before = await api().get('/v1/targets').expect(200);
    expect(before.body.targets.map((t: { url: string; source: string }) => [t.url, t.source])).toEqual([
      ['http://gpu-1:9400/metrics', 'static'],
      ['http://gpu-2:9400/metrics', 'static'],
    ]);
    const created = await api().post('/v1/targets').send({ url: 'http://node-7:9400/metrics' }).expect(201);
    expect(created.body).toMatchObject({ url: 'http://node-7:9400/metrics', source: 'api' });
    expect(created.headers['location']).toBe(`/v1/targets/${created.body.id}`);
    const listed = await api().get('/v1/targets').expect(200);
    expect(listed.body.targets).toContainEqual(
      expect.objectContaining({
        id: created.body.id,
        url: 'http://node-7:9400/metrics',
        source: 'api',
        owner: 0,
        up: null,
        lastScrapeAt: null,
      }),
    );
    await api().delete(`/v1/targets/${created.body.id}`).expect(204);
    await api().delete(`/v1/targets/${created.body.id}`).expect(404);
    expect((await api().get('/v1/targets')).body.targets).toHaveLength(2);
  });

  it('answers Location under the path the caller asked for: the gateway names it in X-Forwarded-Uri', async () => {
    const proxied = await api()
      .post('/v1/targets')
      .set('x-forwarded-uri', '/api/v1/targets')
      .send({ url: 'http://node-9:9400/metrics' })
      .expect(201);
    expect(proxied.headers['location']).toBe(`/api/v1/targets/${proxied.body.id}`);
    await api().delete(`/v1/targets/${proxied.body.id}`).expect(204);
    // A forwarded path that is not the targets collection's is not echoed.
    const odd = await api()
      .post('/v1/targets')
      .set('x-forwarded-uri', 'http://elsewhere.example/x')
      .send({ url: 'http://node-10:9400/metrics' })
      .expect(201);
    expect(odd.headers['location']).toBe(`/v1/targets/${odd.body.id}`);
    await api().delete(`/v1/targets/${odd.body.id}`).expect(204);
  });

  it('refuses a URL that is already a target, static or added', async () => {
    await api().post('/v1/targets').send({ url: 'http://gpu-1:9400/metrics' }).expect(409);
    await api().post('/v1/targets').send({ url: 'http://node-8:9400/metrics' }).expect(201);
    const again = await api().post('/v1/targets').send({ url: 'http://NODE-8:9400/metrics' }).expect(409);
    expect(again.headers['content-type']).toContain('application/problem+json');
  });

  it.each([
    [{ url: 'http://169.254.169.254/latest/meta-data/' }, 'url', 'metadata or link-local'],
    [{ url: 'gopher://node/metrics' }, 'url', 'must use http or https'],
    [{ url: '' }, 'url', 'must not be empty'],
    [{ url: 42 }, 'url', 'must be a string'],
    [{}, 'url', 'is required'],
    [{ url: 'http://node/metrics', labels: {} }, 'labels', 'is not a known field'],
  ])('answers %j with 400 naming %s', async (body, field, message) => {
    const res = await api().post('/v1/targets').send(body).expect(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.errors).toContainEqual({ field, message: expect.stringContaining(message) });
  });

  it.each([
    ['2,049 characters', `http://node/${'x'.repeat(2037)}`, 'must be at most 2048 characters'],
    // Under the limit as typed, nine times longer once percent-encoded, as it would be stored.
    ['2,012 characters, 18,000 once encoded', `http://node/${'\u6e29'.repeat(2000)}`, 'once percent-encoded'],
  ])('answers a URL of %s with 400 naming url', async (_, url, message) => {
    const res = await api().post('/v1/targets').send({ url }).expect(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.errors).toEqual([{ field: 'url', message: expect.stringContaining(message) }]);
  });

  it('answers a bad id with 400 and malformed JSON with 400', async () => {
    expect((await api().delete('/v1/targets/not-a-uuid').expect(400)).body.errors[0].field).toBe('id');
    await api().delete(`/v1/targets/${randomUUID()}`).expect(404);
    await api().post('/v1/targets').set('content-type', 'application/json').send('{"url":').expect(400);
  });

  it('reports not ready while the queue is unreachable', async () => {
    const res = await api().get('/readyz').expect(503);
    expect(res.body.failed).toEqual(['queue']);
    expect(res.body.checks.postgres).toBe('ok');
  });
});

describe('a target removed', () => {
  it('leaves /metrics once the next round no longer scrapes it', async () => {
    const exporter = createServer((_req, res) => res.end('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1"} 5\n'));
    await new Promise<void>((resolve) => exporter.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(exporter.address() as AddressInfo).port}/metrics`;
    const own = createTestCollector(database, queue);
    try {
      const lastSuccess = async () =>
        (await request(own.app).get('/metrics').expect(200)).text
          .split('\n')
          .filter((line) => line.startsWith('collector_target_last_success_timestamp_seconds{'));
      const created = await request(asService(own.app)).post('/v1/targets').send({ url }).expect(201);
      await own.scrapeLoop.runRound();
      expect(await lastSuccess()).toEqual([expect.stringContaining(`target="${url}"`)]);
      await request(asService(own.app)).delete(`/v1/targets/${created.body.id}`).expect(204);
      await own.scrapeLoop.runRound();
      expect(await lastSuccess()).toEqual([]);
    } finally {
      await own.stop(100);
      exporter.close();
    }
  });
});

describe('collector configuration', () => {
  it('refuses an interval past what a timer can wait (Node would fire it every millisecond)', () => {
    expect(() => createTestCollector(database, queue, { COLLECT_INTERVAL: '30d' })).toThrow(
      /COLLECT_INTERVAL must be between 100ms and 1d \(got "30d"\)/,
    );
  });

  it('refuses a scrape timeout longer than the interval, as Prometheus does', () => {
    expect(() =>
      createTestCollector(database, queue, { COLLECT_INTERVAL: '2s', COLLECT_TIMEOUT: '5s' }),
    ).toThrow(/COLLECT_TIMEOUT must not be longer than COLLECT_INTERVAL .*\(got "5s"\)/);
    expect(() => createTestCollector(database, queue, { COLLECT_TIMEOUT: '50ms' })).toThrow(
      /COLLECT_TIMEOUT must be 0 or between 100ms and 5m \(got "50ms"\)/,
    );
  });

  it('takes the timeout given, up to the interval, and 10s or the interval when none is', () => {
    const timeout = (env: Record<string, string>) =>
      scrapeTimeoutMs(
        loadCollectorConfig({ DATABASE_URL: database.url, SERVICE_TOKEN: 'x'.repeat(32), ...env }),
      );
    expect(timeout({})).toBe(10_000);
    expect(timeout({ COLLECT_INTERVAL: '2s' })).toBe(2_000);
    expect(timeout({ COLLECT_INTERVAL: '2s', COLLECT_TIMEOUT: '2s' })).toBe(2_000);
    expect(timeout({ COLLECT_INTERVAL: '1m', COLLECT_TIMEOUT: '45s' })).toBe(45_000);
    expect(timeout({ COLLECT_INTERVAL: '1m', COLLECT_TIMEOUT: '' })).toBe(10_000);
  });

  it('times a hung target out within one interval when COLLECT_TIMEOUT is unset', async () => {
    // Accepts the connection and never answers.
    const hung = createServer(() => undefined);
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(hung.address() as AddressInfo).port}/metrics`;
    const own = createTestCollector(database, queue, { COLLECT_TARGETS: url, COLLECT_INTERVAL: '1s' });
    try {
      const started = performance.now();
      await own.scrapeLoop.runRound();
      const took = performance.now() - started;
      // 10 s by default; capped at the 1 s interval.
      expect(took).toBeGreaterThanOrEqual(900);
      expect(took).toBeLessThan(5_000);
      const { body } = await request(asService(own.app)).get('/v1/targets').expect(200);
      const status = body.targets.find((t: { url: string }) => t.url === url);
      expect(status.lastError).toMatch(/^timeout/);
    } finally {
      await own.stop(100);
      hung.closeAllConnections();
      hung.close();
    }
  });

  it('refuses to start on a bad target URL, naming it', () => {
    expect(() =>
      createTestCollector(database, queue, {
        COLLECT_TARGETS: 'http://ok:9400/metrics,ftp://bad/x,http://169.254.169.254/',
      }),
    ).toThrow(
      /COLLECT_TARGETS: ftp:\/\/bad\/x must use http or https[\s\S]*COLLECT_TARGETS: http:\/\/169\.254\.169\.254\/ points at a cloud metadata/,
    );
  });
});
