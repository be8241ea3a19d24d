import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DcgmSimulator, SIMULATED_METRICS } from '@gpu-telemetry/dcgm-simulator';
import { frameSamples, telemetryFrame } from '@gpu-telemetry/model';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { waitFor } from '@gpu-telemetry/harness';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { trace } from '@opentelemetry/api';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { serviceAuthorization } from '@gpu-telemetry/service-kit';
import { TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import { Agent, request } from 'undici';
import type { CollectorApp } from '../app';
import { createTestCollector, fakeQueue } from '../testing/collector-test-app';
import type { CollectorDatabase } from '../collector.tables';

/**
 * One round of the real collector (real Postgres, the queue an HTTP stand-in that records what is
 * published) over honest dcgm-exporters and hostile targets scraped at the same time. The service
 * keeps answering, honest samples keep flowing, memory stays bounded, and every hostile target is
 * failed with its reason.
 */
const servers: Server[] = [];
let database: TestDatabase<CollectorDatabase>;
let queue: QueueClient;
let collector: CollectorApp;
let collectorUrl: string;
const published: { source: string; samples: number; metadata: number; at: number }[] = [];
/** Resolves when each endless target's connection is closed, with the bytes it had sent. */
const closed: Record<string, Promise<number>> = {};
const spans = new InMemorySpanExporter();

async function serve(handler: RequestListener): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Writes `chunk` for as long as the client reads; records when the connection closes. */
async function endless(name: string, chunk: string): Promise<string> {
  let sent = 0;
  let gone: (sent: number) => void = () => undefined;
  closed[name] = new Promise((resolve) => (gone = resolve));
  const base = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.on('close', () => gone(sent));
    const write = () => {
      while (!res.destroyed && res.write(chunk)) sent += chunk.length;
      if (!res.destroyed) res.once('drain', write);
    };
    write();
  });
  return `${base}/${name}`;
}

const repeatTo = (line: string, size: number) => line.repeat(Math.ceil(size / line.length));

const simulator = new DcgmSimulator({ hosts: 2, gpusPerHost: 8 });
const targets: Record<string, string> = {};

beforeAll(async () => {
  trace.setGlobalTracerProvider(
    new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }),
  );
  const sim = await serve(simulator.handle);
  targets['honest-1'] = `${sim}/hosts/1/metrics`;
  targets['honest-2'] = `${sim}/hosts/2/metrics`;
  // 50 values of 60,000 digits, each quadratic for the regex the parser had.
  const digits = `DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-d1"} ${'1'.repeat(60_000)}\n`.repeat(50);
  targets['digits'] = `${await serve((_req, res) => res.writeHead(200).end(digits))}/metrics`;
  // Endless comments: past any sample limit, only the body limit stops them.
  targets['huge'] = await endless(
    'huge',
    repeatTo('# padding the body out to hundreds of megabytes\n', 64 * 1024),
  );
  // Endless GPU samples, past the sample limit.
  targets['samples'] = await endless(
    'samples',
    repeatTo('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-s1",modelName="NVIDIA H100"} 42\n', 64 * 1024),
  );
  // An endless line.
  targets['line'] = await endless('line', 'x'.repeat(64 * 1024));
  const labels = Array.from({ length: 3_000 }, (_, i) => `label_${i}="value"`).join(',');
  targets['labels'] =
    `${await serve((_req, res) => res.writeHead(200).end(`DCGM_FI_DEV_GPU_UTIL{UUID="GPU-l1",${labels}} 1\n`))}/metrics`;
  // A byte every 100 ms: costs no CPU, only its own slot until the timeout.
  targets['trickle'] = `${await serve((_req, res) => {
    res.writeHead(200);
    const timer = setInterval(() => res.write('#'), 100);
    res.on('close', () => clearInterval(timer));
  })}/metrics`;

  const queueUrl = await serve(
    fakeQueue((payload) =>
      published.push({
        source: String(payload['source']),
        samples: payload['rows'] ? frameSamples(telemetryFrame.parse(payload)).length : 0,
        metadata: (payload['metadata'] as unknown[] | undefined)?.length ?? 0,
        at: performance.now(),
      }),
    ),
  );
  database = await createTestDatabase<CollectorDatabase>();
  queue = new QueueClient({ url: queueUrl });
  collector = createTestCollector(database, queue, {
    COLLECT_TARGETS: Object.values(targets).join(','),
    COLLECT_TIMEOUT: '3s',
  });
  collector.publisher.start();
  collectorUrl = await serve(collector.app);
});

afterAll(async () => {
  await collector.stop(1_000);
  await queue.close();
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  await database.drop();
  trace.disable();
});

/**
 * Polls GET /healthz every 20 ms until `done` settles. For each answer: its latency, and the CPU
 * time the process spent while waiting for it. On a shared machine the latency also counts time
 * this process was not running at all; the CPU time is what the event loop did in the meantime, so
 * it measures how long collector work held the loop, whatever the neighbours do.
 */
async function pollHealth(done: Promise<unknown>) {
  const agent = new Agent({ connections: 1 });
  const latencies: number[] = [];
  const cpu: number[] = [];
  let heapPeak = 0;
  let finished = false;
  void done.finally(() => (finished = true));
  while (!finished) {
    const started = performance.now();
    const cpuStarted = process.cpuUsage();
    const res = await request(`${collectorUrl}/healthz`, { dispatcher: agent });
    await res.body.text();
    expect(res.statusCode).toBe(200);
    latencies.push(performance.now() - started);
    const used = process.cpuUsage(cpuStarted);
    cpu.push((used.user + used.system) / 1000);
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await agent.close();
  const sorted = (list: number[]) => [...list].sort((a, b) => a - b);
  return { latencies: sorted(latencies), cpu: sorted(cpu), heapPeak };
}

describe('a round over honest and hostile targets at once', () => {
  it('keeps answering, keeps publishing honest samples, bounds memory, and fails each hostile target with its reason', async () => {
    const heapBefore = process.memoryUsage().heapUsed;
    const started = performance.now();
    const round = collector.scrapeLoop.runRound();
    const health = await pollHealth(round);
    await round;
    const roundEnded = performance.now();

    // The service answered all along: a health check per ~100 ms of the round at least, none held
    // up by collector work for long (what was measured: docs/performance.md). The bounds sit far
    // below what an unbounded target costs (one value of the digits target held the loop 1.4 s
    // with the parser's old regex, fifty of them in a row) and far above this machine's noise.
    expect(roundEnded - started).toBeGreaterThan(2_900); // the trickling target held its slot to the timeout
    expect(health.latencies.length).toBeGreaterThan((roundEnded - started) / 100);
    // Process CPU counts every thread: a few waits may also hold garbage collection of the refused
    // 32 MB body (as it is read, and once dropped), which runs beside the loop on helper threads,
    // more so on a loaded machine (up to 520 ms of it seen once, and a fourth wait at 155 ms, CI on
    // two busy cores). An unbounded target would hold the loop 1.4 s a value, value after value.
    expect(health.cpu.at(-4)).toBeLessThan(300);
    expect(health.cpu.at(-1)).toBeLessThan(1_000);
    expect(health.latencies.at(-1)).toBeLessThan(1_000);
    expect(health.latencies[Math.floor(health.latencies.length * 0.9)]).toBeLessThan(100);
    // The huge body (32 MB read, then refused) and the samples held until the limit did not pile
    // up (what was measured: docs/performance.md).
    expect(health.heapPeak - heapBefore).toBeLessThan(64 * 1024 * 1024);

    const { body } = await requestJson(`${collectorUrl}/v1/targets`);
    const byUrl = new Map(
      (
        body as { targets: { url: string; up: boolean; lastError: string | null; lastSamples: number }[] }
      ).targets.map((t) => [t.url, t]),
    );
    const status = (name: string) => byUrl.get(new URL(targets[name] as string).href);
    for (const name of ['honest-1', 'honest-2'])
      expect(status(name)).toMatchObject({ up: true, lastError: null, lastSamples: 8 * SIMULATED_METRICS });
    expect(
      Object.fromEntries(
        ['digits', 'huge', 'samples', 'line', 'labels', 'trickle'].map((name) => [
          name,
          status(name)?.lastError,
        ]),
      ),
    ).toEqual({
      digits: expect.stringMatching(/^parse_error: .*value "1{40}" is out of range$/),
      huge: 'too_large: body larger than 33554432 bytes',
      samples: 'sample_limit: more than 20000 samples',
      line: 'line_too_long: line 1 is longer than 65536 characters',
      labels: 'label_limit: a sample has more than 128 labels (line 1)',
      trickle: 'timeout: timed out',
    });

    // Connections to targets that broke a limit were closed at once, not read to the end.
    for (const name of ['huge', 'samples', 'line']) {
      const sent = await closed[name];
      expect(sent).toBeLessThan(64 * 1024 * 1024);
    }

    // Honest samples reached the queue while the hostile scrapes were still running; hostile ones never.
    await waitFor(
      'the honest samples published',
      () => published.reduce((sum, m) => sum + m.samples, 0) >= 2 * 8 * SIMULATED_METRICS,
      { timeoutMs: 5_000, intervalMs: 20 },
    );
    const honest = new Set(
      [targets['honest-1'], targets['honest-2']].map((url) => new URL(url as string).href),
    );
    expect(published.every((m) => honest.has(m.source))).toBe(true);
    expect(published.reduce((sum, m) => sum + m.samples, 0)).toBe(2 * 8 * SIMULATED_METRICS);
    // And what the honest exporters said of their metrics, once each.
    expect(published.reduce((sum, m) => sum + m.metadata, 0)).toBe(2 * SIMULATED_METRICS);
    expect(Math.max(...published.map((m) => m.at))).toBeLessThan(roundEnded - 1_000);

    // Each scrape's span says how it ended.
    const scrapeSpans = spans.getFinishedSpans().filter((span) => span.name === 'collector.scrape');
    expect(
      Object.fromEntries(
        scrapeSpans.map((span) => [span.attributes['url.full'], span.attributes['collector.scrape.outcome']]),
      ),
    ).toEqual(
      Object.fromEntries(
        Object.entries({
          'honest-1': 'success',
          'honest-2': 'success',
          digits: 'parse_error',
          huge: 'too_large',
          samples: 'sample_limit',
          line: 'line_too_long',
          labels: 'label_limit',
          trickle: 'timeout',
        }).map(([name, outcome]) => [new URL(targets[name] as string).href, outcome]),
      ),
    );

    const metrics = await (await request(`${collectorUrl}/metrics`)).body.text();
    for (const [outcome, count] of Object.entries({
      success: 2,
      parse_error: 1,
      too_large: 1,
      sample_limit: 1,
      line_too_long: 1,
      label_limit: 1,
      timeout: 1,
    }))
      expect(metrics).toContain(
        `collector_scrapes_total{outcome="${outcome}",service="collector"} ${count}\n`,
      );
  });
});

async function requestJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await request(url, { headers: { authorization: serviceAuthorization(TEST_SERVICE_TOKEN) } });
  return { status: res.statusCode, body: await res.body.json() };
}
