import { SpanStatusCode } from '@opentelemetry/api';
import { linesLogger } from '@gpu-telemetry/service-kit/testing';
import { recordSpans } from '@gpu-telemetry/service-kit/testing-spans';
import { Pool } from 'pg';
import request from 'supertest';
import { startStreamerTestApp } from '../testing/streamer-test-app';
import { TelemetryMaintainer } from './telemetry-maintainer';

/**
 * Retention and compaction run in the background: a round that fails is traced, logged and
 * counted, so that an operator can alert on retention that stopped before the disk fills.
 */
type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
let streamer: TestApp;
let recording: ReturnType<typeof recordSpans>;

beforeAll(async () => {
  recording = recordSpans();
  streamer = await startStreamerTestApp();
});

afterAll(async () => {
  await streamer.close();
  await recording.stop();
});

const failures = async (task: string) => {
  const text = (await request(streamer.app).get('/metrics').expect(200)).text;
  const line = new RegExp(`^streamer_maintenance_failures_total\\{task="${task}"[^}]*\\} (\\d+)$`, 'm');
  return Number(line.exec(text)?.[1]);
};

describe('a maintenance round that fails', () => {
  it('is counted by task in /metrics, logged with the error, and its span is an error', async () => {
    expect(await failures('maintenance')).toBe(0);
    expect(await failures('compaction')).toBe(0);
    // A pool that can no longer reach Postgres: every query of the round fails.
    const gone = new Pool({ connectionString: streamer.database.url });
    await gone.end();
    const lines: Record<string, unknown>[] = [];
    const maintainer = new TelemetryMaintainer({
      pool: gone,
      logger: linesLogger('streamer', 'warn', lines),
      metrics: streamer.streamerMetrics,
      compactor: streamer.compactor,
      retentionMs: 86_400_000,
      chunkMs: 3_600_000,
      intervalMs: 3_600_000,
      compactEveryMs: 60_000,
    });
    recording.reset();
    await maintainer.runLogged();
    expect(await failures('maintenance')).toBe(1);
    expect(await failures('compaction')).toBe(1);
    expect(lines.map((line) => [line['task'], line['msg']])).toEqual([
      ['maintenance', 'telemetry maintenance failed; will retry'],
      ['compaction', 'telemetry compaction failed; will retry'],
    ]);
    for (const line of lines) expect(line['err']).toMatchObject({ message: expect.any(String) });
    const spans = recording.spans().filter((span) => span.name.startsWith('streamer.'));
    expect(spans.map((span) => [span.name, span.status.code])).toEqual([
      ['streamer.maintenance', SpanStatusCode.ERROR],
      ['streamer.compaction', SpanStatusCode.ERROR],
    ]);
    // The round's log lines belong to its trace.
    expect(lines[0]?.['traceId']).toBe(spans[0]?.spanContext().traceId);
  });

  it('does not count a round that succeeds', async () => {
    await streamer.maintainer.runLogged();
    expect(await failures('maintenance')).toBe(1);
    expect(await failures('compaction')).toBe(1);
  });
});
