import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { waitFor } from '@gpu-telemetry/harness';
import { frameSamples, type ScrapedSample, telemetryFrame } from '@gpu-telemetry/model';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import type { CollectorApp } from '../app';
import type { CollectorDatabase } from '../collector.tables';
import { createTestCollector, fakeQueue } from '../testing/collector-test-app';

/**
 * Rounds of the real collector (real Postgres, the queue an HTTP stand-in recording what is
 * published) over one exporter per test: what is published, counted and shown as target status.
 */
const servers: Server[] = [];
let database: TestDatabase<CollectorDatabase>;
let queue: QueueClient;
const published: ScrapedSample[] = [];

async function serve(handler: RequestListener): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** An exporter answering `body` as the Prometheus text format. */
const exporter = (body: Buffer | string) =>
  serve((_req, res) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(body)).then(
    (base) => `${base}/metrics`,
  );

beforeAll(async () => {
  const queueUrl = await serve(
    fakeQueue((payload) => {
      if (payload['rows']) published.push(...frameSamples(telemetryFrame.parse(payload)));
    }),
  );
  database = await createTestDatabase<CollectorDatabase>();
  queue = new QueueClient({ url: queueUrl });
});

afterAll(async () => {
  await queue.close();
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  await database.drop();
});

const running: CollectorApp[] = [];
afterEach(async () => {
  for (const collector of running.splice(0)) await collector.stop(1_000);
  published.length = 0;
});

function collect(env: Record<string, string>): CollectorApp {
  const collector = createTestCollector(database, queue, { COLLECT_TIMEOUT: '2s', ...env });
  collector.publisher.start();
  running.push(collector);
  return collector;
}

/** The value of the series of metric `name` with `labels` among its labels, 0 when absent. */
async function metric(
  collector: CollectorApp,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await collector.metrics.registry.metrics();
  const line = text
    .split('\n')
    .find(
      (l) =>
        (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) &&
        Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)),
    );
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe('a scrape round', () => {
  it('leaves out samples whose own time the store would refuse, and counts them as unstorable', async () => {
    const now = Date.now();
    const url = await exporter(
      [
        `DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1"} 1 ${now + 365 * 86_400_000}`,
        `DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-2"} 2 0`,
        `DCGM_FI_DEV_GPU_UTIL{gpu="2",UUID="GPU-3"} 3 ${now - 30 * 86_400_000}`,
        `DCGM_FI_DEV_GPU_UTIL{gpu="3",UUID="GPU-4"} 4 ${now - 60_000}`,
        `DCGM_FI_DEV_GPU_UTIL{gpu="4",UUID="GPU-5"} 5`,
      ].join('\n') + '\n',
    );
    const collector = collect({ COLLECT_TARGETS: url, TELEMETRY_RETENTION: '7d' });
    await collector.scrapeLoop.runRound();
    await waitFor('the storable samples published', () => published.length === 2);
    expect(published.map((s) => [s.gpuId, s.value]).sort()).toEqual([
      ['GPU-4', 4],
      ['GPU-5', 5],
    ]);
    expect(published.find((s) => s.gpuId === 'GPU-4')?.timestamp).toBe(new Date(now - 60_000).toISOString());
    expect(await metric(collector, 'collector_samples_dropped_total', { reason: 'unstorable' })).toBe(3);
    expect(await metric(collector, 'collector_samples_scraped_total')).toBe(2);
  });

  it('fails a scrape whose body is not UTF-8 as a parse error, publishing none of it', async () => {
    const url = await exporter(
      Buffer.concat([
        Buffer.from('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1",x="a'),
        Buffer.from([0xff]),
        Buffer.from('"} 1\nDCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1",x="a'),
        Buffer.from([0xfe]),
        Buffer.from('"} 2\n'),
      ]),
    );
    const collector = collect({ COLLECT_TARGETS: url });
    await collector.scrapeLoop.runRound();
    expect(await metric(collector, 'collector_scrapes_total', { outcome: 'parse_error' })).toBe(1);
    expect(await metric(collector, 'collector_samples_scraped_total')).toBe(0);
    const listed = await request(asService(collector.app)).get('/v1/targets').expect(200);
    const target = (listed.body.targets as { url: string; up: boolean; lastError: string | null }[]).find(
      (t) => t.url === url,
    );
    expect(target).toMatchObject({
      up: false,
      lastError: expect.stringMatching(/^parse_error: .*not valid UTF-8/),
    });
    expect(published).toEqual([]);
  });
});

describe('target status', () => {
  const statusRows = () => database.db.selectFrom('collector_target_status').select('url').execute();

  it('keeps rows only for the addresses a DNS name has now', async () => {
    let n = 0;
    const collector = createTestCollector(
      database,
      queue,
      { COLLECT_DNS: 'http://dcgm.example:1/metrics', COLLECT_TIMEOUT: '200ms' },
      async () => [`127.0.0.${++n}`],
    );
    running.push(collector);
    for (let round = 0; round < 5; round++) await collector.scrapeLoop.runRound();
    expect((await statusRows()).map((r) => r.url)).toEqual(['http://127.0.0.5:1/metrics']);
    // Listing resolves the name again: one address, as in the table.
    const listed = await request(asService(collector.app)).get('/v1/targets').expect(200);
    expect(listed.body.targets).toHaveLength(1);
  });

  it('writes no status for a target deleted while it was scraped, and a target added again starts afresh', async () => {
    let release: (() => void) | undefined;
    const url = `${await serve((_req, res) => {
      release = () => res.writeHead(200).end('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1"} 5\n');
    })}/metrics`;
    const collector = collect({});
    const api = () => request(asService(collector.app));
    const created = await api().post('/v1/targets').send({ url }).expect(201);
    const round = collector.scrapeLoop.runRound();
    await waitFor('the scrape to start', () => release !== undefined);
    await api().delete(`/v1/targets/${created.body.id}`).expect(204);
    release?.();
    await round;
    expect((await statusRows()).filter((r) => r.url === url)).toEqual([]);
    const again = await api().post('/v1/targets').send({ url }).expect(201);
    const listed = await api().get('/v1/targets').expect(200);
    expect(listed.body.targets.find((t: { id: string }) => t.id === again.body.id)).toMatchObject({
      url,
      lastScrapeAt: null,
      lastError: null,
    });
  });
});
