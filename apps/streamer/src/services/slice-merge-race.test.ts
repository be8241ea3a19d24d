import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { message, sample } from '../testing/samples';
import { poolWithHook } from '../testing/pool-hook';
import { compactorWith, startStreamerTestApp } from '../testing/streamer-test-app';
import { dropCompactedPartitions } from './compaction.queries';

/**
 * A chunk's slices are merged once all are compacted. A slice with no samples has no row; a late
 * sample for it makes one, in the gap among the others. Made while a merge of the others is under
 * way, it must not end up overlapped by the merged chunk's row: the merge rolls back and takes it
 * in later, and every sample is read once throughout.
 */
const MINUTE = 60_000;
// A 3-minute chunk of 1-minute slices, an hour ago: samples in the first and last slice only.
const base = Math.floor((Date.now() - 60 * MINUTE) / (3 * MINUTE)) * 3 * MINUTE;
const iso = (ms: number) => new Date(ms).toISOString();
const GPU = 'GPU-slice-race';

let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;

beforeAll(async () => {
  streamer = await startStreamerTestApp({
    config: {
      TELEMETRY_RETENTION: 0,
      TELEMETRY_CHUNK: 3 * MINUTE,
      TELEMETRY_SLICE: MINUTE,
      TELEMETRY_COMPACT_AFTER: 10_000,
    },
  });
  await streamer.ingest.handle([
    message([0, 30, 120, 150].map((s) => sample({ gpuId: GPU, timestamp: iso(base + s * 1000), value: s }))),
  ]);
});

afterAll(async () => {
  await streamer.close();
});

async function chunkRows(): Promise<[string, string][]> {
  // Those of the chunk's window (the maintainer made others ahead, at the present time).
  const { rows } = await streamer.database.pool.query(
    'SELECT chunk_start, chunk_end FROM telemetry_chunks WHERE chunk_start < $2 AND chunk_end > $1 ORDER BY chunk_start',
    [new Date(base), new Date(base + 3 * MINUTE)],
  );
  return rows.map((r) => [iso(r.chunk_start.getTime()), iso(r.chunk_end.getTime())]);
}

async function storedTimes(): Promise<string[]> {
  const res = await request(asService(streamer.app))
    .get(`/v1/gpus/${GPU}/telemetry`)
    .query({ start_time: iso(base), end_time: iso(base + 3 * MINUTE) })
    .expect(200);
  return res.body.samples.map((s: { timestamp: string }) => s.timestamp);
}

it('rolls a merge back when a slice is made among its slices meanwhile, and merges all three later', async () => {
  await streamer.compactor.compactDue();
  await dropCompactedPartitions(streamer.database.pool);
  expect(await chunkRows()).toEqual([
    [iso(base), iso(base + MINUTE)],
    [iso(base + 2 * MINUTE), iso(base + 3 * MINUTE)],
  ]);

  const racing = compactorWith(streamer, {
    pool: poolWithHook(
      streamer.database.pool,
      (text) => text.includes('FOR UPDATE'),
      () =>
        // A late sample for the middle slice, which has no row yet.
        streamer.ingest.handle([message([sample({ gpuId: GPU, timestamp: iso(base + 90_000), value: 90 })])]),
    ),
    chunkMs: 3 * MINUTE,
  });
  expect(await racing.mergeDue()).toBe(0);
  // The three slices, none overlapped by a merged row.
  expect(await chunkRows()).toEqual([
    [iso(base), iso(base + MINUTE)],
    [iso(base + MINUTE), iso(base + 2 * MINUTE)],
    [iso(base + 2 * MINUTE), iso(base + 3 * MINUTE)],
  ]);
  const all = [0, 30, 90, 120, 150].map((s) => iso(base + s * 1000));
  expect(await storedTimes()).toEqual(all);

  // Once the new slice is compacted too, the chunk is merged whole; not while retention (or a
  // new slice being made) holds the partitions' lock, which the merge does not wait for.
  await streamer.compactor.compactDue();
  await dropCompactedPartitions(streamer.database.pool);
  const holder = await streamer.database.pool.connect();
  try {
    const held = compactorWith(streamer, {
      pool: poolWithHook(
        streamer.database.pool,
        (text) => text.includes('FOR UPDATE'),
        () => holder.query(`SELECT pg_advisory_lock(hashtext('telemetry_partitions'))`),
      ),
      chunkMs: 3 * MINUTE,
    });
    const started = performance.now();
    expect(await held.mergeDue()).toBe(0);
    expect(performance.now() - started).toBeLessThan(5_000);
    await holder.query(`SELECT pg_advisory_unlock(hashtext('telemetry_partitions'))`);
  } finally {
    holder.release();
  }
  expect(await chunkRows()).toHaveLength(3);
  expect(await streamer.compactor.mergeDue()).toBe(1);
  expect(await chunkRows()).toEqual([[iso(base), iso(base + 3 * MINUTE)]]);
  expect(await storedTimes()).toEqual(all);
});
