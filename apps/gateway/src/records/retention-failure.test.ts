import { SpanStatusCode } from '@opentelemetry/api';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { linesLogger } from '@gpu-telemetry/service-kit/testing';
import { recordSpans } from '@gpu-telemetry/service-kit/testing-spans';
import request from 'supertest';
import type { GatewayApp } from '../app';
import type { GatewayDatabase } from '../gateway.tables';
import { createTestGateway } from '../testing/gateway-test-app';

/** The hourly deletion of expired records and spans: a failed round is counted, logged and traced. */
let database: TestDatabase<GatewayDatabase>;
let gateway: GatewayApp;
let recording: ReturnType<typeof recordSpans>;
const lines: Record<string, unknown>[] = [];

beforeAll(async () => {
  recording = recordSpans();
  database = await createTestDatabase<GatewayDatabase>();
  gateway = createTestGateway(
    database,
    { GATEWAY_ADMIN_KEY: 'retention-failure-admin-key-0123456789', GATEWAY_RECORDS: 'false' },
    linesLogger('gateway', 'warn', lines),
  );
});

afterAll(async () => {
  await gateway.close();
  await database.drop();
  await recording.stop();
});

const failures = async () => {
  const text = (await request(gateway.handler).get('/metrics').expect(200)).text;
  return Number(/^gateway_retention_failures_total\{[^}]*\} (\d+)$/m.exec(text)?.[1]);
};

describe('gateway retention', () => {
  it('counts a round that fails in /metrics, logs its error and marks its span as an error', async () => {
    expect(await failures()).toBe(0);
    await database.pool.query('ALTER TABLE gateway_spans RENAME TO gateway_spans_away');
    try {
      await gateway.retention.runLogged();
    } finally {
      await database.pool.query('ALTER TABLE gateway_spans_away RENAME TO gateway_spans');
    }
    expect(await failures()).toBe(1);
    const line = lines.find((l) => l['msg'] === 'gateway retention failed; will retry');
    expect(line?.['err']).toMatchObject({ message: expect.stringContaining('gateway_spans') });
    const [span] = recording.spans().filter((s) => s.name === 'gateway.retention');
    expect(span?.status.code).toBe(SpanStatusCode.ERROR);
    expect(line?.['traceId']).toBe(span?.spanContext().traceId);
  });

  it('does not count a round that succeeds', async () => {
    recording.reset();
    await gateway.retention.runLogged();
    expect(await failures()).toBe(1);
    const [span] = recording.spans().filter((s) => s.name === 'gateway.retention');
    expect(span?.attributes).toMatchObject({ 'gateway.deleted.requests': 0, 'gateway.deleted.spans': 0 });
  });
});
