import { labelsFromRecord, MemorySeriesSource, PromQLEngine, toPrometheusData } from '@gpu-telemetry/promql';
import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { ColumnDecoder } from '../codec/block-codec';
import { encodeRollup, MINUTE_US, rollUp } from '../codec/rollup';
import { compactChunks, type PromSeries, storeSeries } from '../testing/prometheus-data';
import { maintainerWith, startStreamerTestApp } from '../testing/streamer-test-app';
import { addRollupRow, type Bucket, downsampled } from './prometheus-downsampled';

/**
 * PromQL past TELEMETRY_RETENTION: once raw samples are dropped, series are read from their
 * rollups as downsampled series (see prometheus-downsampled.ts), and the answer says so.
 */
const MINUTE = 60_000;
const HOUR = 3_600_000;
const API = '/v1/prometheus/api/v1';
const START = Date.UTC(2024, 5, 3); // four hours of samples every 15 s
const END = START + 4 * HOUR;
/** The k-th sample's value: integers, so sums in rollups and in the engine agree exactly. */
const valueAt = (k: number, gpu: number) => 40 + ((k * 7 + gpu * 3) % 13);

function dataset(): PromSeries[] {
  return [0, 1].map((gpu) => {
    const timestamps: number[] = [];
    const values: number[] = [];
    for (let t = START, k = 0; t < END; t += 15_000, k++) {
      timestamps.push(t);
      values.push(valueAt(k, gpu));
    }
    return {
      labels: labelsFromRecord({ __name__: 'DCGM_FI_DEV_GPU_TEMP', UUID: `GPU-${gpu}`, gpu: String(gpu) }),
      timestamps,
      values: Float64Array.from(values),
    };
  });
}
const data = dataset();

/** GPU `gpu`'s values with times in [fromMs, toMs). */
const valuesIn = (gpu: number, fromMs: number, toMs: number) => {
  const s = data[gpu] as PromSeries;
  return s.timestamps.flatMap((t, i) => (t >= fromMs && t < toMs ? [s.values[i] as number] : []));
};
const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
const max = (v: number[]) => Math.max(...v);
const avg = (v: number[]) => sum(v) / v.length;

/** The minute buckets of a series, as its 1-minute rollups hold them. */
function minuteBuckets(s: PromSeries): Bucket[] {
  const byMinute = new Map<number, Bucket>();
  s.timestamps.forEach((t, i) => {
    const startUs = Math.floor(t / MINUTE) * MINUTE * 1000;
    const v = s.values[i] as number;
    const b = byMinute.get(startUs);
    if (!b) byMinute.set(startUs, { startUs, count: 1, sum: v, min: v, max: v, last: v });
    else {
      b.count++;
      b.sum += v;
      b.min = Math.min(b.min, v);
      b.max = Math.max(b.max, v);
      b.last = v;
    }
  });
  return [...byMinute.values()];
}

describe('downsampled: a series read from its rollup buckets', () => {
  const buckets: Bucket[] = [
    { startUs: 0, count: 4, sum: 10, min: 1, max: 4, last: 2 },
    { startUs: 60_000_000, count: 2, sum: 9, min: 4, max: 5, last: 5 },
    { startUs: 600_000_000, count: 1, sum: 7, min: 7, max: 7, last: 7 },
  ];

  it('gives an instant selector the last value of the newest whole bucket, while it is fresh', () => {
    const read = {
      kind: 'instant' as const,
      timesMs: [30_000, 59_999, 60_000, 119_999, 419_999, 420_000, 660_000],
      lookbackMs: 300_000,
    };
    const got = downsampled(buckets, MINUTE_US, read, 0, Infinity);
    // 30 s: no bucket whole yet; at its last millisecond the first is; 5 minutes after the second
    // ended it is still fresh, a millisecond later it is not; at 11 min the third.
    expect(Array.from(got?.timestamps ?? [])).toEqual([59_999, 60_000, 119_999, 419_999, 660_000]);
    expect(Array.from(got?.values ?? [])).toEqual([2, 2, 5, 5, 7]);
  });

  it.each([
    ['max_over_time', [4, 5, 7]],
    ['min_over_time', [1, 4, 7]],
    ['sum_over_time', [10, 9, 7]],
    ['avg_over_time', [2.5, 4.5, 7]],
    ['rate', [2, 5, 7]],
    [undefined, [2, 5, 7]],
  ])('gives %s one sample per bucket in its last millisecond', (func, values) => {
    const got = downsampled(buckets, MINUTE_US, { kind: 'range', func }, 0, Infinity);
    expect(Array.from(got?.timestamps ?? [])).toEqual([59_999, 119_999, 659_999]);
    expect(Array.from(got?.values ?? [])).toEqual(values);
  });

  it('keeps to [from, to)', () => {
    const got = downsampled(buckets, MINUTE_US, { kind: 'range', func: undefined }, 60_000, 659_999);
    expect(Array.from(got?.timestamps ?? [])).toEqual([119_999]);
  });

  it('combines a bucket that two rollup rows (two chunks) each hold part of', () => {
    const into = new Map<number, Bucket>();
    const decoder = new ColumnDecoder();
    const part = (times: number[], values: number[]) =>
      encodeRollup(
        rollUp(
          { times: Float64Array.from(times), values: Float64Array.from(values) },
          MINUTE_US,
        ) as NonNullable<ReturnType<typeof rollUp>>,
      );
    addRollupRow(into, decoder, part([0, 15_000_000, 30_000_000], [3, 9, 1]));
    addRollupRow(into, decoder, part([45_000_000, 60_000_000], [4, NaN]));
    expect([...into.values()]).toEqual([{ startUs: 0, count: 4, sum: 17, min: 1, max: 9, last: 4 }]);
  });
});

describe('PromQL past TELEMETRY_RETENTION', () => {
  type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
  let app: TestApp;

  beforeAll(async () => {
    app = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: HOUR } });
    const chunks = await storeSeries({ ingest: app.ingest, pool: app.database.pool }, data);
    await compactChunks(app.compactor, chunks);
  }, 120_000);

  afterAll(async () => {
    await app.close();
  });

  const get = (path: string, query: Record<string, string>) =>
    request(asService(app.app)).get(`${API}/${path}`).query(query).expect(200);
  const downsampledCalls = async () =>
    (await app.streamerMetrics.promqlDownsampled.get()).values.reduce((n, v) => n + v.value, 0);
  /** Raw samples dropped for chunks ending at or before `before`: rollups kept for ever. */
  const dropRawBefore = (before: number) =>
    maintainerWith(app, { retentionMs: Date.now() - before, retention1mMs: 0, retention1hMs: 0 }).maintain();

  it('answers from raw samples, with no warning, while they are kept', async () => {
    const res = await get('query_range', {
      query: 'max_over_time(DCGM_FI_DEV_GPU_TEMP[10m])',
      start: String((START + HOUR) / 1000),
      end: String((START + 2 * HOUR) / 1000),
      step: '60',
    });
    expect(res.body.warnings).toBeUndefined();
    expect(res.body.data.result).toHaveLength(2);
  });

  it('reads the first three hours from rollups once their raw samples are gone, and says so', async () => {
    const calls = await downsampledCalls();
    await dropRawBefore(START + 3 * HOUR);
    const { rows } = await app.database.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM telemetry_chunks WHERE chunk_start < $1',
      [new Date(END)],
    );
    expect(rows[0]?.n).toBe(1); // the last hour's chunk
    // An instant selector: the last value of the newest whole minute.
    const t = START + 90 * MINUTE + 30_000;
    const instant = await get('query', { query: 'DCGM_FI_DEV_GPU_TEMP{gpu="1"}', time: String(t / 1000) });
    const minute = minuteBuckets(data[1] as PromSeries).find(
      (b) => b.startUs === (START + 89 * MINUTE) * 1000,
    );
    expect(instant.body.data.result).toEqual([
      {
        metric: { __name__: 'DCGM_FI_DEV_GPU_TEMP', UUID: 'GPU-1', gpu: '1' },
        value: [t / 1000, String(minute?.last)],
      },
    ]);
    expect(instant.body.warnings).toEqual([
      expect.stringMatching(
        /^samples before 2024-06-03T03:00:00.000Z are past TELEMETRY_RETENTION: read from rollups/,
      ),
    ]);

    // Range functions: one sample per bucket, in its last millisecond. A window [t - 5m, t] at a
    // whole 5 minutes holds five minutes' stand-ins (from 1-minute rollups at 5-minute steps),
    // [t - 1h, t] at a whole hour one hour's (from 1-hour rollups at hourly steps).
    for (const [query, step, width, of] of [
      ['sum_over_time(DCGM_FI_DEV_GPU_TEMP[5m])', 5 * MINUTE, 5 * MINUTE, sum],
      ['max_over_time(DCGM_FI_DEV_GPU_TEMP[5m])', 5 * MINUTE, 5 * MINUTE, max],
      ['sum_over_time(DCGM_FI_DEV_GPU_TEMP[1h])', HOUR, HOUR, sum],
      ['avg_over_time(DCGM_FI_DEV_GPU_TEMP[1h])', HOUR, HOUR, avg],
    ] as const) {
      const [start, end] = [START + HOUR, START + 2 * HOUR];
      const res = await get('query_range', {
        query,
        start: String(start / 1000),
        end: String(end / 1000),
        step: String(step / 1000),
      });
      const times: number[] = [];
      for (let t = start; t <= end; t += step) times.push(t);
      expect(res.body.data.result.map((r: { values: [number, string][] }) => r.values)).toEqual(
        [0, 1].map((gpu) => times.map((t) => [t / 1000, String(of(valuesIn(gpu, t - width, t)))])),
      );
      expect(res.body.warnings).toHaveLength(1);
    }
    // A range long enough that each series is read in a batch of its own: the same order.
    const t2 = START + 2 * HOUR;
    const year = await get('query_range', {
      query: 'DCGM_FI_DEV_GPU_TEMP',
      start: String((t2 - 400 * 86_400_000) / 1000),
      end: String(t2 / 1000),
      step: '86400',
    });
    expect(year.body.data.result).toEqual(
      [0, 1].map((gpu) => ({
        metric: { __name__: 'DCGM_FI_DEV_GPU_TEMP', UUID: `GPU-${gpu}`, gpu: String(gpu) },
        values: [[t2 / 1000, String(valuesIn(gpu, START + HOUR, t2).at(-1))]],
      })),
    );
    expect(await downsampledCalls()).toBe(calls + 6);
  });

  it('joins rollups before the horizon and raw samples after it in one series', async () => {
    const query = 'DCGM_FI_DEV_GPU_TEMP';
    const [start, end, step] = [START + 2 * HOUR, END, MINUTE];
    const res = await get('query_range', {
      query,
      start: String(start / 1000),
      end: String(end / 1000),
      step: String(step / 1000),
    });
    // What the engine answers over the same stand-ins (each minute's last value at each step,
    // before the last hour) and the last hour's raw samples.
    const joined: PromSeries[] = data.map((s) => {
      const buckets = minuteBuckets(s);
      const times: number[] = [];
      for (let t = start; t < START + 3 * HOUR; t += step) times.push(t);
      const early = downsampled(
        buckets,
        MINUTE_US,
        { kind: 'instant', timesMs: times, lookbackMs: 300_000 },
        start - 300_000,
        START + 3 * HOUR,
      );
      const late = s.timestamps
        .map((t, i) => [t, s.values[i] as number] as const)
        .filter(([t]) => t >= START + 3 * HOUR);
      return {
        labels: s.labels,
        timestamps: [...(early?.timestamps ?? []), ...late.map(([t]) => t)],
        values: Float64Array.from([...(early?.values ?? []), ...late.map(([, v]) => v)]),
      };
    });
    const reference = new PromQLEngine({ source: memory(joined) });
    expect(res.body.data).toEqual(toPrometheusData(await reference.rangeQuery(query, start, end, step)));
    expect(res.body.data.result[0].values).toHaveLength((end - start) / step + 1);
    expect(res.body.warnings).toHaveLength(1);
  });

  it('lists the series that rollups alone hold in a time range', async () => {
    const range = { start: String((START + HOUR) / 1000), end: String((START + 2 * HOUR) / 1000) };
    const series = await get('series', { 'match[]': 'DCGM_FI_DEV_GPU_TEMP', ...range });
    expect(series.body.data).toEqual([
      { __name__: 'DCGM_FI_DEV_GPU_TEMP', UUID: 'GPU-0', gpu: '0' },
      { __name__: 'DCGM_FI_DEV_GPU_TEMP', UUID: 'GPU-1', gpu: '1' },
    ]);
    const gpus = await get('label/gpu/values', { 'match[]': 'DCGM_FI_DEV_GPU_TEMP', ...range });
    expect(gpus.body.data).toEqual(['0', '1']);
    const later = await get('series', {
      'match[]': 'DCGM_FI_DEV_GPU_TEMP',
      start: String((END + 2 * 86_400_000) / 1000),
      end: String((END + 3 * 86_400_000) / 1000),
    });
    expect(later.body.data).toEqual([]);
  });

  it('answers nothing once every rollup is gone too', async () => {
    const query = 'max_over_time(DCGM_FI_DEV_GPU_TEMP[1h])';
    const [start, end] = [START + HOUR, START + 2 * HOUR];
    await app.database.pool.query('TRUNCATE telemetry_rollups_1m, telemetry_rollups_1h');
    const gone = await get('query_range', {
      query,
      start: String(start / 1000),
      end: String(end / 1000),
      step: '3600',
    });
    expect(gone.body).toEqual({ status: 'success', data: { resultType: 'matrix', result: [] } });
  });
});

/** The series in memory, as the engine's reference source. */
function memory(series: PromSeries[]): MemorySeriesSource {
  const source = new MemorySeriesSource();
  for (const s of series) {
    const labels = Object.fromEntries(
      (s.labels as { name: string; value: string }[]).map((l) => [l.name, l.value]),
    );
    source.add(
      labels,
      s.timestamps.map((t, i) => [t, s.values[i] as number] as [number, number]),
    );
  }
  return source;
}
