import { BadDataError, PromQLEngine, toPrometheusData, toPrometheusError } from '../index';
import { MemorySeriesSource } from '../source';
import { type ApiAnswer, compareAnswers } from './compare';
import { DATASET_END_MS, DATASET_START_MS, type DatasetSeries, generateDataset, SCRAPE_INTERVAL_MS } from './dataset';
import { type PrometheusServer, startPrometheus } from './prometheus-server';
import { COMPAT_QUERIES } from './queries';
import { remoteWrite } from './remote-write';

/**
 * The engine against a real Prometheus: the same generated data set is remote-written to
 * Prometheus and loaded into a MemorySeriesSource, then every expression of the table is
 * evaluated by both, as instant queries at several times and as range queries over several
 * windows and steps. Series, labels and values must match (floats within a relative 1e-9).
 */

const minute = 60_000;
const INSTANT_TIMES = [
  DATASET_END_MS, // the end of the data
  DATASET_START_MS + 80 * minute, // inside host-2's outage
  DATASET_START_MS + 25 * minute, // the NaN sample
  DATASET_START_MS + 100 * minute + 37_000, // after the GPU removal, between scrapes
  DATASET_START_MS + 47 * minute + 3_000,
];
const RANGES: [start: number, end: number, step: number][] = [
  [DATASET_START_MS, DATASET_END_MS, minute],
  [DATASET_START_MS + 70 * minute, DATASET_START_MS + 90 * minute, 15_000],
  [DATASET_START_MS + 10 * minute, DATASET_END_MS, 7 * minute + 13_000],
];

let prometheus: PrometheusServer;
let engine: PromQLEngine;

async function loadPrometheus(url: string, data: DatasetSeries[]): Promise<void> {
  // In time order, ten minutes per request: the head accepts what is no older than its newest hour.
  const slice = 10 * minute;
  for (let from = DATASET_START_MS; from <= DATASET_END_MS; from += slice) {
    const batch = data
      .map((s) => {
        const idx = s.timestamps.flatMap((t, i) => (t >= from && t < from + slice ? [i] : []));
        return { labels: s.labels, timestamps: idx.map((i) => s.timestamps[i]), values: new Float64Array(idx.map(() => 0)), idx, s };
      })
      .filter((b) => b.idx.length > 0)
      .map((b) => {
        // Copy the values bit for bit (stale markers are NaNs that a plain copy may change).
        const src = new Uint32Array(b.s.values.buffer);
        const dst = new Uint32Array(b.values.buffer);
        b.idx.forEach((i, j) => {
          dst[2 * j] = src[2 * i];
          dst[2 * j + 1] = src[2 * i + 1];
        });
        return { labels: b.labels, timestamps: b.timestamps, values: b.values };
      });
    await remoteWrite(`${url}/api/v1/write`, batch);
  }
}

async function prometheusAnswer(path: string, params: Record<string, string>): Promise<ApiAnswer> {
  const res = await fetch(`${prometheus.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  return (await res.json()) as ApiAnswer;
}

async function engineAnswer(run: () => Promise<Parameters<typeof toPrometheusData>[0]>): Promise<ApiAnswer> {
  try {
    return { status: 'success', data: toPrometheusData(await run()) };
  } catch (err) {
    const { body } = toPrometheusError(err);
    return { status: 'error', errorType: body.errorType, error: body.error };
  }
}

beforeAll(async () => {
  prometheus = await startPrometheus();
  const data = generateDataset();
  await loadPrometheus(prometheus.url, data);
  const source = new MemorySeriesSource();
  for (const s of data) {
    const samples = s.timestamps.map((t, i) => {
      const words = new Uint32Array(s.values.buffer, i * 8, 2);
      return words[0] === 2 && words[1] === 0x7ff00000 ? { t, stale: true as const } : ([t, s.values[i]] as [number, number]);
    });
    source.add(s.labels, samples);
  }
  engine = new PromQLEngine({ source });
}, 120_000);

afterAll(async () => {
  await prometheus?.stop();
});

it('loads the same data into both', async () => {
  const sec = String(DATASET_END_MS / 1000);
  const theirs = await prometheusAnswer('/api/v1/query', { query: 'count({__name__=~".+"})', time: sec });
  const mine = await engineAnswer(() => engine.instantQuery('count({__name__=~".+"})', DATASET_END_MS));
  expect(theirs.status).toBe('success');
  expect(compareAnswers(theirs, mine)).toEqual([]);
  expect(SCRAPE_INTERVAL_MS).toBe(15_000);
});

describe.each(COMPAT_QUERIES.map((c) => [c.query, c] as const))('%s', (_name, c) => {
  it.each(INSTANT_TIMES.map((t) => [new Date(t).toISOString(), t] as const))('instant at %s', async (_iso, t) => {
    const theirs = await prometheusAnswer('/api/v1/query', { query: c.query, time: String(t / 1000) });
    const mine = await engineAnswer(() => engine.instantQuery(c.query, t));
    expect(compareAnswers(theirs, mine, { ordered: c.ordered })).toEqual([]);
  });

  it.each(RANGES.map(([s, e, step]) => [`${new Date(s).toISOString()}..${new Date(e).toISOString()} step ${step / 1000}s`, s, e, step] as const))(
    'range %s',
    async (_label, start, end, step) => {
      const theirs = await prometheusAnswer('/api/v1/query_range', {
        query: c.query,
        start: String(start / 1000),
        end: String(end / 1000),
        step: String(step / 1000),
      });
      const mine = await engineAnswer(() => engine.rangeQuery(c.query, start, end, step));
      expect(compareAnswers(theirs, mine)).toEqual([]);
    },
  );
});

it('refuses more than 11,000 points per series, as Prometheus does', async () => {
  const params = { query: 'up', start: '0', end: '11001', step: '1' };
  const theirs = await prometheusAnswer('/api/v1/query_range', params);
  const mine = await engineAnswer(() => engine.rangeQuery('up', 0, 11_001_000, 1000));
  expect(compareAnswers(theirs, mine)).toEqual([]);
  expect(mine).toMatchObject({ errorType: 'bad_data' });
  await expect(engine.rangeQuery('up', 0, 11_001_000, 1000)).rejects.toBeInstanceOf(BadDataError);
});
