import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { SlicedOtlpTraceExporter } from './sliced-span-exporter';
import { spanExportStats } from './span-export-stats';

interface Received {
  contentType: string | undefined;
  body: Buffer;
}

let server: Server;
let url: string;
let received: Received[] = [];
let answerStatus = 200;

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      received.push({ contentType: req.headers['content-type'], body: Buffer.concat(chunks) });
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

/** `count` finished spans from a real SDK tracer, with varied attributes, events and status. */
function finishedSpans(count: number): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'sliced-test', 'host.name': 'node-7' }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('sliced', '1.2.3');
  for (let i = 0; i < count; i++) {
    const span = tracer.startSpan(`GET /api/v1/gpus/${i}`, {
      attributes: {
        'http.response.status_code': 200 + (i % 3),
        'gateway.route': 'gpus',
        retried: i % 2 === 0,
      },
    });
    if (i % 5 === 0) span.addEvent('retry', { attempt: 1 });
    span.end();
  }
  return memory.getFinishedSpans();
}

function exportWith(exporter: SlicedOtlpTraceExporter, spans: ReadableSpan[]): Promise<ExportResult> {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

describe('SlicedOtlpTraceExporter', () => {
  it('POSTs a batch once, as the merge of its slices encoded by the stock OTLP serializer, and counts it', async () => {
    const spans = finishedSpans(40);
    const exporter = new SlicedOtlpTraceExporter({ url }, 16);
    const before = { ...spanExportStats };
    const result = await exportWith(exporter, spans);
    await exporter.shutdown();
    expect(spanExportStats).toEqual({ exported: before.exported + 40, failed: before.failed });
    expect(result.code).toBe(ExportResultCode.SUCCESS);
    expect(received).toHaveLength(1);
    expect(received[0]?.contentType).toBe('application/x-protobuf');
    const slices = [spans.slice(0, 16), spans.slice(16, 32), spans.slice(32)].map(
      (slice) => ProtobufTraceSerializer.serializeRequest(slice) as Uint8Array,
    );
    expect(received[0]?.body.equals(Buffer.concat(slices))).toBe(true);
  });

  it('encodes nothing inside export(), and lets the event loop turn between slices', async () => {
    const spans = finishedSpans(64);
    const exporter = new SlicedOtlpTraceExporter({ url }, 16);
    const serialize = jest.spyOn(ProtobufTraceSerializer, 'serializeRequest');
    let turns = 0;
    let exporting = true;
    const countTurns = (): void => {
      turns++;
      if (exporting) setImmediate(countTurns);
    };
    try {
      const done = exportWith(exporter, spans);
      expect(serialize).not.toHaveBeenCalled();
      setImmediate(countTurns);
      const result = await done;
      exporting = false;
      expect(result.code).toBe(ExportResultCode.SUCCESS);
      expect(serialize).toHaveBeenCalledTimes(4);
      expect(turns).toBeGreaterThanOrEqual(4);
    } finally {
      serialize.mockRestore();
      await exporter.shutdown();
    }
  });

  it('reports a refused export as failed, and counts its spans as failed', async () => {
    answerStatus = 400;
    const exporter = new SlicedOtlpTraceExporter({ url }, 16);
    const before = { ...spanExportStats };
    const result = await exportWith(exporter, finishedSpans(3));
    await exporter.shutdown();
    expect(result.code).toBe(ExportResultCode.FAILED);
    expect(spanExportStats).toEqual({ exported: before.exported, failed: before.failed + 3 });
    expect(received).toHaveLength(1);
  });

  it('sends gzip when asked, like the stock exporter', async () => {
    const spans = finishedSpans(20);
    const exporter = new SlicedOtlpTraceExporter({ url, compression: 'gzip' as never }, 8);
    const result = await exportWith(exporter, spans);
    await exporter.shutdown();
    expect(result.code).toBe(ExportResultCode.SUCCESS);
    const expected = Buffer.concat(
      [spans.slice(0, 8), spans.slice(8, 16), spans.slice(16)].map(
        (slice) => ProtobufTraceSerializer.serializeRequest(slice) as Uint8Array,
      ),
    );
    expect(gunzipSync(received[0]?.body as Buffer).equals(expected)).toBe(true);
  });
});
