import {
  COMPAT_QUERIES,
  DATASET_END_MS,
  DATASET_START_MS,
  type DatasetSeries,
  generateDataset,
} from '@gpu-telemetry/promql/compat';
import { PromQLEngine, type QueryResult, toPrometheusData, toPrometheusError } from '@gpu-telemetry/promql';
import { asService } from '@gpu-telemetry/service-kit/testing';
import fc from 'fast-check';
import request from 'supertest';
import { dropCompactedPartitions } from '../services/compaction.queries';
import { compactChunks, memorySource, storeSeries } from '../testing/prometheus-data';
import { metadataMessage } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';

/**
 * The Prometheus HTTP API over stored telemetry. The compatibility suite's data set (16 GPUs x 20
 * DCGM metrics and a histogram per host, two hours at 15 s, with an outage ended by staleness
 * markers, a removed GPU, a counter reset and a NaN) is stored twice: all hot rows, and as the
 * compactor leaves it (a chunk merged from its slices, compacted slices, hot slices). Every answer must be exactly what the same engine
 * answers over the same samples held in memory: the stored samples, their order, their staleness
 * markers and their series are what was written, hot or compacted.
 */
type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
const HOUR = 3_600_000;
const MINUTE = 60_000;
const API = '/v1/prometheus/api/v1';
const config = { TELEMETRY_RETENTION: 0, TELEMETRY_CHUNK: HOUR, TELEMETRY_SLICE: 10 * MINUTE };
let data: DatasetSeries[];
let hot: TestApp;
let compacted: TestApp;
let reference: PromQLEngine;

beforeAll(async () => {
  data = generateDataset();
  reference = new PromQLEngine({ source: memorySource(data) });
  hot = await startStreamerTestApp({ config });
  compacted = await startStreamerTestApp({ config });
  await storeSeries({ ingest: hot.ingest, pool: hot.database.pool }, data);
  const chunks = await storeSeries({ ingest: compacted.ingest, pool: compacted.database.pool }, data);
  // Hourly chunks in 10-minute slices: the first hour's slices compacted and merged, four of the
  // second hour's compacted (not mergeable while two are hot), the rest hot.
  expect(chunks.length).toBe(13);
  await compactChunks(compacted.compactor, chunks.slice(0, 10));
  await dropCompactedPartitions(compacted.database.pool);
  expect(await compacted.compactor.mergeDue()).toBe(1);
}, 120_000);

afterAll(async () => {
  await hot?.close();
  await compacted?.close();
});

const api = (app: TestApp) => request(asService(app.app));
const sec = (ms: number) => String(ms / 1000);

async function expected(run: () => Promise<QueryResult>): Promise<object> {
  try {
    return { status: 'success', data: toPrometheusData(await run()) };
  } catch (error) {
    const { body } = toPrometheusError(error);
    return { status: 'error', errorType: body.errorType };
  }
}

/** The answer's body, errors reduced to their type (parse errors read `invalid parameter "query": ...`). */
function answer(res: request.Response): object {
  const body = res.body as { status: string; errorType?: string };
  return body.status === 'error' ? { status: 'error', errorType: body.errorType } : body;
}

// A cross-section of the compatibility table: the dashboards, selectors and modifiers, staleness,
// range functions, subqueries and errors.
const SAMPLED = COMPAT_QUERIES.filter((_, i) => i % 4 === 0).map((c) => c.query);

// Selectors whose matchers name label values, found through the label index (and some that only
// look so: an empty alternative also matches a missing label, a dot any character).
const BY_LABEL_INDEX = [
  '{UUID="GPU-21000000-aaaa-bbbb-cccc-000000000021"}',
  'DCGM_FI_DEV_GPU_UTIL{Hostname=~"(host-1|host-3)", gpu=~"0|1"}',
  'DCGM_FI_DEV_GPU_UTIL{Hostname=~"host\\\\-1|host-2", gpu="1", gpu=~"1|2"}',
  'DCGM_FI_DEV_GPU_UTIL{Hostname=~"(?:host-0|host-3)", Hostname!="host-3"}',
  'DCGM_FI_DEV_GPU_UTIL{Hostname=~"host-1|"}',
  'DCGM_FI_DEV_GPU_UTIL{GPU_I_ID=~"|1"}',
  'DCGM_FI_DEV_GPU_UTIL{Hostname="host-1", Hostname="host-2"}',
  'DCGM_FI_DEV_GPU_UTIL{Hostname=~"host-1|host.2"}',
  'dcgm_scrape_duration_seconds_bucket{le=~"0\\\\.1|\\\\+Inf"}',
  // A NUL (PromQL's escape), which no stored value holds: Postgres refuses it.
  'DCGM_FI_DEV_GPU_UTIL{Hostname="\\x00"}',
  'DCGM_FI_DEV_GPU_UTIL{Hostname=~"host-1|\\x00", gpu=~"0|\\x00"}',
];

/** Asks `app` for `query` at three times and over a range, as the reference engine answers it. */
async function expectSameAnswers(app: TestApp, query: string): Promise<void> {
  for (const t of [
    DATASET_END_MS,
    DATASET_START_MS + 80 * MINUTE,
    DATASET_START_MS + 100 * MINUTE + 37_000,
  ]) {
    const res = await api(app)
      .get(`${API}/query`)
      .query({ query, time: sec(t) });
    expect(answer(res)).toEqual(await expected(() => reference.instantQuery(query, t)));
  }
  const [start, end, step] = [DATASET_START_MS + 10 * MINUTE, DATASET_END_MS, 7 * MINUTE + 13_000];
  const res = await api(app)
    .post(`${API}/query_range`)
    .type('form')
    .send({ query, start: sec(start), end: sec(end), step: sec(step) });
  expect(answer(res)).toEqual(await expected(() => reference.rangeQuery(query, start, end, step)));
}

describe.each([
  ['hot rows', () => hot],
  ['blocks and hot rows', () => compacted],
])('from %s', (_name, app) => {
  it.each(SAMPLED)('answers %s as the engine does over the same samples', async (query) => {
    await expectSameAnswers(app(), query);
  });

  it.each(BY_LABEL_INDEX)('selects %s as the engine does', async (query) => {
    await expectSameAnswers(app(), query);
  });

  it('sends a large answer (megabytes, written in pieces) exactly', async () => {
    const query = '{__name__=~"DCGM_FI_DEV_.*"}';
    const res = await api(app())
      .get(`${API}/query_range`)
      .query({ query, start: sec(DATASET_START_MS), end: sec(DATASET_END_MS), step: '15' })
      .expect(200);
    expect(res.text.length).toBeGreaterThan(1024 * 1024);
    expect(res.body).toEqual(
      await expected(() => reference.rangeQuery(query, DATASET_START_MS, DATASET_END_MS, 15_000)),
    );
  });

  it('keeps staleness markers: a series is gone right after one, and back when samples resume', async () => {
    const query = 'DCGM_FI_DEV_GPU_UTIL{Hostname="host-2", gpu="0"}';
    const res = await api(app())
      .get(`${API}/query_range`)
      .query({
        query,
        start: sec(DATASET_START_MS + 70 * MINUTE),
        end: sec(DATASET_START_MS + 90 * MINUTE),
        step: '60',
      })
      .expect(200);
    const times = (res.body.data.result[0].values as [number, string][]).map(([t]) => t);
    // The marker is sample 300 (75 min): nothing from then until sample 340 (85 min).
    expect(times).toContain((DATASET_START_MS + 74 * MINUTE) / 1000);
    expect(times).not.toContain((DATASET_START_MS + 75 * MINUTE) / 1000);
    expect(times).not.toContain((DATASET_START_MS + 84 * MINUTE) / 1000);
    expect(times).toContain((DATASET_START_MS + 85 * MINUTE) / 1000);
  });
});

describe('GET and POST /v1/prometheus/api/v1/query', () => {
  it('takes the time as unix seconds or RFC 3339, and its parameters from a form body', async () => {
    const query = 'sum by (Hostname) (DCGM_FI_DEV_POWER_USAGE)';
    const bySeconds = await api(compacted)
      .get(`${API}/query`)
      .query({ query, time: sec(DATASET_END_MS) })
      .expect(200);
    const byDate = await api(compacted)
      .get(`${API}/query`)
      .query({ query, time: new Date(DATASET_END_MS).toISOString() })
      .expect(200);
    const byForm = await api(compacted)
      .post(`${API}/query`)
      .type('form')
      .send({ query, time: sec(DATASET_END_MS) })
      .expect(200);
    expect(bySeconds.headers['content-type']).toMatch(/^application\/json/);
    expect(bySeconds.body.data.resultType).toBe('vector');
    expect(bySeconds.body.data.result).toHaveLength(4);
    expect(byDate.body).toEqual(bySeconds.body);
    expect(byForm.body).toEqual(bySeconds.body);
  });

  it('lets the form body win over the query string, as Prometheus reads them', async () => {
    const res = await api(hot)
      .post(`${API}/query?query=vector(1)&time=100`)
      .type('form')
      .send({ query: 'vector(2)' })
      .expect(200);
    expect(res.body.data).toEqual({ resultType: 'vector', result: [{ metric: {}, value: [100, '2'] }] });
  });

  it("writes vector and matrix values in Go's exponent form below 1e-6 and from 1e21, scalars never, as Prometheus does", async () => {
    const instant = async (query: string) =>
      (await api(hot).get(`${API}/query`).query({ query, time: '100' }).expect(200)).body.data;
    expect(await instant('vector(1.5e-7)')).toEqual({
      resultType: 'vector',
      result: [{ metric: {}, value: [100, '1.5e-07'] }],
    });
    expect((await instant('vector(-1.2e21)')).result[0].value).toEqual([100, '-1.2e+21']);
    expect((await instant('vector(1e-6)')).result[0].value).toEqual([100, '0.000001']);
    expect((await instant('vector(0)')).result[0].value).toEqual([100, '0']);
    expect(await instant('1.5e-7')).toEqual({ resultType: 'scalar', result: [100, '0.00000015'] });
    const range = await api(hot)
      .get(`${API}/query_range`)
      .query({ query: 'vector(2.5e-300)', start: '100', end: '110', step: '10' })
      .expect(200);
    expect(range.body.data.result[0].values).toEqual([
      [100, '2.5e-300'],
      [110, '2.5e-300'],
    ]);
  });

  it('reads times and steps as Go does: leap days, halves away from zero, steps cut to the millisecond', async () => {
    const at = async (time: string) =>
      (await api(hot).get(`${API}/query`).query({ query: 'time()', time }).expect(200)).body.data.result;
    expect(await at('2024-02-29T12:00:00Z')).toEqual([1709208000, '1709208000']);
    expect(await at('2024-02-29T13:00:00+01:00')).toEqual([1709208000, '1709208000']);
    expect(await at('2024-01-01T00:00:00+24:00')).toEqual([1703980800, '1703980800']);
    expect(await at('2024-01-01T00:00:00.123987-00:30')).toEqual([1704069000.123, '1704069000.123']);
    expect(await at('-0.0005')).toEqual([-0.001, '-0.001']);
    expect(await at('0.0005')).toEqual([0.001, '0.001']);
    const range = await api(hot)
      .get(`${API}/query_range`)
      .query({ query: 'time()', start: '0', end: '6', step: '1.9999' })
      .expect(200);
    expect(range.body.data.result[0].values.map((v: [number, string]) => v[0])).toEqual([
      0, 1.999, 3.998, 5.997,
    ]);
  });

  it('evaluates at now without a time', async () => {
    const before = Date.now() / 1000;
    const res = await api(hot).get(`${API}/query`).query({ query: 'time()' }).expect(200);
    expect(res.body.data.resultType).toBe('scalar');
    expect(res.body.data.result[0]).toBeGreaterThanOrEqual(Math.floor(before));
  });

  it.each([
    [{ query: 'sum(' }, /^invalid parameter "query": 1:5: parse error/],
    [{}, /^invalid parameter "query": /],
    [
      { query: 'up', time: 'yesterday' },
      /^invalid parameter "time": Invalid time value for 'time': cannot parse "yesterday" to a valid timestamp$/,
    ],
    [
      { query: 'up', timeout: 'soon' },
      /^invalid parameter "timeout": cannot parse "soon" to a valid duration$/,
    ],
    [{ query: 'up{job=~"("}' }, /^invalid parameter "query": /],
    [
      { query: 'vector(1)', time: '1e308' },
      /^invalid parameter "time": Invalid time value for 'time': cannot parse "1e308" to a valid timestamp$/,
    ],
    [
      { query: 'up', timeout: '300y' },
      /^invalid parameter "timeout": cannot parse "300y" to a valid duration$/,
    ],
    // Times Go's time.Parse refuses, where Date.parse would roll them over (Prometheus 2.42: 400).
    ...['2024-02-30T00:00:00Z', '2023-02-29T00:00:00Z', '2024-01-01T24:00:00Z', '2024-01-01T00:00:60Z']
      .concat(['2024-01-01t00:00:00z', '2024-13-01T00:00:00Z', '2024-01-01T00:00:00+25:00', ' 100'])
      .map((time): [Record<string, string>, RegExp] => [
        { query: 'vector(1)', time },
        new RegExp(
          `^invalid parameter "time": Invalid time value for 'time': cannot parse "${time.replace(/[+.]/g, '\\$&')}" to a valid timestamp$`,
        ),
      ]),
    [
      { query: 'up', timeout: ' 10' },
      /^invalid parameter "timeout": cannot parse " 10" to a valid duration$/,
    ],
  ])('answers bad input %j with 400 bad_data naming it', async (params, message) => {
    const res = await api(hot).get(`${API}/query`).query(params).expect(400);
    expect(res.body).toEqual({
      status: 'error',
      errorType: 'bad_data',
      error: expect.stringMatching(message),
    });
  });

  it('answers a selector on a NUL, which nothing stored holds, with an empty vector', async () => {
    for (const query of [
      'DCGM_FI_DEV_GPU_UTIL{Hostname="\\x00"}',
      '{__name__="\\x00"}',
      'DCGM_FI_DEV_GPU_UTIL{Hostname="\u0000"}',
      'count(DCGM_FI_DEV_GPU_UTIL{gpu=~"\\x00|\\x00"})',
    ]) {
      const res = await api(compacted)
        .get(`${API}/query`)
        .query({ query, time: sec(DATASET_END_MS) })
        .expect(200);
      expect(res.body).toEqual({ status: 'success', data: { resultType: 'vector', result: [] } });
    }
  });

  it('answers an evaluation failure with 422 execution', async () => {
    const res = await api(hot)
      .get(`${API}/query`)
      .query({ query: 'DCGM_FI_DEV_GPU_UTIL + on(Hostname) DCGM_FI_DEV_GPU_TEMP', time: sec(DATASET_END_MS) })
      .expect(422);
    expect(res.body).toMatchObject({ status: 'error', errorType: 'execution' });
  });

  it('refuses a POST body that is not a form, or is too large, in the envelope', async () => {
    const json = await api(hot).post(`${API}/query`).send({ query: 'up' }).expect(415);
    expect(json.body).toMatchObject({
      status: 'error',
      errorType: 'bad_data',
      error: expect.stringMatching(/x-www-form-urlencoded/),
    });
    const large = await api(hot)
      .post(`${API}/query`)
      .type('form')
      .send(`query=${'x'.repeat(1024 * 1024 + 1)}`)
      .expect(413);
    expect(large.body).toMatchObject({ status: 'error', errorType: 'bad_data' });
  });

  it('needs the service credential', async () => {
    await request(hot.app).get(`${API}/query`).query({ query: 'up' }).expect(401);
  });
});

describe('GET and POST /v1/prometheus/api/v1/query_range', () => {
  it('takes step as seconds or as a duration', async () => {
    const params = {
      query: 'avg(DCGM_FI_DEV_GPU_TEMP)',
      start: sec(DATASET_START_MS),
      end: sec(DATASET_END_MS),
    };
    const seconds = await api(compacted)
      .get(`${API}/query_range`)
      .query({ ...params, step: '300' })
      .expect(200);
    const duration = await api(compacted)
      .get(`${API}/query_range`)
      .query({ ...params, step: '5m' })
      .expect(200);
    expect(seconds.body).toEqual(duration.body);
    expect(seconds.body.data.result[0].values).toHaveLength(25);
  });

  it.each([
    [{ start: 'x', end: '10', step: '1' }, /^invalid parameter "start": cannot parse "x"/],
    [{ start: '10', step: '1' }, /^invalid parameter "end": cannot parse ""/],
    [
      { start: '10', end: '5', step: '1' },
      /^invalid parameter "end": end timestamp must not be before start time$/,
    ],
    [
      { start: '0', end: '10', step: 'often' },
      /^invalid parameter "step": cannot parse "often" to a valid duration$/,
    ],
    [
      { start: '0', end: '10', step: '0' },
      /^invalid parameter "step": zero or negative query resolution step widths are not accepted/,
    ],
    [
      { start: '0', end: '10', step: '-15' },
      /^invalid parameter "step": zero or negative query resolution step widths are not accepted/,
    ],
    // A range query's parse error comes bare, as Prometheus 2 gives it (an instant query's names `query`).
    [{ start: '0', end: '10', step: '1', query: 'sum(' }, /^1:5: parse error: unclosed left parenthesis$/],
    [{ start: '1e308', end: '1e308', step: '1' }, /^invalid parameter "start": cannot parse "1e308"/],
    [{ start: '0', end: '1e308', step: '1' }, /^invalid parameter "end": cannot parse "1e308"/],
    [
      { start: '0', end: '10', step: '300y' },
      /^invalid parameter "step": cannot parse "300y" to a valid duration$/,
    ],
    [
      { start: '0', end: '10', step: `1${'0'.repeat(30)}y` },
      /^invalid parameter "step": cannot parse "10+y" to a valid duration$/,
    ],
    [{ start: '0', end: '11001', step: '1' }, /^exceeded maximum resolution of 11,000 points per timeseries/],
    [
      { start: '0', end: '10', step: '1', query: 'DCGM_FI_DEV_GPU_UTIL[5m]' },
      /^invalid expression type "range vector" for range query/,
    ],
  ])('answers %j with 400 bad_data', async (params, message) => {
    const res = await api(hot)
      .get(`${API}/query_range`)
      .query({ query: 'up', ...params })
      .expect(400);
    expect(res.body).toEqual({
      status: 'error',
      errorType: 'bad_data',
      error: expect.stringMatching(message),
    });
  });
});

describe('GET and POST /v1/prometheus/api/v1/series', () => {
  it('answers many overlapping and repeated match[] selectors with each series once, as one selector would', async () => {
    const one = await api(compacted)
      .get(`${API}/series`)
      .query({ 'match[]': 'DCGM_FI_DEV_GPU_UTIL' })
      .expect(200);
    expect(one.body.data.length).toBeGreaterThan(1);
    // Each selector matches every series of the one above; they are merged set by set.
    const sets = Array.from({ length: 120 }, (_, i) => `DCGM_FI_DEV_GPU_UTIL{job!="x${i % 60}"}`);
    const many = await api(compacted)
      .post(`${API}/series`)
      .type('form')
      .send(sets.map((set) => `match[]=${encodeURIComponent(set)}`).join('&'))
      .expect(200);
    expect(many.body.data).toEqual(one.body.data);
    const values = await api(compacted)
      .get(`${API}/label/Hostname/values`)
      .query(sets.map((set) => `match[]=${encodeURIComponent(set)}`).join('&'));
    expect(values.status).toBe(200);
    expect(values.body.data).toEqual(
      [...new Set(one.body.data.map((l: { Hostname: string }) => l.Hostname))].sort(),
    );
  });

  it('lists the series matching any match[] selector, with data in the range when one is given', async () => {
    const res = await api(compacted)
      .post(`${API}/series`)
      .type('form')
      .send(
        'match[]=DCGM_FI_DEV_GPU_UTIL{Hostname="host-3"}&match[]=dcgm_scrape_duration_seconds_count{Hostname="host-3"}',
      )
      .expect(200);
    expect(res.body.data).toHaveLength(5);
    expect(res.body.data[0]).toEqual({
      __name__: 'DCGM_FI_DEV_GPU_UTIL',
      DCGM_FI_DRIVER_VERSION: '535.129.03',
      GPU_I_ID: '0',
      GPU_I_PROFILE: '3g.40gb',
      Hostname: 'host-3',
      UUID: 'GPU-30000000-aaaa-bbbb-cccc-000000000030',
      device: 'nvidia0',
      gpu: '0',
      instance: 'host-3:9400',
      job: 'dcgm-exporter',
      modelName: 'NVIDIA A100-SXM4-40GB',
    });
    expect(res.body.data[4]).toEqual({
      __name__: 'dcgm_scrape_duration_seconds_count',
      Hostname: 'host-3',
      instance: 'host-3:9400',
      job: 'dcgm-exporter',
    });
    const later = await api(compacted)
      .get(`${API}/series`)
      .query({
        'match[]': 'DCGM_FI_DEV_GPU_UTIL{Hostname="host-3"}',
        start: sec(DATASET_END_MS + HOUR),
        end: sec(DATASET_END_MS + 2 * HOUR),
      })
      .expect(200);
    expect(later.body.data).toEqual([]);
  });

  it('finds no series for a matcher on a NUL, which nothing stored holds, and matches the rest', async () => {
    const series = async (...match: string[]) => {
      const res = await api(compacted).get(`${API}/series`).query({ 'match[]': match }).expect(200);
      return res.body.data as Record<string, string>[];
    };
    expect(await series('{job="\\x00"}')).toEqual([]);
    expect(await series('{__name__="\\x00"}', '{Hostname="\u0000"}')).toEqual([]);
    const host = await series('DCGM_FI_DEV_GPU_UTIL{Hostname="host-3"}');
    expect(host).toHaveLength(4);
    expect(await series('DCGM_FI_DEV_GPU_UTIL{Hostname=~"host-3|\\x00"}')).toEqual(host);
    expect(await series('DCGM_FI_DEV_GPU_UTIL{Hostname="host-3", job!="\\x00"}')).toEqual(host);
    expect(await series('DCGM_FI_DEV_GPU_UTIL{Hostname="host-3", job!~"\\x00"}')).toEqual(host);
    const start = sec(DATASET_START_MS);
    const labels = await api(compacted).get(`${API}/labels`).query({ 'match[]': '{job="\\x00"}', start });
    expect(labels.status).toBe(200);
    expect(labels.body.data).toEqual([]);
    const values = await api(compacted)
      .get(`${API}/label/gpu/values`)
      .query({ 'match[]': 'DCGM_FI_DEV_GPU_UTIL{Hostname=~"host-3|\\x00"}' });
    expect(values.status).toBe(200);
    expect(values.body.data).toEqual(['0', '1', '2', '3']);
  });

  it('cuts the list at limit, with a warning', async () => {
    const res = await api(hot)
      .get(`${API}/series`)
      .query({ 'match[]': 'DCGM_FI_DEV_GPU_UTIL', limit: '3' })
      .expect(200);
    expect(res.body.data).toHaveLength(3);
    expect(res.body.warnings).toEqual(['results truncated due to limit']);
  });

  it.each([
    [{}, /^no match\[\] parameter provided$/],
    [{ 'match[]': 'rate(x[5m])' }, /^invalid parameter "match\[\]": /],
    [{ 'match[]': '{job=~".*"}' }, /^invalid parameter "match\[\]": .*at least one non-empty matcher/],
    [{ 'match[]': 'up', limit: '-1' }, /^invalid parameter "limit": limit must be non-negative$/],
    [
      { 'match[]': 'up', limit: 'ten' },
      /^invalid parameter "limit": strconv.Atoi: parsing "ten": invalid syntax$/,
    ],
    [
      { 'match[]': 'up', limit: '99999999999999999999' },
      /^invalid parameter "limit": strconv.Atoi: parsing "99999999999999999999": value out of range$/,
    ],
    [
      { 'match[]': 'up', start: '1e308' },
      /^invalid parameter "start": Invalid time value for 'start': cannot parse "1e308"/,
    ],
    [
      { 'match[]': 'up', end: '-1e308' },
      /^invalid parameter "end": Invalid time value for 'end': cannot parse "-1e308"/,
    ],
    // The limit is read first, then the times, then the selectors.
    [{ 'match[]': 'up{', limit: 'x', start: 'y' }, /^invalid parameter "limit"/],
    [{ 'match[]': 'up{', start: 'y' }, /^invalid parameter "start"/],
    [{ 'match[]': 'up', timeout: 'soon' }, /^invalid parameter "timeout": cannot parse "soon"/],
  ])('answers %j with 400 bad_data', async (params, message) => {
    const res = await api(hot).get(`${API}/series`).query(params).expect(400);
    expect(res.body).toEqual({
      status: 'error',
      errorType: 'bad_data',
      error: expect.stringMatching(message),
    });
  });
});

describe('times of the first century', () => {
  it.each([
    ['0099-12-31T23:59:59Z', -59_011_459_201],
    ['0001-01-01T00:00:00Z', -62_135_596_800],
    ['0000-02-29T12:00:00+01:00', -62_162_082_000],
  ])('reads %s in its own year, not 1900 years on', async (time, seconds) => {
    const res = await api(hot).get(`${API}/query`).query({ query: 'time()', time }).expect(200);
    expect(res.body.data.result[0]).toBe(seconds);
  });
});

describe('label names and values', () => {
  it.each([`${API}/labels`, `${API}/label/job/values`])(
    'gives a selector parse error of %s bare, as Prometheus does (a series query names match[])',
    async (path) => {
      const res = await api(hot).get(path).query({ 'match[]': 'up{' }).expect(400);
      expect(res.body).toEqual({
        status: 'error',
        errorType: 'bad_data',
        error: '1:4: parse error: unexpected end of input inside braces',
      });
      const limit = await api(hot).get(path).query({ 'match[]': 'up', limit: '+2' }).expect(200);
      expect(limit.body.status).toBe('success');
      const negative = await api(hot).get(path).query({ limit: '-0' }).expect(200);
      expect(negative.body.status).toBe('success');
    },
  );

  it('refuses a label name that is not percent-encoded UTF-8 as bad data, as Prometheus does', async () => {
    for (const name of ['%ff', '%ZZ', '%E0%A4%A']) {
      const res = await api(hot).get(`${API}/label/${name}/values`).expect(400);
      expect(res.body).toEqual({
        status: 'error',
        errorType: 'bad_data',
        error: `invalid label name: "${name}" is not percent-encoded UTF-8`,
      });
    }
  });

  it('lists every label name, and those of the series matching match[]', async () => {
    const all = await api(hot).get(`${API}/labels`).expect(200);
    expect(all.body.data).toEqual([
      'DCGM_FI_DRIVER_VERSION',
      'GPU_I_ID',
      'GPU_I_PROFILE',
      'Hostname',
      'UUID',
      '__name__',
      'device',
      'gpu',
      'instance',
      'job',
      'le',
      'modelName',
    ]);
    const histogram = await api(hot)
      .post(`${API}/labels`)
      .type('form')
      .send({ 'match[]': 'dcgm_scrape_duration_seconds_bucket' })
      .expect(200);
    expect(histogram.body.data).toEqual(['Hostname', '__name__', 'instance', 'job', 'le']);
  });

  it('lists the values of a label, metric names for __name__', async () => {
    const hosts = await api(compacted).get(`${API}/label/Hostname/values`).expect(200);
    expect(hosts.body.data).toEqual(['host-0', 'host-1', 'host-2', 'host-3']);
    const names = await api(compacted).get(`${API}/label/__name__/values`).expect(200);
    expect(names.body.data).toHaveLength(20 + 3);
    expect(names.body.data).toContain('DCGM_FI_DEV_GPU_UTIL');
    const profiles = await api(compacted).get(`${API}/label/GPU_I_PROFILE/values`).expect(200);
    expect(profiles.body.data).toEqual(['3g.40gb']);
    const gpus = await api(compacted)
      .get(`${API}/label/gpu/values`)
      .query({ 'match[]': 'DCGM_FI_DEV_GPU_UTIL{Hostname="host-1"}', limit: '2' })
      .expect(200);
    expect(gpus.body).toEqual({
      status: 'success',
      data: ['0', '1'],
      warnings: ['results truncated due to limit'],
    });
    const none = await api(compacted).get(`${API}/label/nope/values`).expect(200);
    expect(none.body.data).toEqual([]);
  });

  it('leaves out, given a start, what only series unseen for a day before it have (as Grafana asks for its variables)', async () => {
    const pool = compacted.database.pool;
    await pool.query(
      `UPDATE telemetry_series SET last_seen = now() - interval '10 days' WHERE prom_labels->>'Hostname' = 'host-3'`,
    );
    try {
      const hourAgo = String(Math.floor(Date.now() / 1000) - 3600);
      const hosts = await api(compacted)
        .get(`${API}/label/Hostname/values`)
        .query({ start: hourAgo })
        .expect(200);
      expect(hosts.body.data).toEqual(['host-0', 'host-1', 'host-2']);
      // Seen ten days ago counts for a range from eleven days ago; and without a start, everything.
      const elevenDaysAgo = String(Math.floor(Date.now() / 1000) - 11 * 86_400);
      const older = await api(compacted).get(`${API}/label/Hostname/values`).query({ start: elevenDaysAgo });
      expect(older.body.data).toEqual(['host-0', 'host-1', 'host-2', 'host-3']);
      const all = await api(compacted).get(`${API}/label/Hostname/values`).expect(200);
      expect(all.body.data).toEqual(['host-0', 'host-1', 'host-2', 'host-3']);
      // Names and metric names: those of the other hosts' series, as match[] finds them.
      const others = async (path: string) =>
        (
          await api(compacted)
            .get(`${API}${path}`)
            .query({ 'match[]': '{__name__=~".+",Hostname!="host-3"}' })
        ).body.data;
      const names = await api(compacted).get(`${API}/labels`).query({ start: hourAgo }).expect(200);
      expect(names.body.data).toEqual(await others('/labels'));
      const metrics = await api(compacted)
        .get(`${API}/label/__name__/values`)
        .query({ start: hourAgo })
        .expect(200);
      expect(metrics.body.data).toEqual(await others('/label/__name__/values'));
      expect(metrics.body.data.length).toBeGreaterThan(0);
    } finally {
      await pool.query(
        `UPDATE telemetry_series SET last_seen = now() WHERE prom_labels->>'Hostname' = 'host-3'`,
      );
    }
  });

  it('refuses a label name that is not one', async () => {
    const res = await api(hot)
      .get(`${API}/label/${encodeURIComponent('a-b')}/values`)
      .expect(400);
    expect(res.body).toEqual({ status: 'error', errorType: 'bad_data', error: 'invalid label name: "a-b"' });
  });
});

describe("the order of names and values: Go's, by UTF-8 bytes", () => {
  it('lists metric names and label values as Prometheus sorts them, whatever the database collation', async () => {
    const app = await startStreamerTestApp({ config });
    try {
      const now = Date.now();
      const values = ['b', 'B', '\u00e9', '\uFF21', '\u{1F600}', 'b_c', 'bc'];
      await storeSeries(
        { ingest: app.ingest, pool: app.database.pool },
        ['zeta_order', 'Zeta_order', 'alpha_order', 'Alpha_order', 'a_order'].flatMap((metric) =>
          values.map((probe) => ({
            labels: { __name__: metric, probe },
            timestamps: [now - 60_000],
            values: Float64Array.of(1),
          })),
        ),
      );
      const goOrder = (list: string[]) =>
        [...list].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
      // Without match[], names and values are listed by the database: this part tells the fix from
      // its absence only where the database sorts by a locale (en_US); under C it sorts as Go does
      // anyway. With match[], and in a range query, the order is made here, on any database.
      const names = await api(app).get(`${API}/label/__name__/values`).expect(200);
      expect(names.body.data).toEqual(['Alpha_order', 'Zeta_order', 'a_order', 'alpha_order', 'zeta_order']);
      const probes = await api(app).get(`${API}/label/probe/values`).expect(200);
      expect(probes.body.data).toEqual(goOrder(values));
      expect(probes.body.data.slice(-2)).toEqual(['\uFF21', '\u{1F600}']);
      // The same order given match[] (worked out here, not by the database) and in a range query's series.
      const matched = await api(app)
        .get(`${API}/label/probe/values`)
        .query({ 'match[]': 'a_order' })
        .expect(200);
      expect(matched.body.data).toEqual(goOrder(values));
      const range = await api(app)
        .get(`${API}/query_range`)
        .query({ query: 'a_order', start: sec(now - 120_000), end: sec(now), step: '60' })
        .expect(200);
      expect(range.body.data.result.map((r: { metric: { probe: string } }) => r.metric.probe)).toEqual(
        goOrder(values),
      );
    } finally {
      await app.close();
    }
  });
});

describe('metadata and build information', () => {
  it('lists what exporters said of each metric, the latest word standing; says which Prometheus it answers like', async () => {
    const local = await startStreamerTestApp();
    try {
      expect((await api(local).get(`${API}/metadata`).expect(200)).body).toEqual({
        status: 'success',
        data: {},
      });
      const temp = {
        metric: 'DCGM_FI_DEV_GPU_TEMP',
        type: 'gauge',
        help: 'GPU temperature (in C).',
        unit: '',
      };
      const xid = {
        metric: 'DCGM_FI_DEV_XID_ERRORS',
        type: 'gauge',
        help: 'Value of the last XID error.',
        unit: '',
      };
      const energy = {
        metric: 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION',
        type: 'counter',
        help: 'old',
        unit: '',
      };
      expect(
        await local.ingest.handle([
          metadataMessage([temp, energy]),
          metadataMessage([xid, { ...energy, help: 'Total energy consumption since boot (in mJ).' }]),
        ]),
      ).toEqual({ failed: [] });
      const all = await api(local).get(`${API}/metadata`).expect(200);
      expect(all.body).toEqual({
        status: 'success',
        data: {
          DCGM_FI_DEV_GPU_TEMP: [{ type: 'gauge', help: 'GPU temperature (in C).', unit: '' }],
          DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: [
            { type: 'counter', help: 'Total energy consumption since boot (in mJ).', unit: '' },
          ],
          DCGM_FI_DEV_XID_ERRORS: [{ type: 'gauge', help: 'Value of the last XID error.', unit: '' }],
        },
      });
      const one = await api(local)
        .get(`${API}/metadata`)
        .query({ metric: 'DCGM_FI_DEV_XID_ERRORS' })
        .expect(200);
      expect(Object.keys(one.body.data)).toEqual(['DCGM_FI_DEV_XID_ERRORS']);
      const nul = await api(local).get(`${API}/metadata`).query({ metric: 'DCGM_FI_DEV_XID_ERRORS\u0000' });
      expect(nul.status).toBe(200);
      expect(nul.body).toEqual({ status: 'success', data: {} });
      expect((await api(local).get(`${API}/metadata`).query({ limit: 2 }).expect(200)).body.data).toEqual({
        DCGM_FI_DEV_GPU_TEMP: expect.any(Array),
        DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION: expect.any(Array),
      });
      expect((await api(local).get(`${API}/metadata`).query({ limit: 0 }).expect(200)).body.data).toEqual({});
      expect(
        Object.keys((await api(local).get(`${API}/metadata`).query({ limit: -1 }).expect(200)).body.data),
      ).toHaveLength(3);
      expect(
        Object.keys(
          (await api(local).get(`${API}/metadata`).query({ limit: '99999999999' }).expect(200)).body.data,
        ),
      ).toHaveLength(3);
      await api(local)
        .get(`${API}/metadata`)
        .query({ limit: '9'.repeat(40) })
        .expect(400);
      expect(
        Object.keys((await api(local).get(`${API}/metadata`).query({ limit: '+1' }).expect(200)).body.data),
      ).toEqual(['DCGM_FI_DEV_GPU_TEMP']);
      await api(local).get(`${API}/metadata`).query({ limit_per_metric: 'x' }).expect(200);
      const bad = await api(local).get(`${API}/metadata`).query({ limit: 'x' }).expect(400);
      expect(bad.body).toMatchObject({ errorType: 'bad_data', error: expect.stringContaining('limit') });

      // A message with a type Prometheus does not know goes to the dead letters, naming the field.
      const result = await local.ingest.handle([metadataMessage([{ ...temp, type: 'thermometer' }])]);
      expect(result.failed).toEqual([
        expect.objectContaining({ deadLetter: true, reason: expect.stringContaining('metadata[0].type') }),
      ]);
      const metrics = await api(local).get('/metrics').expect(200);
      // Three metrics stored: the two words on the energy counter in one batch are one row.
      expect(metrics.text).toMatch(/^streamer_metadata_updated_total\{[^}]*\} 3$/m);
      const info = await api(local).get(`${API}/status/buildinfo`).expect(200);
      expect(info.body.data.version).toBe('2.42.0');
    } finally {
      await local.close();
    }
  });
});

describe('what Grafana asks beyond queries: exemplars, rules and alerts', () => {
  it('answers as a Prometheus without exemplars or rules does, GET and POST where Prometheus takes both', async () => {
    const query = 'rate(DCGM_FI_PROF_PCIE_TX_BYTES[5m])';
    expect(
      (await api(hot).get(`${API}/query_exemplars`).query({ query, start: '0', end: '60' }).expect(200)).body,
    ).toEqual({ status: 'success', data: [] });
    expect(
      (await api(hot).post(`${API}/query_exemplars`).type('form').send({ query }).expect(200)).body,
    ).toEqual({ status: 'success', data: [] });
    expect((await api(hot).get(`${API}/rules`).expect(200)).body).toEqual({
      status: 'success',
      data: { groups: [] },
    });
    expect((await api(hot).get(`${API}/rules?type=ALERT`).expect(200)).body.data).toEqual({ groups: [] });
    expect((await api(hot).get(`${API}/alerts`).expect(200)).body).toEqual({
      status: 'success',
      data: { alerts: [] },
    });
  });

  it('refuses what Prometheus refuses, in its words', async () => {
    const refused = async (url: string, error: string) => {
      const res = await api(hot).get(url).expect(400);
      expect(res.body).toEqual({ status: 'error', errorType: 'bad_data', error });
    };
    await refused(`${API}/query_exemplars?query=1%20%2B`, '1:4: parse error: unexpected end of input');
    await refused(`${API}/query_exemplars`, '1:1: parse error: no expression found in input');
    await refused(
      `${API}/query_exemplars?query=up&start=10&end=5`,
      'end timestamp must not be before start timestamp',
    );
    await refused(
      `${API}/query_exemplars?query=up&start=yesterday`,
      `invalid parameter "start": Invalid time value for 'start': cannot parse "yesterday" to a valid timestamp`,
    );
    await refused(`${API}/rules?type=x`, 'invalid parameter "type": not supported value "x"');
  });
});

describe('hostile input', () => {
  it('answers any parameters with a success or a 4xx in the envelope, never a 5xx', async () => {
    const text = fc.oneof(
      fc.string({ maxLength: 30 }),
      fc.constantFrom(
        '1e309',
        'NaN',
        '-1',
        '0',
        '9'.repeat(40),
        '{',
        '"',
        'up{',
        'x[5m]',
        '2024-06-03T00:00:00Z',
      ),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('query', 'query_range', 'series', 'labels', 'label/job/values', 'metadata'),
        fc.record(
          { query: text, time: text, start: text, end: text, step: text, 'match[]': text, limit: text },
          { requiredKeys: [] },
        ),
        async (endpoint, params) => {
          const res = await api(hot).get(`${API}/${endpoint}`).query(params);
          expect(res.status === 200 || (res.status >= 400 && res.status < 500)).toBe(true);
          expect(res.body.status).toBe(res.status === 200 ? 'success' : 'error');
        },
      ),
      { numRuns: 120 },
    );
  });
  it('answers at the ends of time (years 1 and 9999) without a 5xx', async () => {
    for (const time of ['253402300800', '253402300799.999', '-62135596800', '-62135600000']) {
      for (const query of ['up', 'count_over_time(up[1h])', 'max_over_time(DCGM_FI_DEV_GPU_TEMP[1d])']) {
        const res = await api(hot).get(`${API}/query`).query({ query, time });
        expect({ query, time, status: res.status }).toEqual({ query, time, status: 200 });
        expect(res.body.data.result).toEqual([]);
      }
    }
    const range = await api(hot)
      .get(`${API}/query_range`)
      .query({ query: 'sum(DCGM_FI_DEV_GPU_TEMP)', start: '253402290000', end: '253402300800', step: '1h' });
    expect(range.status).toBe(200);
    // Label lists and series with a start or end past any date (Prometheus reads them as seconds).
    for (const endpoint of ['labels', 'label/job/values', 'label/__name__/values', 'series'])
      for (const [start, end] of [
        ['9'.repeat(40), undefined],
        [`-${'9'.repeat(40)}`, '9'.repeat(40)],
        ['253402300800', undefined],
      ]) {
        const res = await api(hot)
          .get(`${API}/${endpoint}`)
          .query({
            ...(endpoint === 'series' ? { 'match[]': 'DCGM_FI_DEV_GPU_TEMP' } : {}),
            start,
            ...(end ? { end } : {}),
          });
        expect({ endpoint, start, status: res.status }).toEqual({ endpoint, start, status: 200 });
      }
  });

  it('reads a long run of letters or digits in one pass: answered in well under a second', async () => {
    // Each is just under the 1 MiB form limit. A pattern that tried every split of the run would
    // hold the event loop for minutes: the request would time out and /healthz with it.
    const run = 1024 * 1024 - 100;
    const cases: [string, number][] = [
      [`query=${'x'.repeat(run)}`, 200], // a metric name nothing stored has
      [`query=${'sum('.repeat(8)}${'a'.repeat(run)}`, 400],
      [`query=up&time=${'1'.repeat(run)}x`, 400],
      [`query=up&start=0&end=1&step=${'1'.repeat(run)}x`, 400],
    ];
    for (const [body, status] of cases) {
      const endpoint = body.includes('step=') ? 'query_range' : 'query';
      const started = performance.now();
      const res = await api(hot)
        .post(`${API}/${endpoint}`)
        .set('content-type', 'application/x-www-form-urlencoded')
        .send(body);
      expect(performance.now() - started).toBeLessThan(5_000);
      expect(res.status).toBe(status);
      expect(res.body.status).toBe(status === 200 ? 'success' : 'error');
      if (status === 200) expect(res.body.data.result).toEqual([]);
      else expect(res.body.errorType).toBe('bad_data');
    }
    await api(hot).get('/healthz').expect(200);
  });
});

describe('limits', () => {
  let limited: TestApp;

  beforeAll(async () => {
    limited = await startStreamerTestApp({
      config: { ...config, PROMQL_MAX_SAMPLES: 1_000, PROMQL_MAX_SERIES: 10, PROMQL_MAX_CONCURRENCY: 1 },
    });
    await storeSeries({ ingest: limited.ingest, pool: limited.database.pool }, data);
  }, 60_000);

  afterAll(async () => {
    await limited?.close();
  });

  it('answers 422 execution past the samples budget (PROMQL_MAX_SAMPLES)', async () => {
    // Four series at 481 steps hold 1,924 samples.
    const res = await api(limited)
      .get(`${API}/query_range`)
      .query({
        query: 'DCGM_FI_DEV_GPU_UTIL{Hostname="host-0"}',
        start: sec(DATASET_START_MS),
        end: sec(DATASET_END_MS),
        step: '15',
      })
      .expect(422);
    expect(res.body).toEqual({
      status: 'error',
      errorType: 'execution',
      error: 'query processing would load too many samples into memory in query execution',
    });
  });

  it('answers 422 execution when a selector would touch more than PROMQL_MAX_SERIES series', async () => {
    const query = await api(limited)
      .get(`${API}/query`)
      .query({ query: 'DCGM_FI_DEV_GPU_UTIL', time: sec(DATASET_END_MS) })
      .expect(422);
    expect(query.body).toMatchObject({
      errorType: 'execution',
      error: expect.stringMatching(/more than 10 series \(PROMQL_MAX_SERIES\)/),
    });
    const series = await api(limited)
      .get(`${API}/series`)
      .query({ 'match[]': '{Hostname=~"host-[01]"}' })
      .expect(422);
    expect(series.body).toMatchObject({ errorType: 'execution' });
    await api(limited)
      .get(`${API}/query`)
      .query({ query: 'DCGM_FI_DEV_GPU_UTIL{Hostname="host-0"}', time: sec(DATASET_END_MS) })
      .expect(200);
  });

  it("answers 422 execution when a query's selectors would hold more than 4 x PROMQL_MAX_SERIES series in all", async () => {
    // Four GPUs a host: ten selectors of one host's GPUs hold 40 series, eleven 44 (the limit is 40).
    const selectors = ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_POWER_USAGE'].flatMap(
      (m) => ['host-0', 'host-1', 'host-2', 'host-3'].map((h) => `count(${m}{Hostname="${h}"})`),
    );
    const ask = (n: number) =>
      api(limited)
        .post(`${API}/query`)
        .type('form')
        .send({ query: selectors.slice(0, n).join(' + '), time: sec(DATASET_END_MS) });
    const over = await ask(11).expect(422);
    expect(over.body).toEqual({
      status: 'error',
      errorType: 'execution',
      error:
        "the query's selectors would touch more than 40 series in all (4 x PROMQL_MAX_SERIES); ask fewer selectors at once",
    });
    // A selector asked twice is held once.
    await ask(10).expect(200);
    await api(limited)
      .post(`${API}/query`)
      .type('form')
      .send({ query: [...selectors.slice(0, 10), selectors[0]].join(' + '), time: sec(DATASET_END_MS) })
      .expect(200);
  });

  it('refuses a regular expression past 16 Ki characters that is not a list of values, and takes a longer list', async () => {
    const pattern = Array.from({ length: 3_000 }, (_, i) => `.*h${i}.*`).join('|');
    const res = await api(limited)
      .post(`${API}/query`)
      .type('form')
      .send({ query: `DCGM_FI_DEV_GPU_UTIL{Hostname=~"${pattern}"}`, time: sec(DATASET_END_MS) })
      .expect(400);
    expect(res.body).toMatchObject({
      status: 'error',
      errorType: 'bad_data',
      error: expect.stringContaining(
        'error parsing regexp: regular expression longer than 16384 characters (only a list of literal values may be longer)',
      ),
    });
    const hosts = ['host-0', ...Array.from({ length: 3_000 }, (_, i) => `other-${i}`)].join('|');
    const list = await api(limited)
      .post(`${API}/query`)
      .type('form')
      .send({ query: `count(DCGM_FI_DEV_GPU_UTIL{Hostname=~"(${hosts})"})`, time: sec(DATASET_END_MS) })
      .expect(200);
    expect(list.body.data.result).toHaveLength(1);
  });

  it('takes lookback_delta for one query, as Prometheus 2.45 and later do, and refuses one it cannot read', async () => {
    // The data set's last samples are 15 s apart: 90 s after its end, the default 5 m still finds them.
    const at = sec(DATASET_END_MS + 90_000);
    const instant = (extra: Record<string, string>) =>
      api(limited)
        .get(`${API}/query`)
        .query({ query: 'DCGM_FI_DEV_GPU_UTIL{Hostname="host-0"}', time: at, ...extra });
    expect((await instant({}).expect(200)).body.data.result.length).toBeGreaterThan(0);
    expect((await instant({ lookback_delta: '1m' }).expect(200)).body.data.result).toEqual([]);
    expect((await instant({ lookback_delta: '0' }).expect(200)).body.data.result.length).toBeGreaterThan(0);
    const range = await api(limited)
      .get(`${API}/query_range`)
      .query({
        query: 'DCGM_FI_DEV_GPU_UTIL{Hostname="host-0"}',
        start: at,
        end: at,
        step: '15s',
        lookback_delta: '60',
      })
      .expect(200);
    expect(range.body.data.result).toEqual([]);
    expect((await instant({ lookback_delta: 'abc' }).expect(400)).body).toEqual({
      status: 'error',
      errorType: 'bad_data',
      error: 'error parsing lookback delta duration: cannot parse "abc" to a valid duration',
    });
  });

  it('answers 503 timeout when the timeout parameter has run out', async () => {
    const res = await api(limited)
      .get(`${API}/query`)
      .query({ query: 'DCGM_FI_DEV_GPU_UTIL{Hostname="host-0"}', time: sec(DATASET_END_MS), timeout: '0s' })
      .expect(503);
    expect(res.body).toEqual({
      status: 'error',
      errorType: 'timeout',
      error: 'query timed out in expression evaluation',
    });
  });

  it('queues queries past PROMQL_MAX_CONCURRENCY, and times out one that waits too long', async () => {
    // Hold the only turn: a query whose series lookup waits behind a lock this test holds.
    const locker = await limited.database.pool.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE telemetry_series IN ACCESS EXCLUSIVE MODE');
    const first = api(limited)
      .get(`${API}/query`)
      .query({ query: 'DCGM_FI_DEV_GPU_UTIL{Hostname="host-1"}', time: sec(DATASET_END_MS) })
      .then((r) => r);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const waiting = await api(limited)
      .get(`${API}/query`)
      .query({ query: 'vector(1)', timeout: '300ms' })
      .expect(503);
    expect(waiting.body).toEqual({
      status: 'error',
      errorType: 'timeout',
      error: 'query timed out in query queue',
    });
    await locker.query('ROLLBACK');
    locker.release();
    expect((await first).status).toBe(200);
    await api(limited).get(`${API}/query`).query({ query: 'vector(1)' }).expect(200);
  });

  it('answers 503 timeout when a statement runs past the query timeout', async () => {
    const locker = await limited.database.pool.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE telemetry_series IN ACCESS EXCLUSIVE MODE');
    const res = await api(limited)
      .get(`${API}/query`)
      .query({
        query: 'DCGM_FI_DEV_GPU_UTIL{Hostname="host-1"}',
        time: sec(DATASET_END_MS),
        timeout: '300ms',
      });
    await locker.query('ROLLBACK');
    locker.release();
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ errorType: 'timeout' });
  });

  it.each(['/series', '/labels', '/label/gpu/values'])(
    'answers 503 timeout when %s runs past the timeout parameter',
    async (path) => {
      const locker = await limited.database.pool.connect();
      await locker.query('BEGIN');
      await locker.query('LOCK TABLE telemetry_series IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      const res = await api(limited)
        .get(`${API}${path}`)
        .query({ 'match[]': 'DCGM_FI_DEV_GPU_UTIL{Hostname="host-1"}', timeout: '300ms' });
      const took = Date.now() - started;
      await locker.query('ROLLBACK');
      locker.release();
      expect(res.status).toBe(503);
      expect(res.body).toEqual({
        status: 'error',
        errorType: 'timeout',
        error: 'query timed out in expression evaluation',
      });
      expect(took).toBeLessThan(5_000);
    },
  );
});
