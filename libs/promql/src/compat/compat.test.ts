import { BadDataError, PromQLEngine, type TieOrder, toPrometheusData, toPrometheusError } from '../index';
import { MemorySeriesSource } from '../source';
import { type ApiAnswer, compareAnswers } from './compare';
import { DATASET_END_MS, generateDataset, SCRAPE_INTERVAL_MS } from './dataset';
import { type PrometheusServer, startPrometheus } from './prometheus-server';
import { COMPAT_QUERIES, INSTANT_TIMES, PARSE_CASES, PARSE_DIFFERENCES, RANGE_CASES } from './queries';
import { remoteWriteDataset } from './remote-write';

/**
 * The engine against a real Prometheus: the same generated data set is remote-written to
 * Prometheus and loaded into a MemorySeriesSource, then every expression of the table is
 * evaluated by both, as instant queries at several times and as range queries over several
 * windows and steps. Series, labels and values must match (floats within a relative 1e-9), and the
 * order of sorted answers, ties included: the engine follows the sort.Sort of the Go release
 * Prometheus says it was built with.
 */

let prometheus: PrometheusServer;
let engine: PromQLEngine;

async function prometheusAnswer(path: string, params: Record<string, string>): Promise<ApiAnswer> {
  const res = await fetch(`${prometheus.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(params).toString(),
  });
  return (await res.json()) as ApiAnswer;
}

/** The tie order of the Go release the Prometheus at `url` was built with (its build info). */
async function tieOrderOf(url: string): Promise<TieOrder> {
  const info = (await (await fetch(`${url}/api/v1/status/buildinfo`)).json()) as {
    data: { goVersion: string };
  };
  const minor = /^go1\.(\d+)/.exec(info.data.goVersion);
  if (!minor) throw new Error(`Prometheus's build info names no Go release: ${info.data.goVersion}`);
  return Number(minor[1]) >= 24 ? 'go1.24' : 'go1.19';
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
  await remoteWriteDataset(`${prometheus.url}/api/v1/write`, data);
  const source = new MemorySeriesSource();
  for (const s of data) {
    const samples = s.timestamps.map((t, i) => {
      const words = new Uint32Array(s.values.buffer, i * 8, 2);
      return words[0] === 2 && words[1] === 0x7ff00000
        ? { t, stale: true as const }
        : ([t, s.values[i]] as [number, number]);
    });
    source.add(s.labels, samples);
  }
  engine = new PromQLEngine({ source, tieOrder: await tieOrderOf(prometheus.url) });
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
  it.each(INSTANT_TIMES.map((t) => [new Date(t).toISOString(), t] as const))(
    'instant at %s',
    async (_iso, t) => {
      const theirs = await prometheusAnswer('/api/v1/query', { query: c.query, time: String(t / 1000) });
      const mine = await engineAnswer(() => engine.instantQuery(c.query, t));
      expect(compareAnswers(theirs, mine, { ordered: c.ordered, exactTies: true })).toEqual([]);
    },
  );

  it.each(RANGE_CASES)('range %s', async (_label, start, end, step) => {
    const theirs = await prometheusAnswer('/api/v1/query_range', {
      query: c.query,
      start: String(start / 1000),
      end: String(end / 1000),
      step: String(step / 1000),
    });
    const mine = await engineAnswer(() => engine.rangeQuery(c.query, start, end, step));
    expect(compareAnswers(theirs, mine)).toEqual([]);
  });
});

it('refuses more than 11,000 points per series, as Prometheus does', async () => {
  const params = { query: 'up', start: '0', end: '11001', step: '1' };
  const theirs = await prometheusAnswer('/api/v1/query_range', params);
  const mine = await engineAnswer(() => engine.rangeQuery('up', 0, 11_001_000, 1000));
  expect(compareAnswers(theirs, mine)).toEqual([]);
  expect(mine).toMatchObject({ errorType: 'bad_data' });
  await expect(engine.rangeQuery('up', 0, 11_001_000, 1000)).rejects.toBeInstanceOf(BadDataError);
});

/**
 * Prometheus's error for a query, as the engine words it: without the API's `invalid parameter
 * "query": ` prefix, and without the internal item number Prometheus 2 prints before an unexpected
 * `@` (`unexpected "<Item 57385>" <op:@>`).
 */
function parseOutcome(answer: ApiAnswer): string {
  if (answer.status === 'success') return 'takes it';
  return answer.error.replace(/^invalid parameter "query": /, '').replace(/"<Item \d+>" /, '');
}

describe('malformed queries', () => {
  it.each(PARSE_CASES.map((q) => [q]))('%j is refused in the same words, or taken by both', async (query) => {
    const theirs = await prometheusAnswer('/api/v1/query', { query, time: '0' });
    const mine = await engineAnswer(() => engine.instantQuery(query, 0));
    expect(parseOutcome(mine)).toBe(parseOutcome(theirs));
  });

  it.each(PARSE_DIFFERENCES.map((d) => [d.query, d] as const))(
    '%j is where the engine parts from Prometheus 2, as documented',
    async (query, d) => {
      const theirs = await prometheusAnswer('/api/v1/query', { query, time: '0' });
      const mine = await engineAnswer(() => engine.instantQuery(query, 0));
      expect([theirs.status, mine.status]).toEqual([
        d.prometheus2 === 'takes' ? 'success' : 'error',
        d.engine === 'takes' ? 'success' : 'error',
      ]);
    },
  );
});
