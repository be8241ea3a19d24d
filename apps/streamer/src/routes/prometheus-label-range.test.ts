import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { compactChunks, type PromSeries, storeSeries } from '../testing/prometheus-data';
import { startStreamerTestApp } from '../testing/streamer-test-app';

/**
 * `labels` and `label/<name>/values` over a time range, with and without `match[]`: as Prometheus
 * answers them, the names and values of the series with samples in [start, end], whichever of the
 * two is given. One series has samples only three days ago (compacted into blocks), one only in
 * the last hour (hot rows), one in both; all three were stored just now, as a backfill stores them.
 */
type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
const API = '/v1/prometheus/api/v1';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const now = Date.now();
const oldStart = Math.floor((now - 3 * 24 * HOUR) / HOUR) * HOUR + 10 * MINUTE;
const OLD = { start: oldStart - 5 * MINUTE, end: oldStart + 30 * MINUTE };
const RECENT = { start: now - HOUR, end: now };
let app: TestApp;

/** Samples every 15 s over [from, to). */
function series(labels: Record<string, string>, ...windows: [from: number, to: number][]): PromSeries {
  const timestamps = windows.flatMap(([from, to]) =>
    Array.from({ length: Math.floor((to - from) / 15_000) }, (_, i) => from + i * 15_000),
  );
  return { labels, timestamps, values: Float64Array.from(timestamps, (_, i) => i) };
}

beforeAll(async () => {
  app = await startStreamerTestApp();
  const old: [number, number] = [oldStart, oldStart + 20 * MINUTE];
  const recent: [number, number] = [now - 40 * MINUTE, now - 10 * MINUTE];
  const chunks = await storeSeries({ ingest: app.ingest, pool: app.database.pool }, [
    series({ __name__: 'gpu_old', Hostname: 'host-old', job: 'dcgm', rack: 'r7' }, old),
    series({ __name__: 'gpu_recent', Hostname: 'host-new', job: 'dcgm', slot: 's2' }, recent),
    series({ __name__: 'gpu_both', Hostname: 'host-both', job: 'dcgm' }, old, recent),
  ]);
  await compactChunks(
    app.compactor,
    chunks.filter((c) => c.end <= oldStart + HOUR),
  );
}, 60_000);

afterAll(async () => {
  await app?.close();
});

const sec = (ms: number) => String(ms / 1000);

/** What `path` lists with these parameters. */
async function listed(path: string, params: Record<string, string>): Promise<string[]> {
  const res = await request(asService(app.app)).get(`${API}${path}`).query(params).expect(200);
  expect(res.body.status).toBe('success');
  return res.body.data as string[];
}

const OLD_ANSWERS = {
  '/labels': ['Hostname', '__name__', 'job', 'rack'],
  '/label/Hostname/values': ['host-both', 'host-old'],
  '/label/__name__/values': ['gpu_both', 'gpu_old'],
  '/label/rack/values': ['r7'],
  '/label/slot/values': [],
};
const RECENT_ANSWERS = {
  '/labels': ['Hostname', '__name__', 'job', 'slot'],
  '/label/Hostname/values': ['host-both', 'host-new'],
  '/label/__name__/values': ['gpu_both', 'gpu_recent'],
  '/label/rack/values': [],
  '/label/slot/values': ['s2'],
};
const PATHS = Object.keys(OLD_ANSWERS) as (keyof typeof OLD_ANSWERS)[];

describe.each([
  ['without match[]', {}],
  ['with match[]', { 'match[]': '{job="dcgm"}' }],
])('label names and values over a range, %s', (_name, match: Record<string, string>) => {
  it.each(PATHS)('lists for %s only the series with samples in [start, end]', async (path) => {
    const old = { ...match, start: sec(OLD.start), end: sec(OLD.end) };
    expect(await listed(path, old)).toEqual(OLD_ANSWERS[path]);
    const recent = { ...match, start: sec(RECENT.start), end: sec(RECENT.end) };
    expect(await listed(path, recent)).toEqual(RECENT_ANSWERS[path]);
  });

  it.each(PATHS)('bounds %s by end alone, and by start alone', async (path) => {
    expect(await listed(path, { ...match, end: sec(OLD.end) })).toEqual(OLD_ANSWERS[path]);
    expect(await listed(path, { ...match, start: sec(RECENT.start) })).toEqual(RECENT_ANSWERS[path]);
  });

  it('lists nothing for a range without samples, and everything without a range', async () => {
    const empty = { ...match, start: sec(now - 2 * 24 * HOUR), end: sec(now - 24 * HOUR) };
    for (const path of PATHS) expect(await listed(path, empty)).toEqual([]);
    expect(await listed('/labels', match)).toEqual(['Hostname', '__name__', 'job', 'rack', 'slot']);
    expect(await listed('/label/__name__/values', match)).toEqual(['gpu_both', 'gpu_old', 'gpu_recent']);
  });
});
