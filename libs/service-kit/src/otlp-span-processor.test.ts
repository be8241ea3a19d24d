import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { TraceFlags } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  type ReadableSpan,
  type Sampler,
} from '@opentelemetry/sdk-trace-base';
import { OtlpSpanProcessor, type OtlpSpanProcessorOptions } from './otlp-span-processor';
import { spanExportStats } from './span-export-stats';

let server: Server;
let url: string;
let received: Buffer[] = [];
let answerStatus = 200;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      received.push(req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body);
      res.writeHead(answerStatus, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/traces`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

beforeEach(() => {
  received = [];
  answerStatus = 200;
});

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A tracer whose spans go through an OtlpSpanProcessor, and every span it has ended. */
function setup(options: OtlpSpanProcessorOptions & { compression?: 'gzip'; sampler?: Sampler } = {}) {
  const processor = new OtlpSpanProcessor({ url, compression: options.compression as never }, options);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'processor-test', 'host.name': 'node-7' }),
    spanProcessors: [processor],
    ...(options.sampler ? { sampler: options.sampler } : {}),
  });
  const tracer = provider.getTracer('processor', '1.2.3');
  const ended: ReadableSpan[] = [];
  let n = 0;
  const endSpans = (count: number): void => {
    for (let i = 0; i < count; i++, n++) {
      const span = tracer.startSpan(`GET /api/v1/gpus/${n}`, {
        attributes: {
          'http.response.status_code': 200 + (n % 3),
          'gateway.route': 'gpus',
          retried: n % 2 === 0,
        },
      });
      if (n % 5 === 0) span.addEvent('retry', { attempt: 1 });
      span.end();
      ended.push(span as unknown as ReadableSpan);
    }
  };
  return { processor, provider, endSpans, ended };
}

const encoded = (...slices: ReadableSpan[][]) =>
  Buffer.concat(slices.map((slice) => ProtobufTraceSerializer.serializeRequest(slice) as Uint8Array));

describe('OtlpSpanProcessor', () => {
  it('encodes spans a turn after they end, never inside span.end(), and POSTs a batch as the merge of its slices', async () => {
    const { processor, endSpans, ended } = setup({ maxExportBatchSize: 40, minSlice: 16 });
    const serialize = jest.spyOn(ProtobufTraceSerializer, 'serializeRequest');
    const before = { ...spanExportStats };
    try {
      endSpans(16);
      expect(serialize).not.toHaveBeenCalled();
      await nextTurn();
      expect(serialize).toHaveBeenCalledTimes(1);
      endSpans(16);
      await nextTurn();
      endSpans(8); // 40: a batch's worth, but fewer than a slice; they wait for the flush
      await nextTurn();
      expect(serialize).toHaveBeenCalledTimes(2);
      await processor.forceFlush();
    } finally {
      serialize.mockRestore();
      await processor.shutdown();
    }
    expect(received).toHaveLength(1);
    expect(received[0]?.equals(encoded(ended.slice(0, 16), ended.slice(16, 32), ended.slice(32)))).toBe(true);
    expect(spanExportStats).toEqual({ ...before, exported: before.exported + 40 });
  });

  it('sends on its own once a batch is encoded, and keeps up when many spans end in one turn', async () => {
    const { processor, endSpans, ended } = setup({ maxExportBatchSize: 100, maxQueueSize: 1_000 });
    try {
      endSpans(250); // all in one turn, as under load: slices of up to a batch, two batches sent
      for (let i = 0; i < 5 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      expect(received).toHaveLength(2);
      expect(received[0]?.equals(encoded(ended.slice(0, 100)))).toBe(true);
      expect(received[1]?.equals(encoded(ended.slice(100, 200)))).toBe(true);
      await processor.forceFlush();
      expect(received[2]?.equals(encoded(ended.slice(200)))).toBe(true);
    } finally {
      await processor.shutdown();
    }
  });

  it('drops and counts spans beyond its queue bound, and sends the rest', async () => {
    const { processor, endSpans, ended } = setup({ maxExportBatchSize: 50, maxQueueSize: 50 });
    const before = { ...spanExportStats };
    try {
      endSpans(60);
      await processor.forceFlush();
    } finally {
      await processor.shutdown();
    }
    expect(Buffer.concat(received).equals(encoded(ended.slice(0, 50)))).toBe(true);
    expect(spanExportStats).toEqual({
      ...before,
      exported: before.exported + 50,
      dropped: before.dropped + 10,
    });
  });

  it('takes the default batch size when OTEL_BSP_MAX_EXPORT_BATCH_SIZE is 0, instead of spinning on batches of none', async () => {
    process.env['OTEL_BSP_MAX_EXPORT_BATCH_SIZE'] = '0';
    let made: ReturnType<typeof setup>;
    try {
      made = setup();
    } finally {
      delete process.env['OTEL_BSP_MAX_EXPORT_BATCH_SIZE'];
    }
    const { processor, endSpans, ended } = made;
    try {
      endSpans(3);
      await processor.forceFlush();
      expect(Buffer.concat(received).equals(encoded(ended))).toBe(true);
    } finally {
      await processor.shutdown();
    }
  });

  it('waits for resource attributes still being detected before encoding', async () => {
    let settle: (hostId: string) => void = () => undefined;
    const hostId = new Promise<string>((resolve) => (settle = resolve));
    const processor = new OtlpSpanProcessor({ url }, { minSlice: 1 });
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'processor-test', 'host.id': hostId }),
      spanProcessors: [processor],
    });
    const span = provider.getTracer('t').startSpan('early');
    span.end();
    await nextTurn();
    await nextTurn();
    expect(received).toHaveLength(0);
    settle('host-0123');
    await processor.forceFlush();
    await processor.shutdown();
    expect(received).toHaveLength(1);
    expect(received[0]?.toString('latin1')).toContain('host-0123');
    expect(received[0]?.equals(encoded([span as unknown as ReadableSpan]))).toBe(true);
  });

  it('exports only sampled spans', async () => {
    const { processor, provider } = setup({ sampler: new AlwaysOffSampler() });
    const span = provider.getTracer('t').startSpan('not sampled');
    expect(span.spanContext().traceFlags & TraceFlags.SAMPLED).toBe(0);
    span.end();
    await processor.forceFlush();
    await processor.shutdown();
    expect(received).toHaveLength(0);
  });

  it('counts the spans of a refused export as failed', async () => {
    answerStatus = 400;
    const { processor, endSpans } = setup();
    const before = { ...spanExportStats };
    endSpans(3);
    await processor.forceFlush();
    await processor.shutdown();
    expect(received).toHaveLength(1);
    expect(spanExportStats).toEqual({ ...before, failed: before.failed + 3 });
  });

  it('sends gzip when asked, like the SDK exporter', async () => {
    const { processor, endSpans, ended } = setup({ compression: 'gzip', minSlice: 8 });
    endSpans(8);
    await nextTurn();
    endSpans(4);
    await processor.forceFlush();
    await processor.shutdown();
    expect(received[0]?.equals(encoded(ended.slice(0, 8), ended.slice(8)))).toBe(true);
  });

  it('sends what has waited for the scheduled delay without being asked', async () => {
    const { processor, endSpans, ended } = setup({ scheduledDelayMillis: 50 });
    try {
      endSpans(2);
      for (let i = 0; i < 20 && received.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
      expect(received[0]?.equals(encoded(ended))).toBe(true);
    } finally {
      await processor.shutdown();
    }
  });
});
