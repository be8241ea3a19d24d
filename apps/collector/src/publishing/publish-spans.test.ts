import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { createLogger } from '@gpu-telemetry/service-kit';
import { recordSpans } from '@gpu-telemetry/service-kit/testing-spans';
import { Registry } from 'prom-client';
import { createCollectorMetrics } from '../collector.metrics';
import { buildMessages } from './message-builder';
import { Publisher } from './publisher';

/** Each publish to the queue is a producer span, an error when the queue does not take it. */
let server: Server;
let client: QueueClient;
let up = true;
let recording: ReturnType<typeof recordSpans>;

beforeAll(async () => {
  recording = recordSpans();
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (!up)
        return void res
          .writeHead(503, { 'content-type': 'application/problem+json' })
          .end('{"title":"Service Unavailable","status":503}');
      res
        .writeHead(201, { 'content-type': 'application/json' })
        .end('{"accepted":1,"duplicates":0,"ids":[]}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  client = new QueueClient({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
});

afterAll(async () => {
  await client.close();
  await new Promise((resolve) => server.close(resolve));
  await recording.stop();
});

const message = () =>
  buildMessages('host-1', 1_700_000_000_000, [
    {
      gpuId: 'GPU-1',
      gpuIndex: 0,
      device: 'nvidia0',
      modelName: 'H100',
      hostname: 'host-1',
      metricName: 'DCGM_FI_DEV_GPU_UTIL',
      value: 1,
      timestamp: '2023-11-14T22:13:20.000Z',
      container: null,
      pod: null,
      namespace: null,
      labels: {},
    },
  ]);

const publishSpans = async (count: number) => {
  const end = Date.now() + 5_000;
  for (;;) {
    const spans = recording.spans().filter((s) => s.name === 'collector.publish');
    if (spans.length >= count || Date.now() > end) return spans;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe('publishing to the queue', () => {
  it('is a producer span naming the topic and batch, an error while the queue refuses it', async () => {
    const publisher = new Publisher({
      client,
      topic: 'telemetry',
      maxBufferedSamples: 1_000,
      maxBufferedBytes: 1024 * 1024,
      messagesPerPublish: 16,
      logger: createLogger('collector', 'silent'),
      metrics: createCollectorMetrics(new Registry()),
      retry: { minMs: 20, maxMs: 20 },
    });
    up = false;
    publisher.start();
    publisher.enqueue(message());
    const [failed] = await publishSpans(1);
    expect(failed?.kind).toBe(SpanKind.PRODUCER);
    expect(failed?.status.code).toBe(SpanStatusCode.ERROR);
    up = true;
    await publisher.stop(5_000);
    const spans = await publishSpans(2);
    const stored = spans.at(-1);
    expect(stored?.status.code).not.toBe(SpanStatusCode.ERROR);
    expect(stored?.attributes).toMatchObject({
      'messaging.destination.name': 'telemetry',
      'messaging.batch.message_count': 1,
      'collector.samples': 1,
    });
  });
});
