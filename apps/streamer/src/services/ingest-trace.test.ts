import { recordSpans } from '@gpu-telemetry/service-kit/testing-spans';
import { SpanKind } from '@opentelemetry/api';
import { startStreamerTestApp } from '../testing/streamer-test-app';
import { message, sample } from '../testing/samples';

let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;
let recording: ReturnType<typeof recordSpans>;

beforeAll(async () => {
  recording = recordSpans();
  streamer = await startStreamerTestApp();
});

afterAll(async () => {
  await streamer.close();
  await recording.stop();
});

const traceA = '0af7651916cd43dd8448eb211c80319c';
const traceB = '4bf92f3577b34da6a3ce929d0e0e4736';

describe("a batch's span", () => {
  it('links to the publish of each message that carries one, and ignores what is no trace context', async () => {
    const traced = (traceparent: unknown, gpuId: string) => ({
      ...message([sample({ gpuId })]),
      ...(traceparent === undefined ? {} : { traceparent }),
    });
    recording.reset();
    const result = await streamer.ingest.handle([
      traced(`00-${traceA}-b7ad6b7169203331-01`, 'GPU-traced-1'),
      traced(`00-${traceB}-00f067aa0ba902b7-00`, 'GPU-traced-2'),
      traced(undefined, 'GPU-traced-3'),
      traced('00-00000000000000000000000000000000-b7ad6b7169203331-01', 'GPU-traced-4'),
      traced(`01-${traceA}-b7ad6b7169203331-01`, 'GPU-traced-5'),
      traced(42, 'GPU-traced-6'),
    ] as Parameters<typeof streamer.ingest.handle>[0]);
    expect(result).toEqual({ failed: [] });
    const batch = recording.spans().find((s) => s.name === 'streamer.batch');
    expect(batch?.kind).toBe(SpanKind.CONSUMER);
    expect(batch?.attributes['messaging.batch.message_count']).toBe(6);
    expect(batch?.links.map((l) => [l.context.traceId, l.context.spanId, l.context.traceFlags])).toEqual([
      [traceA, 'b7ad6b7169203331', 1],
      [traceB, '00f067aa0ba902b7', 0],
    ]);
    // The batch is a trace of its own, not a child of any one publish.
    expect([traceA, traceB]).not.toContain(batch?.spanContext().traceId);
  });
});
