import { toSampleValue } from '@gpu-telemetry/model';
import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { message, sample } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';
import { segments } from './telemetry-query.service';
import { dropCompactedPartitions } from './compaction.queries';

/**
 * Aggregates answered from 1-minute and 1-hour rollups, once chunks compact and days fold, are
 * the aggregates of the samples themselves: the same buckets, counts, min, max and averages, at
 * every step and over ranges that do not fall on the rollups' grid.
 */
type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
let streamer: TestApp;
const GPU = 'GPU-rollup-0';
const METRIC = 'DCGM_FI_DEV_POWER_USAGE';
const HOUR = 3_600_000;
// Three hours across a midnight three days ago, a sample every 30 s; 15-minute chunks.
const base = Math.floor(Date.now() / 86_400_000) * 86_400_000 - 2 * 86_400_000 - 2 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();
const stored: Array<{ at: number; value: number }> = [];

// Decimals of 0-3 places (kept hot in 4 bytes), values only a double holds, NaN and infinities
// (left out of every aggregate), mixed in the same buckets.
function valueAt(k: number): number {
  if (k % 97 === 13) return NaN;
  if (k % 89 === 40) return k % 2 === 0 ? Infinity : -Infinity;
  if (k % 23 === 5) return 70 + 1 / 3 + (k % 5);
  if (k % 41 === 7) return -(k % 11) * 0.5;
  return Number((70 + 20 * Math.sin(k / 15) + (k % 7) * 0.125).toFixed(3));
}

beforeAll(async () => {
  streamer = await startStreamerTestApp({
    config: {
      TELEMETRY_RETENTION: 0,
      TELEMETRY_CHUNK: 15 * 60_000,
      TELEMETRY_SLICE: 5 * 60_000,
      TELEMETRY_COMPACT_AFTER: 10_000,
    },
  });
  const samples = [];
  for (let k = 0; k < 360; k++) {
    const at = base + k * 30_000 + (k % 3);
    stored.push({ at, value: valueAt(k) });
    samples.push(
      sample({
        gpuId: GPU,
        metricName: METRIC,
        timestamp: iso(at),
        value: toSampleValue(valueAt(k)),
      }),
    );
  }
  for (let i = 0; i < samples.length; i += 100)
    await streamer.ingest.handle([message(samples.slice(i, i + 100))]);
});

afterAll(async () => {
  await streamer.close();
});

/** What the aggregates must be, from the samples. */
function expected(start: number, end: number, stepSeconds: number) {
  const buckets = new Map<number, number[]>();
  for (const { at, value } of stored) {
    if (at < start || at >= end || !Number.isFinite(value)) continue;
    const key = Math.floor(at / (stepSeconds * 1000)) * stepSeconds * 1000;
    buckets.set(key, [...(buckets.get(key) ?? []), value]);
  }
  return [...buckets.entries()]
    .sort(([a], [b]) => a - b)
    .map(([key, values]) => ({
      start: iso(key),
      count: values.length,
      avg: values.reduce((a, b) => a + b, 0) / values.length,
      min: Math.min(...values),
      max: Math.max(...values),
    }));
}

const CASES: Array<[string, number, number, string, number]> = [
  ['whole hours at 1h', base, base + 3 * HOUR, '1h', 3600],
  ['whole hours at 2h', base, base + 3 * HOUR, '2h', 7200],
  ['unaligned range at 1h', base + 7 * 60_000 + 12_345, base + 3 * HOUR - 61_000, '1h', 3600],
  ['unaligned range at 5m', base + 7 * 60_000 + 12_345, base + 2 * HOUR + 30_000, '5m', 300],
  ['raw steps', base + 1_000, base + HOUR, '45s', 45],
];

async function checkAll(): Promise<void> {
  for (const [, start, end, step, stepSeconds] of CASES) {
    const res = await request(asService(streamer.app))
      .get(`/v1/gpus/${GPU}/metrics/${METRIC}/series`)
      .query({ start_time: iso(start), end_time: iso(end), step })
      .expect(200);
    const want = expected(start, end, stepSeconds);
    expect(res.body.buckets.map((b: { start: string }) => b.start)).toEqual(want.map((b) => b.start));
    res.body.buckets.forEach((b: { count: number; avg: number; min: number; max: number }, i: number) => {
      const w = want[i]!;
      expect({ count: b.count, min: b.min, max: b.max }).toEqual({ count: w.count, min: w.min, max: w.max });
      expect(b.avg).toBeCloseTo(w.avg, 9);
    });
  }
}

const rows = async (table: string) =>
  (await streamer.database.pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n as number;

describe('aggregates from rollups', () => {
  it('cuts a range into the coarsest exact resolutions', () => {
    const start = Date.parse('2026-01-01T00:07:30Z');
    const end = Date.parse('2026-01-01T03:00:45Z');
    expect(
      segments(start, end, 3600).map((g) => [
        iso(g.from).slice(11, 19),
        iso(g.to).slice(11, 19),
        g.resolution,
      ]),
    ).toEqual([
      ['00:07:30', '00:08:00', 0],
      ['00:08:00', '01:00:00', 60],
      ['01:00:00', '03:00:00', 3600],
      ['03:00:00', '03:00:45', 0],
    ]);
    expect(segments(start, end, 90)).toEqual([{ from: start, to: end, resolution: 0 }]);
    // Before a resolution's horizon (its oldest day kept), the next finer one answers.
    const day = Date.parse('2026-01-02T00:00:00Z');
    const horizons = { 60: day + 86_400_000, 3600: day };
    expect(
      segments(day - 90 * 60_000, day + 86_400_000 + 90 * 60_000, 3600, horizons).map((g) => [
        iso(g.from).slice(5, 16),
        iso(g.to).slice(5, 16),
        g.resolution,
      ]),
    ).toEqual([
      ['01-01T22:30', '01-02T00:00', 0],
      ['01-02T00:00', '01-03T01:00', 3600],
      ['01-03T01:00', '01-03T01:30', 60],
    ]);
    expect(segments(day, day + HOUR, 60, { 60: Infinity, 3600: Infinity })).toEqual([
      { from: day, to: day + HOUR, resolution: 0 },
    ]);
  });

  it('match the samples while every chunk is hot', async () => {
    expect(await rows('telemetry_rollups_1m')).toBe(0);
    await checkAll();
  });

  it('match them once the slices are compacted (1m and 1h rollups, one row per series and slice)', async () => {
    // 15-minute chunks in 5-minute slices.
    expect((await streamer.compactor.compactDue()).chunks).toBe(36);
    expect(await rows('telemetry_samples')).toBe(0);
    expect(await rows('telemetry_rollups_1m')).toBe(36);
    expect(await rows('telemetry_rollups_1h')).toBe(36);
    await checkAll();
  });

  it('match them once the slices are merged (one row per series and chunk)', async () => {
    await dropCompactedPartitions(streamer.database.pool);
    expect(await streamer.compactor.mergeDue()).toBe(12);
    expect(await rows('telemetry_blocks')).toBe(12);
    expect(await rows('telemetry_rollups_1m')).toBe(12);
    expect(await rows('telemetry_rollups_1h')).toBe(12);
    expect(await streamer.compactor.mergeDue()).toBe(0);
    await checkAll();
  });

  it('match them once the days are folded (one 1h row per series and day)', async () => {
    expect(await streamer.compactor.foldDue()).toBe(2);
    expect(await rows('telemetry_rollups_1h')).toBe(2);
    expect(await streamer.compactor.foldDue()).toBe(0);
    await checkAll();
  });

  it('take in a late sample, in a folded day, once', async () => {
    const at = base + 2 * HOUR + 15_000;
    const late = message([sample({ gpuId: GPU, metricName: METRIC, timestamp: iso(at), value: 1.5 })]);
    await streamer.ingest.handle([late]);
    await streamer.ingest.handle([late]);
    stored.push({ at, value: 1.5 });
    expect(await rows('telemetry_rollups_1h')).toBe(2);
    await checkAll();
  });

  it('are dropped with their own retention, whole days at a time', async () => {
    const local = await startStreamerTestApp({
      config: {
        TELEMETRY_RETENTION: 0,
        TELEMETRY_RETENTION_1M: 86_400_000,
        TELEMETRY_RETENTION_1H: 0,
        TELEMETRY_CHUNK: 15 * 60_000,
        TELEMETRY_SLICE: 5 * 60_000,
        TELEMETRY_COMPACT_AFTER: 10_000,
      },
    });
    try {
      await local.ingest.handle([
        message([sample({ gpuId: GPU, metricName: METRIC, timestamp: iso(base) })]),
      ]);
      await local.compactor.compactDue();
      const count = async (table: string) =>
        (await local.database.pool.query(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n;
      expect(await count('telemetry_rollups_1m')).toBe(1);
      await local.maintainer.maintain();
      expect(await count('telemetry_rollups_1m')).toBe(0);
      expect(await count('telemetry_rollups_1h')).toBe(1);
      expect(await count('telemetry_blocks')).toBe(1);
      // Where the 1-minute rollups are gone but the samples are kept, whole-minute steps read the
      // samples; whole hours still read the 1-hour rollups.
      for (const step of ['1m', '5m', '1h', '90s']) {
        const res = await request(asService(local.app))
          .get(`/v1/gpus/${GPU}/metrics/${METRIC}/series`)
          .query({ start_time: iso(base - 2 * HOUR), end_time: iso(base + 2 * HOUR), step })
          .expect(200);
        expect({ step, counts: res.body.buckets.map((b: { count: number }) => b.count) }).toEqual({
          step,
          counts: [1],
        });
      }
    } finally {
      await local.close();
    }
  });

  it('answer whole-hour steps from the rollups alone once the samples are gone', async () => {
    await streamer.database.pool.query('TRUNCATE telemetry_blocks');
    const [, start, end, step, stepSeconds] = CASES[0]!;
    const res = await request(asService(streamer.app))
      .get(`/v1/gpus/${GPU}/metrics/${METRIC}/series`)
      .query({ start_time: iso(start), end_time: iso(end), step })
      .expect(200);
    expect(res.body.buckets.map((b: { count: number }) => b.count)).toEqual(
      expected(start, end, stepSeconds).map((b) => b.count),
    );
    const raw = await request(asService(streamer.app))
      .get(`/v1/gpus/${GPU}/metrics/${METRIC}/series`)
      .query({ start_time: iso(start), end_time: iso(end), step: '45s' })
      .expect(200);
    expect(raw.body.buckets).toEqual([]);
  });
});
