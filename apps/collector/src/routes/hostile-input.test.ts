import fc from 'fast-check';
import request from 'supertest';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { startCollectorTestApp } from '../testing/collector-test-app';

/**
 * Random and malformed input against the targets API: always a 2xx or a 4xx problem, never a 5xx;
 * URLs that point at cloud metadata, link-local or non-HTTP endpoints are refused; injected SQL is
 * stored as data, never run.
 */
let app: Awaited<ReturnType<typeof startCollectorTestApp>>;

beforeAll(async () => {
  app = await startCollectorTestApp();
});

afterAll(async () => {
  await app.close();
});

const api = () => request(asService(app.collector.app));

async function expectSane(res: request.Response) {
  expect(res.status).toBeLessThan(500);
  if (res.status >= 400) expect(res.headers['content-type']).toContain('application/problem+json');
}

describe('hostile input to /v1/targets', () => {
  it('answers random JSON bodies with 2xx or a 4xx problem, never 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.jsonValue({ maxDepth: 5 }),
          fc.record(
            { url: fc.oneof(fc.string(), fc.webUrl(), fc.integer(), fc.constant(null)) },
            { requiredKeys: [] },
          ),
        ),
        async (body) => {
          await expectSane(
            await api()
              .post('/v1/targets')
              .set('content-type', 'application/json')
              .send(JSON.stringify(body)),
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses metadata, link-local, loopback-in-disguise and non-HTTP URLs with 400 naming url', async () => {
    for (const url of [
      'http://169.254.169.254/latest/meta-data/',
      'http://[fd00:ec2::254]/latest/meta-data/',
      'http://metadata.google.internal/computeMetadata/v1/',
      'http://169.254.0.1:9400/metrics',
      'http://[fe80::1]:9400/metrics',
      'http://0xA9FEA9FE/',
      'file:///etc/passwd',
      'gopher://127.0.0.1:5432/',
      'ftp://gpu-1/metrics',
      'javascript:alert(1)',
      'http://',
      'x'.repeat(5_000),
    ]) {
      const res = await api().post('/v1/targets').send({ url });
      expect(`${url.slice(0, 60)} -> ${res.status}`).toBe(`${url.slice(0, 60)} -> 400`);
      expect(JSON.stringify(res.body.errors ?? res.body)).toContain('url');
    }
  });

  it('answers broken bytes, odd content types and deep nesting with 4xx', async () => {
    const cases: [string, string | Buffer][] = [
      ['application/json', Buffer.from([0xff, 0xfe, 0x7b, 0x00])],
      ['application/json', '['.repeat(5_000) + ']'.repeat(5_000)],
      ['application/json', `{"url":"${'x'.repeat(2 * 1024 * 1024)}"}`],
      ['text/plain', 'http://gpu-1:9400/metrics'],
      ['application/x-www-form-urlencoded', 'url=http://gpu-1:9400/metrics'],
      ['application/json', ''],
    ];
    for (const [type, body] of cases) {
      const res = await api().post('/v1/targets').set('content-type', type).send(body);
      expect(res.status).toBeGreaterThanOrEqual(400);
      await expectSane(res);
    }
    await api().get('/healthz').expect(200);
  });

  it('treats injected SQL and odd ids as data', async () => {
    const injected = "http://gpu-1:9400/metrics?x=1');DROP TABLE collector_targets;--";
    const created = await api().post('/v1/targets').send({ url: injected });
    expect([201, 400]).toContain(created.status);
    await fc.assert(
      fc.asyncProperty(fc.string({ minLength: 1, maxLength: 60 }), async (id) => {
        const res = await api().delete(
          `/v1/targets/${[...Buffer.from(id)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')}`,
        );
        expect([204, 400, 404]).toContain(res.status);
      }),
      { numRuns: 100 },
    );
    const { rows } = await app.database.pool.query(
      "SELECT to_regclass('collector_targets') IS NOT NULL AS present",
    );
    expect(rows[0].present).toBe(true);
    const listed = await api().get('/v1/targets').expect(200);
    if (created.status === 201) {
      // Stored as the normalised URL, quote and all: data, not SQL.
      expect(created.body.url).toBe(new URL(injected).href);
      expect(listed.body.targets.map((t: { url: string }) => t.url)).toContain(created.body.url);
    }
  });
});
