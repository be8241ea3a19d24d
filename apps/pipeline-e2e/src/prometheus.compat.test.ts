import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import {
  type ApiAnswer,
  COMPAT_QUERIES,
  compareAnswers,
  DATASET_END_MS,
  generateDataset,
  INSTANT_TIMES,
  type PrometheusServer,
  RANGE_CASES,
  remoteWriteDataset,
  startPrometheus,
} from '@gpu-telemetry/promql/compat';
import { compactChunks, storeSeries } from '@gpu-telemetry/streamer/testing';
import { startSystem, type System } from './pipeline';

/**
 * The compatibility table at the HTTP level: the same data set is remote-written to a real
 * Prometheus and stored in the system's storage (series through the streamer's write queries,
 * samples as hot rows, the first hour compacted into blocks and rollups), then every expression
 * is asked of Prometheus' /api/v1/query(_range) and of the gateway's /prometheus/api/v1/query(_range)
 * with a read key, as instant and range queries. Series, labels and values must match (floats
 * within a relative 1e-9), and every gateway answer must match the OpenAPI document it serves.
 * promtool (of the same Debian package, or PROMTOOL_BIN) queries the gateway too.
 */
const ADMIN = 'compat-bootstrap-admin-key-0123456789abcdef';
let prometheus: PrometheusServer;
let system: System;
let key: string;

beforeAll(async () => {
  prometheus = await startPrometheus();
  const data = generateDataset();
  await remoteWriteDataset(`${prometheus.url}/api/v1/write`, data);
  system = await startSystem({ hosts: 1, gpusPerHost: 1, adminKey: ADMIN });
  const chunks = await storeSeries(
    { ingest: system.streamer.ingest, pool: system.pipeline.database.pool },
    data,
  );
  await compactChunks(system.streamer.compactor, chunks.slice(0, 1));
  const res = await fetch(`${system.url}/api/v1/keys`, {
    method: 'POST',
    headers: { 'x-api-key': ADMIN, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'grafana', scopes: ['read'] }),
  });
  key = ((await res.json()) as { key: string }).key;
}, 120_000);

afterEach(() => system?.responses.assertNone());

afterAll(async () => {
  await system?.close();
  await prometheus?.stop();
});

async function ask(
  base: string,
  path: string,
  params: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<ApiAnswer> {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(params).toString(),
  });
  return (await res.json()) as ApiAnswer;
}

const theirs = (path: string, params: Record<string, string>) =>
  ask(prometheus.url, `/api/v1/${path}`, params);
const mine = (path: string, params: Record<string, string>) =>
  ask(system.url, `/prometheus/api/v1/${path}`, params, { authorization: `Bearer ${key}` });

it('holds the same series in both', async () => {
  const params = { query: 'count({__name__=~".+"})', time: String(DATASET_END_MS / 1000) };
  const expected = await theirs('query', params);
  expect(expected.status).toBe('success');
  expect(compareAnswers(expected, await mine('query', params))).toEqual([]);
});

it('answers promtool, which sends the key as the password of the URL', async () => {
  const url = new URL(`${system.url}/prometheus`);
  url.username = 'promtool';
  url.password = key;
  const time = String(DATASET_END_MS / 1000);
  // Asynchronously: the gateway it asks answers from this process.
  const { stdout, stderr } = await promisify(execFile)(
    process.env['PROMTOOL_BIN'] ?? 'promtool',
    ['query', 'instant', `--time=${time}`, url.toString(), 'count by (Hostname) (DCGM_FI_DEV_GPU_UTIL)'],
    { encoding: 'utf8', timeout: 30_000 },
  );
  expect(stderr).toBe('');
  expect(stdout.trim().split('\n').sort()).toEqual([
    `{Hostname="host-0"} => 4 @[${time}]`,
    `{Hostname="host-1"} => 4 @[${time}]`,
    `{Hostname="host-2"} => 4 @[${time}]`,
    `{Hostname="host-3"} => 3 @[${time}]`,
  ]);
});

describe.each(COMPAT_QUERIES.map((c) => [c.query, c] as const))('%s', (_name, c) => {
  it.each(INSTANT_TIMES.map((t) => [new Date(t).toISOString(), t] as const))(
    'instant at %s',
    async (_iso, t) => {
      const params = { query: c.query, time: String(t / 1000) };
      expect(
        compareAnswers(await theirs('query', params), await mine('query', params), { ordered: c.ordered }),
      ).toEqual([]);
    },
  );

  it.each(RANGE_CASES)('range %s', async (_label, start, end, step) => {
    const params = {
      query: c.query,
      start: String(start / 1000),
      end: String(end / 1000),
      step: String(step / 1000),
    };
    expect(compareAnswers(await theirs('query_range', params), await mine('query_range', params))).toEqual(
      [],
    );
  });
});
