import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { createLogger } from '@gpu-telemetry/service-kit';
import { Registry } from 'prom-client';
import { createCollectorMetrics } from '../collector.metrics';
import { buildMessages, metadataMessages, type OutgoingMessage } from './message-builder';
import { Publisher } from './publisher';

/**
 * The publisher against an HTTP stand-in for the queue whose answers the tests set: up, down
 * (503), or refusing any request that carries a message over `limit` bytes (413), as the queue does
 * for a payload over QUEUE_MAX_PAYLOAD.
 */
let server: Server;
let client: QueueClient;
let mode: 'up' | 'down' | 'down-held' | 'hang' | 'unauthorized' | 'not-found' | 'topic-limit' = 'up';
/** In 'down-held' mode, answers the request held with a 503 when the test says so. */
let answerHeld: (() => void) | undefined;
let limit = Infinity;
let stored: string[] = [];
let requests = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests++;
      const problem = (status: number, title: string) =>
        res
          .writeHead(status, { 'content-type': 'application/problem+json' })
          .end(JSON.stringify({ title, status }));
      if (mode === 'down') return void problem(503, 'Service Unavailable');
      if (mode === 'down-held') return void (answerHeld = () => problem(503, 'Service Unavailable'));
      if (mode === 'unauthorized') return void problem(401, 'Unauthorized');
      if (mode === 'not-found') return void problem(404, 'Not Found');
      // The queue's answer for a new topic past QUEUE_MAX_TOPICS: about the topic, not the messages.
      if (mode === 'topic-limit') return void problem(409, 'Conflict');
      if (mode === 'hang') return; // a queue that takes the request and never answers
      const body = Buffer.concat(chunks).toString();
      const { messages } = JSON.parse(body) as { messages: { id: string }[] };
      if (messages.some((m) => Buffer.byteLength(JSON.stringify(m)) > limit))
        return void problem(413, 'Too Large');
      stored.push(...messages.map((m) => m.id));
      res
        .writeHead(201, { 'content-type': 'application/json' })
        .end(JSON.stringify({ accepted: messages.length, duplicates: 0, ids: messages.map((m) => m.id) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  client = new QueueClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
});

afterAll(async () => {
  await client.close();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  mode = 'up';
  answerHeld = undefined;
  limit = Infinity;
  stored = [];
  requests = 0;
});

function publisher(
  retry = { minMs: 50, maxMs: 30_000 },
  maxBufferedSamples = 1_000_000,
  maxBufferedBytes = 128 * 1024 * 1024,
) {
  const registry = new Registry();
  const metrics = createCollectorMetrics(registry);
  const p = new Publisher({
    client,
    topic: 'telemetry',
    maxBufferedSamples,
    maxBufferedBytes,
    messagesPerPublish: 16,
    logger: createLogger('collector', 'silent'),
    metrics,
    retry,
  });
  const counted = async (metric: string, reason: string) =>
    (await registry.getSingleMetric(metric)?.get())?.values.find((v) => v.labels['reason'] === reason)
      ?.value ?? 0;
  const dropped = (reason: string) => counted('collector_samples_dropped_total', reason);
  const metadataDropped = (reason: string) => counted('collector_metadata_dropped_total', reason);
  const gauge = async (metric: string) => (await registry.getSingleMetric(metric)?.get())?.values[0]?.value;
  return { p, dropped, metadataDropped, gauge };
}

/** `count` one-sample messages, each `size` characters of label value. */
function messages(count: number, from = 0, size = 10): OutgoingMessage[] {
  return Array.from({ length: count }, (_, i) =>
    buildMessages(`host-${from + i}`, 1_700_000_000_000, [
      {
        gpuId: `GPU-${from + i}`,
        gpuIndex: 0,
        device: 'nvidia0',
        modelName: 'H100',
        hostname: `host-${from + i}`,
        metricName: 'DCGM_FI_DEV_GPU_UTIL',
        value: i,
        timestamp: '2023-11-14T22:13:20.000Z',
        container: null,
        pod: null,
        namespace: null,
        labels: { note: 'n'.repeat(size) },
      },
    ]),
  ).flat();
}

const until = async (check: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe('Publisher', () => {
  it('drops only the message the queue refuses, publishing the others of its batch', async () => {
    const { p, dropped } = publisher();
    limit = 2_000;
    const batch = [...messages(5, 0), ...messages(1, 5, 5_000), ...messages(5, 6)];
    p.start();
    p.enqueue(batch);
    await until(() => p.bufferedSamples === 0);
    expect(stored.sort()).toEqual(
      batch
        .filter((_, i) => i !== 5)
        .map((m) => m.id)
        .sort(),
    );
    expect(await dropped('rejected')).toBe(1);
    // And the batches after it go out whole again: one request for the next 16.
    const before = requests;
    p.enqueue(messages(16, 100));
    await until(() => p.bufferedSamples === 0);
    expect(requests - before).toBe(1);
    await p.stop(1_000);
  });

  it('keeps its samples while the queue refuses its credential, has no such endpoint or no room for the topic, and publishes them once it takes them', async () => {
    for (const refusal of ['unauthorized', 'not-found', 'topic-limit'] as const) {
      const { p, dropped } = publisher({ minMs: 20, maxMs: 40 });
      stored = [];
      mode = refusal;
      const batch = messages(20, 0);
      p.start();
      p.enqueue(batch);
      await until(() => requests >= 3);
      expect(p.bufferedSamples).toBe(20);
      mode = 'up';
      await until(() => p.bufferedSamples === 0);
      expect(stored.sort()).toEqual(batch.map((m) => m.id).sort());
      expect(await dropped('rejected')).toBe(0);
      await p.stop(1_000);
      requests = 0;
    }
  });

  it('counts metadata dropped with the buffer, and tells its sender so that it is sent again', async () => {
    const { p, dropped, metadataDropped } = publisher({ minMs: 20, maxMs: 40 }, 10);
    mode = 'down';
    p.start();
    let told = 0;
    const metadata = metadataMessages('http://node-1:9400/metrics', '1', [
      { metric: 'DCGM_FI_DEV_GPU_TEMP', type: 'gauge', help: 'GPU temperature (in C).', unit: '' },
      { metric: 'DCGM_FI_DEV_GPU_UTIL', type: 'gauge', help: 'GPU utilization (in %).', unit: '' },
    ]).map((m) => ({ ...m, onDropped: () => told++ }));
    p.enqueue([...metadata, ...messages(1, 0)]);
    p.enqueue(messages(10, 1)); // past the 10-sample buffer: the oldest go, metadata among them
    expect(await dropped('buffer_full')).toBe(1);
    expect(await metadataDropped('buffer_full')).toBe(2);
    expect(told).toBe(1);
    mode = 'up';
    await until(() => p.bufferedSamples === 0);
    await p.stop(1_000);
  });

  it('drops the oldest messages past maxBufferedBytes however few samples they carry, metadata included', async () => {
    const { p, dropped, metadataDropped, gauge } = publisher({ minMs: 20, maxMs: 40 }, 1_000_000, 50_000);
    mode = 'down';
    p.start();
    let told = 0;
    // A metadata message with a long help text: no samples, but bytes.
    const metadata = metadataMessages('http://node-1:9400/metrics', '1', [
      { metric: 'DCGM_FI_DEV_GPU_TEMP', type: 'gauge', help: 'h'.repeat(20_000), unit: '' },
    ]).map((m) => ({ ...m, onDropped: () => told++ }));
    const big = messages(4, 0, 10_000); // ~10 kB each, one sample each
    p.enqueue([...metadata, ...big]);
    expect(p.heldBytes).toBeLessThanOrEqual(50_000);
    expect(await gauge('collector_buffered_bytes')).toBe(p.heldBytes);
    // The metadata went first (the oldest not in flight), then samples as needed.
    expect(await metadataDropped('buffer_full')).toBe(1);
    expect(told).toBe(1);
    const samplesDropped = await dropped('buffer_full');
    expect(p.bufferedSamples).toBe(4 - samplesDropped);
    p.enqueue(messages(10, 10, 10_000));
    expect(p.heldBytes).toBeLessThanOrEqual(50_000);
    expect(await dropped('buffer_full')).toBe(14 - p.bufferedSamples);
    mode = 'up';
    await until(() => p.bufferedSamples === 0);
    expect(await gauge('collector_buffered_bytes')).toBe(0);
    await p.stop(1_000);
  });

  it('publishes what it holds when stopped during a long backoff, without waiting the backoff out', async () => {
    // Backoff from 10 s: the stop comes during the first wait.
    const { p, dropped } = publisher({ minMs: 10_000, maxMs: 30_000 });
    mode = 'down';
    p.start();
    const batch = messages(20);
    p.enqueue(batch);
    await until(() => requests >= 1);
    mode = 'up';
    const started = Date.now();
    await p.stop(5_000);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(stored.sort()).toEqual(batch.map((m) => m.id).sort());
    expect(await dropped('shutdown')).toBe(0);
  });

  it('retries at once, not after its long backoff, a publish that fails just after a stop begins', async () => {
    // The publish is in flight when the stop comes, and fails after: no backoff to cut short yet.
    const { p, dropped } = publisher({ minMs: 10_000, maxMs: 30_000 });
    mode = 'down-held';
    p.start();
    const batch = messages(20);
    p.enqueue(batch);
    await until(() => answerHeld !== undefined);
    const started = Date.now();
    const stopped = p.stop(5_000);
    mode = 'up';
    answerHeld?.();
    await stopped;
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(stored.sort()).toEqual(batch.map((m) => m.id).sort());
    expect(await dropped('shutdown')).toBe(0);
  });

  it('retries until the deadline when stopped while the queue is down, then counts the rest dropped', async () => {
    const { p, dropped } = publisher({ minMs: 50, maxMs: 30_000 });
    mode = 'down';
    p.start();
    p.enqueue(messages(3));
    await until(() => requests >= 1);
    const before = requests;
    const started = Date.now();
    await p.stop(1_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(requests - before).toBeGreaterThanOrEqual(3);
    expect(stored).toEqual([]);
    expect(await dropped('shutdown')).toBe(3);
  });

  it('counts as dropped what a publish still in flight at the deadline carried, and returns at the deadline', async () => {
    const { p, dropped } = publisher();
    mode = 'hang';
    p.start();
    p.enqueue(messages(3));
    await until(() => requests >= 1);
    const started = Date.now();
    await p.stop(500);
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(stored).toEqual([]);
    expect(await dropped('shutdown')).toBe(3);
    expect(p.bufferedSamples).toBe(0);
  });
});
