import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { createLogger } from '@gpu-telemetry/service-kit';
import { Registry } from 'prom-client';
import { createGatewayMetrics } from '../proxy/gateway.metrics';
import { RequestRecorder } from './request-recorder';
import type { RequestRecord } from './requests.queries';
import type { GatewayDatabase } from '../gateway.tables';

let database: TestDatabase<GatewayDatabase>;

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
});

afterAll(async () => {
  await database.drop();
});

function recorder(maxBuffered: number) {
  const registry = new Registry();
  const metrics = createGatewayMetrics(registry);
  const instance = new RequestRecorder({
    pool: database.pool,
    logger: createLogger('gateway-test', 'silent'),
    maxBuffered,
    flushIntervalMs: 60_000,
    dropped: metrics.recordsDropped,
    buffered: metrics.recordsBuffered,
    written: metrics.recordsWritten,
  });
  const value = async (name: string) => (await registry.getSingleMetric(name)?.get())?.values[0]?.value ?? 0;
  return { instance, value };
}

const record = (i: number): RequestRecord => ({
  at: new Date(Date.UTC(2031, 0, 1, 0, 0, 0, i)).toISOString(),
  route: 'gpus',
  method: 'GET',
  path: `/api/v1/gpus/${i}`,
  status: 200,
  latencyMs: i / 10,
  bytesIn: 0,
  bytesOut: 100 + i,
  keyId: null,
  requestId: `recorder-${i}`,
  traceId: null,
  upstream: null,
});

const stored = async () =>
  (
    await database.pool.query<{ request_id: string }>(
      "SELECT request_id FROM gateway_requests WHERE request_id LIKE 'recorder-%' ORDER BY id",
    )
  ).rows.map((r) => r.request_id);

describe('RequestRecorder', () => {
  it('keeps the records while Postgres refuses them, counts what does not fit, and writes the rest once it can', async () => {
    const { instance, value } = recorder(600);
    await database.pool.query('ALTER TABLE gateway_requests RENAME TO gateway_requests_away');
    try {
      for (let i = 0; i < 500; i++) instance.record(record(i));
      await instance.flush(); // two statements' worth: the first fails, and both stay buffered
      expect(await value('gateway_records_written_total')).toBe(0);
      expect(await value('gateway_records_buffered')).toBe(500);
      for (let i = 500; i < 700; i++) instance.record(record(i)); // 100 over the bound
      expect(await value('gateway_records_dropped_total')).toBe(100);
      expect(await value('gateway_records_buffered')).toBe(600);
    } finally {
      await database.pool.query('ALTER TABLE gateway_requests_away RENAME TO gateway_requests');
    }
    await instance.flush();
    expect(await value('gateway_records_written_total')).toBe(600);
    expect(await value('gateway_records_buffered')).toBe(0);
    // Every kept record once, in the order the requests came; none of the dropped ones.
    expect(await stored()).toEqual(Array.from({ length: 600 }, (_, i) => `recorder-${i}`));
  });
});
