import { isPgError } from '@gpu-telemetry/db';
import { asService } from '@gpu-telemetry/service-kit/testing';
import type { Pool } from 'pg';
import request from 'supertest';
import { startStreamerTestApp } from '../testing/streamer-test-app';
import { message, sample } from '../testing/samples';
import { lockChunk } from './compaction.queries';

let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;

beforeAll(async () => {
  streamer = await startStreamerTestApp();
});

afterAll(async () => {
  await streamer.close();
});

/** Backends of this database waiting on a lock (the batch's statement, while it waits). */
async function waitingOnLocks(): Promise<number> {
  const { rows } = await streamer.database.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND wait_event_type = 'Lock'`,
  );
  return rows[0]?.n ?? 0;
}

/** The process id of the one backend of this database waiting on a lock. */
async function waitingBackend(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
  );
  expect(rows).toHaveLength(1);
  return rows[0]!.pid;
}

async function backendAlive(pool: Pool, pid: number): Promise<boolean> {
  const { rows } = await pool.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
  return rows.length > 0;
}

async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  for (const started = Date.now(); !(await check());) {
    if (Date.now() - started > 5_000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('a batch stopped at its limit', () => {
  it('has the statement it waits on cancelled, stores nothing, and leaves the pool whole', async () => {
    const gpuId = 'GPU-cancelled-batch';
    const batch = [
      message([
        sample({ gpuId, value: 1 }),
        sample({ gpuId, value: 2, metricName: 'DCGM_FI_DEV_POWER_USAGE' }),
      ]),
    ];
    // Another session holds the series table, as a long migration or a stuck transaction would.
    const holder = await streamer.database.pool.connect();
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE telemetry_series IN ACCESS EXCLUSIVE MODE');
    const limit = new AbortController();
    const started = Date.now();
    const handled = streamer.ingest.handle(batch, limit.signal).then(
      () => 'stored',
      (error: unknown) => (isPgError(error) ? error.code : String(error)),
    );
    try {
      await until('the batch waiting on the lock', async () => (await waitingOnLocks()) === 1);
      const waiter = await waitingBackend(streamer.database.pool);
      limit.abort(new Error('handling ran past 10s'));
      expect(await handled).toBe('57014'); // query_canceled: the batch fails, for its consumer to dead-letter
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(await waitingOnLocks()).toBe(0);
      // The cancelled connection was closed, not pooled again: its backend is gone.
      await until('its backend to end', async () => !(await backendAlive(streamer.database.pool, waiter)));
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    const metrics = await request(asService(streamer.app)).get('/metrics');
    expect(metrics.text).toContain('streamer_batches_total{outcome="failed",service="streamer"} 1');
    // Nothing of it was stored, and the same batch stores whole once the lock is gone.
    const telemetry = () =>
      request(asService(streamer.app))
        .get(`/v1/gpus/${gpuId}/telemetry`)
        .query({ start_time: '2000-01-01T00:00:00Z', end_time: '2100-01-01T00:00:00Z' });
    expect((await telemetry()).status).toBe(404);
    expect(await streamer.ingest.handle(batch, new AbortController().signal)).toEqual({ failed: [] });
    expect((await telemetry()).body.samples).toHaveLength(2);
    // No connection is left busy.
    expect(streamer.database.pool.totalCount - streamer.database.pool.idleCount).toBe(0);
  });

  it('is not started once its signal has aborted', async () => {
    const gpuId = 'GPU-never-started';
    const aborted = AbortSignal.abort(new Error('handling ran past 10s'));
    await expect(streamer.ingest.handle([message([sample({ gpuId })])], aborted)).rejects.toThrow(
      'handling ran past 10s',
    );
    const res = await request(asService(streamer.app))
      .get(`/v1/gpus/${gpuId}/telemetry`)
      .query({ start_time: '2000-01-01T00:00:00Z', end_time: '2100-01-01T00:00:00Z' });
    expect(res.status).toBe(404);
  });
});

describe('late samples of a batch stopped at its limit', () => {
  it('have the merge into their compacted chunk cancelled where it waits, and are merged once delivered again', async () => {
    const MINUTE = 60_000;
    const local = await startStreamerTestApp({
      config: { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: MINUTE, TELEMETRY_COMPACT_AFTER: 10_000 },
    });
    try {
      const gpuId = 'GPU-cancelled-late';
      const chunkStart = Math.floor((Date.now() - 5 * MINUTE) / MINUTE) * MINUTE;
      const at = (s: number) => new Date(chunkStart + s * 1000).toISOString();
      await local.ingest.handle([message([sample({ gpuId, timestamp: at(0), value: 1 })])]);
      expect((await local.compactor.compactDue()).chunks).toBeGreaterThanOrEqual(1);
      const late = [message([sample({ gpuId, timestamp: at(30), value: 2 })])];
      // Another streamer holds the chunk (compacting it, or merging its own late samples).
      const holder = await local.database.pool.connect();
      await holder.query('BEGIN');
      await lockChunk(holder, chunkStart, true);
      const limit = new AbortController();
      const started = Date.now();
      const handled = local.ingest.handle(late, limit.signal).then(
        () => 'stored',
        (error: unknown) => (isPgError(error) ? error.code : String(error)),
      );
      const waiting = async () =>
        (
          await local.database.pool.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'`,
          )
        ).rows[0]?.n ?? 0;
      try {
        await until('the late merge waiting on its chunk', async () => (await waiting()) === 1);
        const waiter = await waitingBackend(local.database.pool);
        limit.abort(new Error('handling ran past 10s'));
        expect(await handled).toBe('57014');
        expect(Date.now() - started).toBeLessThan(5_000);
        expect(await waiting()).toBe(0);
        // The merge's connection was closed, not pooled again: its backend is gone.
        await until('its backend to end', async () => !(await backendAlive(local.database.pool, waiter)));
      } finally {
        await holder.query('ROLLBACK');
        holder.release();
      }
      const stored = async () =>
        (
          await request(asService(local.app))
            .get(`/v1/gpus/${gpuId}/telemetry`)
            .query({ start_time: at(-60), end_time: at(120) })
            .expect(200)
        ).body.samples.map((s: { value: number }) => s.value);
      expect(await stored()).toEqual([1]);
      expect(await local.ingest.handle(late, new AbortController().signal)).toEqual({ failed: [] });
      expect(await stored()).toEqual([1, 2]);
      // No connection is left busy.
      expect(local.database.pool.totalCount - local.database.pool.idleCount).toBe(0);
    } finally {
      await local.close();
    }
  });
});
