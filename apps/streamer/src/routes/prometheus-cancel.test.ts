import { QueryCanceledError } from '@gpu-telemetry/promql';
import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { waitForLockWaiters } from '../testing/locks';
import { message, sample } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';

/**
 * A PromQL query nobody waits for any more stops in Postgres too: its running statement is
 * cancelled at once rather than left to run to PROMQL_TIMEOUT (Grafana abandons queries whenever a
 * panel's range changes). Made deterministic by holding a lock the query's first statement waits
 * for; without cancellation it would wait until the lock is released. One turn
 * (PROMQL_MAX_CONCURRENCY) for all: an abandoned call that kept it would stall the next.
 */
type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
let streamer: TestApp;
const API = '/v1/prometheus/api/v1';

beforeAll(async () => {
  streamer = await startStreamerTestApp({ config: { PROMQL_MAX_CONCURRENCY: 1 } });
  await streamer.ingest.handle([
    message([sample({ gpuId: 'GPU-cancel-0', metricName: 'DCGM_FI_DEV_GPU_TEMP' })]),
  ]);
});

afterAll(async () => {
  await streamer.close();
});

/** Statements of the streamer's pool that wait for a lock. */
async function waiting(): Promise<number> {
  const { rows } = await streamer.database.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%telemetry_series%'`,
  );
  return rows[0]?.n ?? 0;
}

async function holdingSeriesLock<T>(fn: () => Promise<T>): Promise<T> {
  const holder = await streamer.database.pool.connect();
  await holder.query('BEGIN');
  await holder.query('LOCK TABLE telemetry_series IN ACCESS EXCLUSIVE MODE');
  try {
    return await fn();
  } finally {
    await holder.query('ROLLBACK');
    holder.release();
  }
}

describe('abandoned PromQL queries', () => {
  it('cancel their statement in Postgres when the caller aborts, and free the connection', async () => {
    await holdingSeriesLock(async () => {
      const controller = new AbortController();
      const started = Date.now();
      const query = streamer.prometheus.instantQuery('DCGM_FI_DEV_GPU_TEMP', Date.now(), {
        signal: controller.signal,
      });
      const settled = query.then(
        () => undefined,
        (error: unknown) => error,
      );
      await waitForLockWaiters(streamer.database.pool, 1);
      controller.abort();
      expect(await settled).toBeInstanceOf(QueryCanceledError);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(await waiting()).toBe(0);
    });
    // The pool is whole: the next query is answered.
    const after = await streamer.prometheus.instantQuery('DCGM_FI_DEV_GPU_TEMP', Date.now());
    expect(after.resultType).toBe('vector');
  });

  /**
   * Calls `path` and leaves (a 300 ms client timeout) while its statement waits on the lock, then
   * checks that the statement was cancelled: no backend is left waiting.
   */
  async function leaveWhileWaiting(path: string, query: Record<string, string>): Promise<void> {
    const leaving = request(asService(streamer.app))
      .get(path)
      .query(query)
      .timeout(300)
      .then(
        () => 'answered',
        (error: { timeout?: number }) => (error.timeout ? 'left' : String(error)),
      );
    await waitForLockWaiters(streamer.database.pool, 1);
    expect(await leaving).toBe('left');
    for (let i = 0; i < 100 && (await waiting()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await waiting()).toBe(0);
  }

  it('cancel their statement when the HTTP client leaves', async () => {
    await holdingSeriesLock(async () => {
      await leaveWhileWaiting(`${API}/query`, { query: 'DCGM_FI_DEV_GPU_TEMP' });
    });
    const metrics = await request(asService(streamer.app)).get('/metrics').expect(200);
    expect(metrics.text).toMatch(/^streamer_promql_requests_total\{[^}]*outcome="canceled"[^}]*\} [1-9]/m);
  });

  it.each([
    ['/series', 'series'],
    ['/labels', 'labels'],
    ['/label/gpu/values', 'label_values'],
  ])(
    'cancel the statement of %s when the HTTP client leaves, and give its turn back',
    async (path, endpoint) => {
      await holdingSeriesLock(async () => {
        await leaveWhileWaiting(`${API}${path}`, { 'match[]': 'DCGM_FI_DEV_GPU_TEMP' });
        // The only turn is free again while the lock is still held.
        const next = await request(asService(streamer.app))
          .get(`${API}/query`)
          .query({ query: 'vector(1)', timeout: '5s' })
          .expect(200);
        expect(next.body.data.result).toEqual([{ metric: {}, value: [expect.any(Number), '1'] }]);
      });
      const metrics = await request(asService(streamer.app)).get('/metrics').expect(200);
      expect(metrics.text).toMatch(
        new RegExp(
          `^streamer_promql_requests_total\\{[^}]*endpoint="${endpoint}"[^}]*outcome="canceled"[^}]*\\} 1$`,
          'm',
        ),
      );
    },
  );
});
