import { readFileSync, writeFileSync } from 'node:fs';
import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { message, sample } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';

/**
 * The samples budget (PROMQL_MAX_SAMPLES, 20M by default) covers a subquery's steps: one with more
 * steps than the budget holds (`[30d:1ms]`) is refused as Prometheus refuses it, 422 execution,
 * before its steps are read or allocated, so it neither crashes the process nor takes memory.
 */
type TestApp = Awaited<ReturnType<typeof startStreamerTestApp>>;
let streamer: TestApp;
const API = '/v1/prometheus/api/v1';
const MB = 1024 * 1024;

beforeAll(async () => {
  streamer = await startStreamerTestApp();
  await streamer.ingest.handle([
    message([sample({ gpuId: 'GPU-budget-0', metricName: 'DCGM_FI_DEV_GPU_UTIL' })]),
  ]);
});

afterAll(async () => {
  await streamer.close();
});

/** A figure of this process's /proc/self/status, in bytes. */
function procStatus(field: 'VmRSS' | 'VmHWM'): number {
  const kb = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  if (!kb) throw new Error(`no ${field} in /proc/self/status`);
  return Number(kb[1]) * 1024;
}

/** How far the process's resident memory rose above where it was while `fn` ran (its peak, reset first). */
async function peakGrowthDuring(fn: () => Promise<void>): Promise<number> {
  writeFileSync('/proc/self/clear_refs', '5'); // resets the peak (VmHWM) to the current figure
  const before = procStatus('VmRSS');
  await fn();
  return procStatus('VmHWM') - before;
}

describe('subqueries past the samples budget', () => {
  it.each([
    'max_over_time(vector(1)[10y:1ms])',
    'max_over_time(vector(1)[1d:1ms])',
    'max_over_time(DCGM_FI_DEV_GPU_UTIL[30d:1ms])',
  ])('refuse %s with 422 at once, without taking memory, and the next query is answered', async (query) => {
    const started = Date.now();
    let res: request.Response | undefined;
    const grown = await peakGrowthDuring(async () => {
      res = await request(asService(streamer.app)).get(`${API}/query`).query({ query });
    });
    expect(res?.status).toBe(422);
    expect(res?.body).toEqual({
      status: 'error',
      errorType: 'execution',
      error: 'query processing would load too many samples into memory in query execution',
    });
    expect(Date.now() - started).toBeLessThan(2_000);
    // The steps alone of [1d:1ms] would be 86.4M values and flags: 780 MB.
    expect(grown).toBeLessThan(100 * MB);
    const next = await request(asService(streamer.app))
      .get(`${API}/query`)
      .query({ query: 'count(DCGM_FI_DEV_GPU_UTIL)' })
      .expect(200);
    expect(next.body.data.result).toEqual([{ metric: {}, value: [expect.any(Number), '1'] }]);
  });
});
