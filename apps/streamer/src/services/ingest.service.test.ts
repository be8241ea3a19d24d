import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createLogger } from '@gpu-telemetry/service-kit';
import { asService } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { maintainerWith, startStreamerTestApp } from '../testing/streamer-test-app';
import { Pool, type PoolClient } from 'pg';
import { IngestService } from './ingest.service';
import { type FramePayload, frameMessage, message, sample } from '../testing/samples';

let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;

beforeAll(async () => {
  streamer = await startStreamerTestApp();
});

afterAll(async () => {
  await streamer.close();
});

/** Every stored sample of a GPU, read back through the query API. */
async function rows(gpuId: string, app = streamer) {
  const res = await request(asService(app.app))
    .get(`/v1/gpus/${gpuId}/telemetry`)
    .query({ start_time: '2000-01-01T00:00:00Z', end_time: '2100-01-01T00:00:00Z', limit: 10_000 });
  if (res.status === 404) return [];
  expect(res.status).toBe(200);
  return res.body.samples as Array<Record<string, unknown>>;
}

describe('IngestService.handle', () => {
  it('stores every sample of a batch, with NaN and infinities, labels and nulls intact', async () => {
    const gpuId = 'GPU-ingest-1';
    const samples = [
      sample({ gpuId, value: 42.5, labels: { GPU_I_ID: '3', weird: 'tab\there "quoted" \\ back\nline' } }),
      sample({
        gpuId,
        value: 'NaN',
        metricName: 'DCGM_FI_DEV_MEMORY_TEMP',
        container: 'trainer',
        pod: 'job-0',
        namespace: 'ml',
      }),
      sample({ gpuId, value: '+Inf', gpuIndex: null, device: null, hostname: null, modelName: null }),
      sample({ gpuId, value: '-Inf' }),
    ];
    expect(await streamer.ingest.handle([message(samples.slice(0, 2)), message(samples.slice(2))])).toEqual({
      failed: [],
    });
    const stored = await rows(gpuId);
    expect(stored).toHaveLength(4);
    expect(stored).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          value: 42.5,
          labels: samples[0]!.labels,
          modelName: 'NVIDIA H100 80GB HBM3',
        }),
        expect.objectContaining({
          value: 'NaN',
          metricName: 'DCGM_FI_DEV_MEMORY_TEMP',
          container: 'trainer',
          pod: 'job-0',
          namespace: 'ml',
        }),
        expect.objectContaining({ value: '+Inf', gpuIndex: null, device: null, hostname: null }),
        expect.objectContaining({ value: '-Inf', gpuIndex: 0, hostname: 'node-1' }),
      ]),
    );
  });

  it('stores times to the microsecond and values to the last bit, before 2000 and with the largest series id', async () => {
    // Hot rows go in by binary COPY: series ids as 4 bytes (ids stop at 2^31 - 1), times from
    // 2000-01-01, values as a 4-byte decimal where that is exact and as the double otherwise.
    const app = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
    try {
      await app.database.pool.query(`SELECT setval('telemetry_series_id_seq', 2147483647, false)`);
      const cases: [string, number, number, 'decimal' | 'double'][] = [
        ['1999-12-31T23:59:59.999999Z', 946_684_799_999_999, 0.1 + 0.2, 'double'],
        ['1969-07-20T20:17:40.000001Z', -14_182_939_999_999, -1.7976931348623157e308, 'double'],
        ['2026-06-01T12:00:00.123456Z', 1_780_315_200_123_456, 5e-324, 'double'],
        ['2026-06-01T12:00:00.5Z', 1_780_315_200_500_000, -0.5, 'decimal'],
        ['2026-06-01T12:00:01Z', 1_780_315_201_000_000, -0, 'double'],
        ['2026-06-01T12:00:02Z', 1_780_315_202_000_000, 245.117, 'decimal'],
        ['2026-06-01T12:00:03Z', 1_780_315_203_000_000, -0.731522, 'decimal'],
        ['2026-06-01T12:00:04Z', 1_780_315_204_000_000, 134_217_727, 'decimal'],
        ['2026-06-01T12:00:05Z', 1_780_315_205_000_000, 134_217_728, 'double'],
        ['2026-06-01T12:00:06Z', 1_780_315_206_000_000, 123_456_789_012_345, 'double'],
        ['2026-06-01T12:00:07Z', 1_780_315_207_000_000, 1e-9, 'decimal'],
      ];
      const gpuId = 'GPU-ingest-exact';
      await app.ingest.handle([
        message(cases.map(([timestamp, , value]) => sample({ gpuId, timestamp, value }))),
      ]);
      const { rows: stored } = await app.database.pool.query<{
        id: string;
        us: string;
        value: number;
        form: string;
      }>(
        `SELECT series_id::text AS id, (extract(epoch FROM ts) * 1000000)::bigint::text AS us,
                telemetry_value(value, value_dec) AS value,
                CASE WHEN value_dec IS NULL THEN 'double' ELSE 'decimal' END AS form
         FROM telemetry_samples ORDER BY ts`,
      );
      expect(stored).toEqual(
        [...cases]
          .sort((a, b) => a[1] - b[1])
          .map(([, us, value, form]) => ({ id: '2147483647', us: String(us), value, form })),
      );
      expect(Object.is(stored.find((r) => r.us === '1780315201000000')?.value, -0)).toBe(true);
    } finally {
      await app.close();
    }
  });

  it('gives a new series, once the 2^31 - 1 ids have been drawn, the next id no series holds', async () => {
    const app = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
    try {
      const gpuId = 'GPU-ids-reused';
      const t0 = Date.now() - 60_000;
      const at = (metricName: string, k: number, value: number) =>
        sample({ gpuId, metricName, value, timestamp: new Date(t0 + k * 1000).toISOString() });
      const ids = async () => {
        const { rows } = await app.database.pool.query<{ metric_name: string; id: number }>(
          'SELECT metric_name, id::int AS id FROM telemetry_series WHERE gpu_id = $1',
          [gpuId],
        );
        return Object.fromEntries(rows.map((r) => [r.metric_name, r.id]));
      };
      await app.ingest.handle([
        message([
          at('DCGM_FI_DEV_GPU_UTIL', 0, 1),
          at('DCGM_FI_DEV_GPU_TEMP', 0, 2),
          at('DCGM_FI_DEV_SM_CLOCK', 0, 3),
        ]),
      ]);
      const first = await ids();
      expect(Object.values(first).sort()).toEqual([1, 2, 3]);
      // One series goes, as retention deletes a series once nothing of it is left; the ids run out.
      const freed = first['DCGM_FI_DEV_GPU_TEMP'];
      await app.database.pool.query('DELETE FROM telemetry_samples WHERE series_id = $1', [freed]);
      await app.database.pool.query('DELETE FROM telemetry_series WHERE id = $1', [freed]);
      await app.database.pool.query(`SELECT setval('telemetry_series_id_seq', 2147483647)`);
      await app.ingest.handle([
        message([at('DCGM_FI_DEV_POWER_USAGE', 1, 245.117), at('DCGM_FI_DEV_GPU_UTIL', 1, 4)]),
      ]);
      expect(await ids()).toEqual({
        DCGM_FI_DEV_GPU_UTIL: first['DCGM_FI_DEV_GPU_UTIL'],
        DCGM_FI_DEV_SM_CLOCK: first['DCGM_FI_DEV_SM_CLOCK'],
        DCGM_FI_DEV_POWER_USAGE: freed,
      });
      const stored = (await rows(gpuId, app)).map((r) => `${r.metricName}=${r.value}`);
      expect(stored.sort()).toEqual([
        'DCGM_FI_DEV_GPU_UTIL=1',
        'DCGM_FI_DEV_GPU_UTIL=4',
        'DCGM_FI_DEV_POWER_USAGE=245.117',
        'DCGM_FI_DEV_SM_CLOCK=3',
      ]);
    } finally {
      await app.close();
    }
  });

  it('stores a series once: samples refer to it by id, whatever the order of its labels', async () => {
    const gpuId = 'GPU-ingest-series';
    const t0 = Date.now() - 60_000;
    const at = (k: number) => new Date(t0 + k * 1000).toISOString();
    await streamer.ingest.handle([
      message([0, 1, 2].map((k) => sample({ gpuId, timestamp: at(k), labels: { a: '1', b: '2' } }))),
    ]);
    await streamer.ingest.handle([
      message([3, 4].map((k) => sample({ gpuId, timestamp: at(k), labels: { b: '2', a: '1' } }))),
    ]);
    await streamer.ingest.handle([message([sample({ gpuId, timestamp: at(5), labels: { a: '1' } })])]);
    const { rows: series } = await streamer.database.pool.query(
      `SELECT s.labels, count(x.*)::int AS samples FROM telemetry_series s
       JOIN telemetry_samples x ON x.series_id = s.id WHERE s.gpu_id = $1 GROUP BY 1 ORDER BY 2 DESC`,
      [gpuId],
    );
    expect(series).toEqual([
      { labels: { a: '1', b: '2' }, samples: 5 },
      { labels: { a: '1' }, samples: 1 },
    ]);
  });

  it('stores a redelivered message once: the second time inserts nothing', async () => {
    const gpuId = 'GPU-ingest-2';
    const batch = message([sample({ gpuId }), sample({ gpuId })]);
    await streamer.ingest.handle([batch]);
    await streamer.ingest.handle([batch, batch]);
    expect(await rows(gpuId)).toHaveLength(2);
    const metrics = await streamer.metrics.registry.getSingleMetricAsString('streamer_rows_duplicate_total');
    expect(metrics).toMatch(/streamer_rows_duplicate_total\{[^}]*\} [4-9]/);
  });

  it('stores a new batch by plain COPY, and one mixing stored and new samples by the de-duplicating insert', async () => {
    const gpuId = 'GPU-ingest-paths';
    const paths = async () => {
      const text = await streamer.metrics.registry.getSingleMetricAsString('streamer_insert_paths_total');
      const count = (path: string) => Number(text.match(new RegExp(`path="${path}"[^}]*} (\\d+)`))?.[1] ?? 0);
      return { copy: count('copy'), dedup: count('dedup') };
    };
    const before = await paths();
    const t0 = Date.now() - 3_600_000;
    const first = Array.from({ length: 1_200 }, (_, n) =>
      sample({ gpuId, value: n, timestamp: new Date(t0 + n).toISOString() }),
    );
    await streamer.ingest.handle([message(first.slice(0, 600)), message(first.slice(600))]);
    expect(await paths()).toEqual({ copy: before.copy + 1, dedup: before.dedup });

    // The last stored sample again, among new ones: the COPY is refused whole, the new ones still land.
    const mixed = [
      ...Array.from({ length: 700 }, (_, n) =>
        sample({ gpuId, value: -n, timestamp: new Date(t0 + 2_000 + n).toISOString() }),
      ),
      first[1_199]!,
    ];
    await streamer.ingest.handle([message(mixed)]);
    expect(await paths()).toEqual({ copy: before.copy + 1, dedup: before.dedup + 1 });
    const stored = await rows(gpuId);
    expect(stored).toHaveLength(1_900);
    expect(new Set(stored.map((r) => `${r.timestamp} ${r.metricName}`)).size).toBe(1_900);
  });

  it('claims no sample time whose transaction failed: the redelivery stores every sample it brings', async () => {
    const local = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
    // The first COPY of the value 1 fails in Postgres (a sequence is not rolled back: once).
    await local.database.pool.query(`
      CREATE SEQUENCE fail_once;
      CREATE FUNCTION fail_first_one() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF telemetry_value(NEW.value, NEW.value_dec) = 1 AND nextval('fail_once') = 1 THEN
          RAISE EXCEPTION 'the insert failed';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER fail_first_one BEFORE INSERT ON telemetry_samples
        FOR EACH ROW EXECUTE FUNCTION fail_first_one();`);
    try {
      const gpuId = 'GPU-dedup-rollback';
      const t0 = Date.now() - 60_000;
      const at = (n: number) => sample({ gpuId, value: n, timestamp: new Date(t0 + n * 1000).toISOString() });
      expect(await local.ingest.handle([message([at(0)])])).toEqual({ failed: [] });
      const redelivered = message([at(0), at(1)]);
      await expect(local.ingest.handle([redelivered])).rejects.toThrow('the insert failed');
      expect(await local.ingest.handle([redelivered])).toEqual({ failed: [] });
      expect((await rows(gpuId, local)).map((r) => r.value)).toEqual([0, 1]);
    } finally {
      await local.close();
    }
  });

  it('stores a sample once when several messages bring it at once, or one message twice', async () => {
    const gpuId = 'GPU-dedup-race';
    const t0 = Date.now() - 120_000;
    const at = (n: number) => sample({ gpuId, value: n, timestamp: new Date(t0 + n * 1000).toISOString() });
    // Overlapping messages, each handled on its own connection at the same time.
    const messages = [0, 1, 2, 3, 4, 5].map((k) => message([at(k), at(k + 1), at(k + 2), at(k + 2)]));
    await Promise.all(messages.map((m) => streamer.ingest.handle([m])));
    expect((await rows(gpuId)).map((r) => r.value)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // Other series at the same times are new: stored beside them.
    const other = (n: number) =>
      sample({
        gpuId,
        metricName: 'DCGM_FI_DEV_SM_CLOCK',
        value: n,
        timestamp: new Date(t0 + n * 1000).toISOString(),
      });
    await Promise.all([0, 1].map(() => streamer.ingest.handle([message([at(3), other(3), other(4)])])));
    expect(await rows(gpuId)).toHaveLength(10);
  });

  it('dead-letters invalid messages with a reason naming the field, and still stores the valid samples', async () => {
    const gpuId = 'GPU-ingest-3';
    const good = sample({ gpuId });
    const mixed = message([
      good,
      sample({ gpuId, timestamp: 'yesterday' }),
      { ...sample({ gpuId }), extra: 1 },
    ]);
    const notTelemetry = message([]);
    (notTelemetry as { payload: unknown }).payload = { hello: 'world' };
    const empty = message([]);
    const result = await streamer.ingest.handle([mixed, notTelemetry, empty, message([sample({ gpuId })])]);
    expect(result.failed).toEqual([
      {
        id: mixed.id,
        deadLetter: true,
        reason: 'invalid telemetry: samples[1].timestamp: must be an RFC 3339 date-time (and 1 more)',
      },
      {
        id: notTelemetry.id,
        deadLetter: true,
        reason: expect.stringMatching(/^invalid telemetry: (source|samples|hello)/),
      },
      {
        id: empty.id,
        deadLetter: true,
        reason: 'invalid telemetry: samples: must contain at least one sample',
      },
    ]);
    expect((await rows(gpuId)).map((r) => r.timestamp)).toContain(good.timestamp);
    expect(await rows(gpuId)).toHaveLength(2);
  });

  it("stores a frame (the collector's form) as the same series and samples as whole sample objects", async () => {
    const gpuId = 'GPU-ingest-frame';
    const at = Date.now() - 60_000;
    const samples = [0, 1].flatMap((gpuIndex) =>
      ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_GPU_TEMP'].flatMap((metricName) =>
        [0, 15_000].map((ms) =>
          sample({
            gpuId: `${gpuId}-${gpuIndex}`,
            gpuIndex,
            metricName,
            timestamp: new Date(at + ms).toISOString(),
            value: ms === 0 ? gpuIndex + 0.5 : 'NaN',
          }),
        ),
      ),
    );
    const frame = frameMessage(samples);
    expect(frame.payload.groups).toHaveLength(2);
    expect(frame.payload.metrics).toHaveLength(2);
    expect(frame.payload.times).toHaveLength(2);
    expect(await streamer.ingest.handle([frame])).toEqual({ failed: [] });
    const stored = [...(await rows(`${gpuId}-0`)), ...(await rows(`${gpuId}-1`))];
    const view = (s: Record<string, unknown>) => [s.gpuIndex, s.metricName, s.timestamp, s.value, s.labels];
    expect(stored.map(view).sort()).toEqual(samples.map((s) => view(s)).sort());
    expect(frame.payload.rows).toHaveLength(4); // a row per GPU and time
    // The older forms of the same samples are the same series at the same times: nothing new.
    const { failed } = await streamer.ingest.handle([
      message(samples),
      frameMessage(samples, undefined, 'samples'),
    ]);
    expect(failed).toEqual([]);
    expect((await rows(`${gpuId}-0`)).length + (await rows(`${gpuId}-1`)).length).toBe(8);
    const series = await streamer.database.pool.query(
      `SELECT count(*)::int AS n FROM telemetry_series WHERE gpu_id LIKE $1`,
      [`${gpuId}-%`],
    );
    expect(series.rows[0].n).toBe(4);
  });

  it('stores the telemetry messages docs/reference.md shows, each form as it says', async () => {
    const reference = readFileSync(path.join(__dirname, '../../../../docs/reference.md'), 'utf8');
    const block = reference.slice(reference.indexOf('**Telemetry messages**')).split('```jsonc\n')[1]!;
    const text = block
      .slice(0, block.indexOf('\n```'))
      .split('\n')
      .filter((line) => !line.trimStart().startsWith('//'))
      .join('\n');
    // The examples one after another: each ends where its braces close.
    const payloads: Record<string, unknown>[] = [];
    let depth = 0;
    let from = 0;
    for (let i = 0; i < text.length; i++) {
      if (text[i] === '{' && depth++ === 0) from = i;
      if (text[i] === '}' && --depth === 0) payloads.push(JSON.parse(text.slice(from, i + 1)));
    }
    expect(payloads.map((p) => Object.keys(p)[1])).toEqual(['groups', 'series', 'metadata']);
    // Their times moved to a minute ago (retention would refuse a fixed date one day).
    const at = Date.now() - 60_000;
    const [frame, series, metadata] = payloads as [
      FramePayload,
      { series: { samples: number[][] }[] },
      object,
    ];
    frame.times = [new Date(at).toISOString()];
    for (const s of series.series) for (const sample of s.samples) sample[0] = at;
    const leased = [frame, series, metadata].map((payload) => ({
      id: randomUUID(),
      payload,
      attempts: 1,
      publishedAt: new Date().toISOString(),
    }));
    expect(await streamer.ingest.handle(leased)).toEqual({ failed: [] });
    const gpu = (frame.groups[0] as { gpuId: string }).gpuId;
    expect((await rows(gpu)).map((r) => [r.metricName, r.value]).sort()).toEqual([
      ['DCGM_FI_DEV_GPU_TEMP', 64],
      ['DCGM_FI_DEV_GPU_UTIL', 87],
    ]);
  });

  it('finds the series of the next frame from the same GPUs without resolving them again', async () => {
    const gpuId = 'GPU-ingest-frame-next';
    const scrape = (at: number) =>
      frameMessage(
        ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_POWER_USAGE'].map((metricName) =>
          sample({ gpuId, metricName, timestamp: new Date(at).toISOString() }),
        ),
      );
    const resolved = async () => (await streamer.streamerMetrics.seriesResolved.get()).values[0]?.value ?? 0;
    const at = Date.now() - 120_000;
    await streamer.ingest.handle([scrape(at)]);
    const before = await resolved();
    expect(await streamer.ingest.handle([scrape(at + 30_000), scrape(at + 60_000)])).toEqual({ failed: [] });
    expect(await resolved()).toBe(before);
    expect(await rows(gpuId)).toHaveLength(6);
  });

  it("writes a batch's hot rows metric by metric, so a metric's samples share pages", async () => {
    // Scrapes come host by host, each GPU's metrics together; a fleet-wide selector reads one
    // metric, which would then have a row on every page the batch filled.
    const at = Date.now() - 60_000;
    const metrics = ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_GPU_TEMP', 'DCGM_FI_DEV_POWER_USAGE'];
    const scrape = (host: number) =>
      frameMessage(
        [0, 1].flatMap((gpuIndex) =>
          metrics.map((metricName) =>
            sample({
              gpuId: `GPU-ingest-order-${host}-${gpuIndex}`,
              gpuIndex,
              hostname: `node-order-${host}`,
              metricName,
              timestamp: new Date(at).toISOString(),
            }),
          ),
        ),
        `http://node-order-${host}:9400/metrics`,
      );
    expect(await streamer.ingest.handle([scrape(1), scrape(2), scrape(3)])).toEqual({ failed: [] });
    const { rows: stored } = await streamer.database.pool.query<{ metric_name: string; gpu_id: string }>(
      `SELECT s.metric_name, s.gpu_id FROM telemetry_samples t JOIN telemetry_series s ON s.id = t.series_id
       WHERE s.gpu_id LIKE 'GPU-ingest-order-%' ORDER BY t.tableoid, t.ctid`,
    );
    expect(stored).toHaveLength(18);
    // In the order they lie in the table: one run per metric, each in the order the scrapes came.
    const runs = stored.map((r) => r.metric_name).filter((m, i, all) => m !== all[i - 1]);
    expect(runs).toEqual(metrics);
    expect(stored.slice(0, 6).map((r) => r.gpu_id)).toEqual(
      [1, 2, 3].flatMap((host) => [0, 1].map((gpu) => `GPU-ingest-order-${host}-${gpu}`)),
    );
  });

  it("dead-letters a frame's bad rows and values with a reason naming the field, and stores its good ones", async () => {
    const gpuId = 'GPU-ingest-rows-bad';
    const at = Date.now() - 60_000;
    const good = [0, 1].map((gpuIndex) =>
      sample({ gpuId: `${gpuId}-${gpuIndex}`, gpuIndex, timestamp: new Date(at).toISOString() }),
    );
    const cases: [(p: FramePayload) => void, string][] = [
      [(p) => p.rows!.push([2, 0, 1]), 'rows[2][0]: must be the index of one of the 2 groups'],
      [(p) => p.rows!.push([0, 1, 1]), 'rows[2][1]: must be the index of one of the 1 times'],
      [(p) => p.rows!.push([0, '0', 1]), 'rows[2][1]: must be the index of one of the 1 times'],
      [
        (p) => p.rows!.push([0, 0]),
        'rows[2]: must be [group, time, then one value or null for each of the 1 metrics]',
      ],
      [
        (p) => p.rows!.push({ g: 0 } as never),
        'rows[2]: must be [group, time, then one value or null for each of the 1 metrics]',
      ],
      // The bad value is one sample: the row's others, and the frame's other rows, are stored.
      [(p) => (p.rows![1]![2] = 'hot'), 'rows[1][2]: must be a finite number, "NaN", "+Inf", "-Inf" or null'],
      [(p) => (p.rows![0]![2] = [1]), 'rows[0][2]: must be a finite number, "NaN", "+Inf", "-Inf" or null'],
    ];
    for (const [change, reason] of cases) {
      const bad = frameMessage(good);
      change(bad.payload);
      expect(await streamer.ingest.handle([bad])).toEqual({
        failed: [{ id: bad.id, deadLetter: true, reason: `invalid telemetry: ${reason}` }],
      });
    }
    // Every case stored what was good in it, once.
    expect((await rows(`${gpuId}-0`)).length + (await rows(`${gpuId}-1`)).length).toBe(2);
    const both = frameMessage(good);
    both.payload.samples = [[0, 0, 0, 1]];
    const neither = frameMessage(good);
    delete neither.payload.rows;
    const { failed } = await streamer.ingest.handle([both, neither]);
    expect(failed?.map((f) => f.reason)).toEqual([
      'invalid telemetry: samples: must not be sent with rows',
      'invalid telemetry: rows: is required (or samples)',
    ]);
  });

  it("dead-letters a frame's bad samples with a reason naming the field, and stores its good ones", async () => {
    const gpuId = 'GPU-ingest-frame-bad';
    const good = sample({ gpuId });
    const cases: [string, (p: FramePayload) => void, string][] = [
      [
        'group out of range',
        (p) => p.samples!.push([1, 0, 0, 1]),
        'samples[1][0]: must be the index of one of the 1 groups',
      ],
      [
        'metric not an index',
        (p) => p.samples!.push([0, 'x', 0, 1]),
        'samples[1][1]: must be the index of one of the 1 metrics',
      ],
      [
        'time negative',
        (p) => p.samples!.push([0, 0, -1, 1]),
        'samples[1][2]: must be the index of one of the 1 times',
      ],
      [
        'value not a number',
        (p) => p.samples!.push([0, 0, 0, 'hot']),
        'samples[1][3]: must be a finite number, "NaN", "+Inf" or "-Inf"',
      ],
      ['not a tuple', (p) => p.samples!.push({ g: 0 }), 'samples[1]: must be [group, metric, time, value]'],
    ];
    for (const [, change, reason] of cases) {
      const bad = frameMessage([good], undefined, 'samples');
      change(bad.payload);
      expect(await streamer.ingest.handle([bad])).toEqual({
        failed: [{ id: bad.id, deadLetter: true, reason: `invalid telemetry: ${reason}` }],
      });
    }
    expect(await rows(gpuId)).toHaveLength(1);
    const nul = frameMessage([sample({ gpuId, hostname: 'node\u0000evil' })]);
    const late = frameMessage([
      sample({ gpuId, timestamp: new Date(Date.now() + 3 * 86_400_000).toISOString() }),
    ]);
    const noMetric = frameMessage([sample({ gpuId })]);
    noMetric.payload.metrics = ['not a metric'];
    const { failed } = await streamer.ingest.handle([nul, late, noMetric]);
    expect(failed?.map((f) => f.reason)).toEqual([
      'invalid telemetry: groups[0].hostname: must not contain NUL characters',
      'invalid telemetry: times[0]: is more than a day in the future',
      'invalid telemetry: metrics[0]: must be a Prometheus metric name',
    ]);
    expect(await rows(gpuId)).toHaveLength(1);
  });

  it('refuses text Postgres cannot store (a NUL character) instead of failing the whole batch', async () => {
    const good = message([sample({ gpuId: 'GPU-ingest-6' })]);
    const nul = message([sample({ gpuId: 'GPU-ingest-6', hostname: 'node\u0000evil' })]);
    const { failed } = await streamer.ingest.handle([good, nul]);
    expect(failed).toEqual([
      {
        id: nul.id,
        deadLetter: true,
        reason: 'invalid telemetry: samples[0].hostname: must not contain NUL characters',
      },
    ]);
    expect(await rows('GPU-ingest-6')).toHaveLength(1);
  });

  it('dead-letters text jsonb cannot hold (a lone surrogate), in samples and frames, and stores the rest', async () => {
    const gpuId = 'GPU-ingest-7';
    const good = message([sample({ gpuId })]);
    const loneInLabel = frameMessage([sample({ gpuId, labels: { x: 'a\ud800b' } })]);
    const loneInKey = message([sample({ gpuId, labels: { ['k\udc00']: 'v' } })]);
    const loneInHost = message([sample({ gpuId, hostname: 'node-\ud83d' })]);
    const { failed } = await streamer.ingest.handle([good, loneInLabel, loneInKey, loneInHost]);
    expect(failed?.map((f) => [f.id, f.deadLetter, f.reason])).toEqual([
      [loneInLabel.id, true, 'invalid telemetry: groups[0].labels.x: must be valid Unicode'],
      [
        loneInKey.id,
        true,
        expect.stringMatching(
          /^invalid telemetry: samples\[0\]\.labels\.k.: is not a valid key: must be valid Unicode$/,
        ),
      ],
      [loneInHost.id, true, 'invalid telemetry: samples[0].hostname: must be valid Unicode'],
    ]);
    expect(await rows(gpuId)).toHaveLength(1);
    // A surrogate pair (an emoji) is valid Unicode and stored as sent.
    const emoji = message([sample({ gpuId, metricName: 'E', labels: { x: 'a\ud83d\ude80b' } })]);
    expect(await streamer.ingest.handle([emoji])).toEqual({ failed: [] });
    expect((await rows(gpuId)).find((r) => r.metricName === 'E')?.labels).toEqual({ x: 'a\u{1F680}b' });
  });

  it('dead-letters sample times before the year 1 (UTC), or before the first time kept to the µs, even when retention keeps everything', async () => {
    const forever = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
    try {
      const gpuId = 'GPU-ingest-8';
      const now = sample({ gpuId });
      const good = message([now]);
      const year0 = message([sample({ gpuId, timestamp: '0000-06-01T00:00:00Z' })]);
      // The year 1 in its own offset, the last hour of the year 0 in UTC.
      const offset = frameMessage([sample({ gpuId, timestamp: '0001-01-01T00:00:00+01:00' })]);
      const { failed } = await forever.ingest.handle([good, year0, offset]);
      expect(failed?.map((f) => [f.id, f.reason])).toEqual([
        [year0.id, 'invalid telemetry: samples[0].timestamp: is before 0001-01-01T00:00:00Z'],
        [offset.id, 'invalid telemetry: times[0]: is before 0001-01-01T00:00:00Z'],
      ]);
      // Times are kept to the microsecond from 1714-07-29T00:12:25.259009Z (2000-01-01 less 2^53 - 1 µs) on:
      // one before it is refused, naming the first time stored, not stored apart from its neighbours.
      const tooOld = message([
        sample({ gpuId, timestamp: '0001-01-01T00:00:00Z' }),
        sample({ gpuId, timestamp: '1714-07-29T00:12:25.259008Z' }),
      ]);
      const refused = `is before 1714-07-29T00:12:25.259009Z, the first time stored to the microsecond`;
      expect((await forever.ingest.handle([tooOld])).failed?.map((f) => f.reason)).toEqual([
        `invalid telemetry: samples[0].timestamp: ${refused} (and 1 more)`,
      ]);
      const oldestTimes = frameMessage([
        sample({ gpuId, metricName: 'F', timestamp: '1600-01-01T00:00:00.000001Z' }),
      ]);
      expect((await forever.ingest.handle([oldestTimes])).failed?.map((f) => f.reason)).toEqual([
        `invalid telemetry: times[0]: ${refused}`,
      ]);
      const first = message([sample({ gpuId, timestamp: '1714-07-29T00:12:25.259009Z' })]);
      expect(await forever.ingest.handle([first])).toEqual({ failed: [] });
      const res = await request(asService(forever.app))
        .get(`/v1/gpus/${gpuId}/telemetry`)
        .query({ start_time: '0001-01-01T00:00:00Z', end_time: '2100-01-01T00:00:00Z' })
        .expect(200);
      expect(res.body.samples.map((r: { timestamp: string }) => r.timestamp)).toEqual([
        '1714-07-29T00:12:25.259009Z',
        now.timestamp,
      ]);
    } finally {
      await forever.close();
    }
  });

  it('refuses samples older than the retention or from the far future', async () => {
    const old = message([sample({ timestamp: new Date(Date.now() - 30 * 86_400_000).toISOString() })]);
    const future = message([sample({ timestamp: new Date(Date.now() + 3 * 86_400_000).toISOString() })]);
    const { failed } = await streamer.ingest.handle([old, future]);
    expect(failed?.map((f) => f.reason)).toEqual([
      'invalid telemetry: samples[0].timestamp: is older than TELEMETRY_RETENTION',
      'invalid telemetry: samples[0].timestamp: is more than a day in the future',
    ]);
  });

  it('creates the chunk a sample needs on demand, with its partition', async () => {
    const when = new Date(Date.now() - 5 * 86_400_000);
    const hour = when.toISOString().slice(0, 13);
    const name = `telemetry_samples_${hour.slice(0, 10).replaceAll('-', '')}_${hour.slice(11, 13)}0000`;
    await streamer.ingest.handle([
      message([sample({ gpuId: 'GPU-ingest-4', timestamp: when.toISOString() })]),
    ]);
    const { rows: parts } = await streamer.database.pool.query('SELECT to_regclass($1)::text AS name', [
      name,
    ]);
    expect(parts[0].name).toBe(name);
    const { rows: chunks } = await streamer.database.pool.query(
      'SELECT chunk_start, chunk_end FROM telemetry_chunks WHERE chunk_start <= $1 AND chunk_end > $1',
      [when],
    );
    expect(chunks).toEqual([
      {
        chunk_start: new Date(`${hour}:00:00Z`),
        chunk_end: new Date(Date.parse(`${hour}:00:00Z`) + 3_600_000),
      },
    ]);
    expect(await rows('GPU-ingest-4')).toHaveLength(1);
  });

  it('keeps the gpus table current: first and last seen, and the metrics reported', async () => {
    const gpuId = 'GPU-ingest-5';
    const t0 = new Date(Date.now() - 60_000).toISOString();
    const t1 = new Date().toISOString();
    await streamer.ingest.handle([message([sample({ gpuId, timestamp: t1, metricName: 'B' })])]);
    await streamer.ingest.handle([message([sample({ gpuId, timestamp: t0, metricName: 'A' })])]);
    const { rows: gpus } = await streamer.database.pool.query('SELECT * FROM gpus WHERE gpu_id = $1', [
      gpuId,
    ]);
    expect(gpus[0]).toMatchObject({ metrics: ['A', 'B'], hostname: 'node-1', gpu_index: 0 });
    expect(gpus[0].first_seen.toISOString()).toBe(t0);
    expect(gpus[0].last_seen.toISOString()).toBe(t1);
  });

  it("sums up a batch's GPUs: each one's earliest and latest sample in any order, its metrics, no stale marker", async () => {
    const now = Date.now();
    const at = (minutesAgo: number) => new Date(now - minutesAgo * 60_000).toISOString();
    const [a, b] = ['GPU-sighted-a', 'GPU-sighted-b'];
    const staleAt = now - 60_000; // later than every sample: says nothing of when b was seen
    await streamer.ingest.handle([
      message([
        sample({ gpuId: a, metricName: 'B', timestamp: at(3) }),
        sample({ gpuId: b, metricName: 'A', timestamp: at(4) }),
        sample({ gpuId: a, metricName: 'A', timestamp: at(5) }),
      ]),
      message([
        sample({ gpuId: b, metricName: 'C', timestamp: at(6) }),
        sample({ gpuId: a, metricName: 'C', timestamp: at(2) }),
        sample({ gpuId: a, metricName: 'B', timestamp: at(4) }),
      ]),
      {
        id: randomUUID(),
        payload: {
          source: 'remote-write',
          series: [{ metric: 'D', labels: { UUID: b, Hostname: 'node-1' }, samples: [[staleAt, 'stale']] }],
        },
        attempts: 1,
        publishedAt: new Date().toISOString(),
      },
    ]);
    const { body } = await request(asService(streamer.app)).get('/v1/gpus').expect(200);
    const listed = (id: string) => body.gpus.find((g: { id: string }) => g.id === id);
    expect(listed(a)).toMatchObject({ metrics: ['A', 'B', 'C'], firstSeen: at(5), lastSeen: at(2) });
    expect(listed(b)).toMatchObject({ metrics: ['A', 'C'], firstSeen: at(6), lastSeen: at(4) });
  });

  it('lists the metrics of a GPU whose row was deleted while the streamer still knew them', async () => {
    const gpuId = 'GPU-relisted';
    const listed = async () =>
      (await request(asService(streamer.app)).get('/v1/gpus').expect(200)).body.gpus.find(
        (g: { id: string }) => g.id === gpuId,
      );
    const t0 = new Date(Date.now() - 60_000).toISOString();
    await streamer.ingest.handle([message([sample({ gpuId, timestamp: t0, metricName: 'A' })])]);
    // Sent again, the known names are left out and the row keeps them.
    const t1 = new Date(Date.now() - 30_000).toISOString();
    await streamer.ingest.handle([message([sample({ gpuId, timestamp: t1, metricName: 'A' })])]);
    expect(await listed()).toMatchObject({ metrics: ['A'], lastSeen: t1 });
    // What retention does to a GPU unseen for longer than every retention.
    await streamer.database.pool.query('DELETE FROM gpus WHERE gpu_id = $1', [gpuId]);
    const t2 = new Date().toISOString();
    await streamer.ingest.handle([message([sample({ gpuId, timestamp: t2, metricName: 'A' })])]);
    expect(await listed()).toMatchObject({ metrics: ['A'], firstSeen: t2, lastSeen: t2 });
  });
});

describe('retention', () => {
  it('drops whole expired chunks, and the GPUs not seen since the longest retention', async () => {
    const local = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
    try {
      const old = new Date(Date.now() - 20 * 86_400_000);
      await local.ingest.handle([
        message([sample({ gpuId: 'GPU-old', timestamp: old.toISOString() })]),
        message([
          sample({ gpuId: 'GPU-rolled', timestamp: new Date(Date.now() - 8 * 86_400_000).toISOString() }),
        ]),
        message([sample({ gpuId: 'GPU-new' })]),
      ]);
      const maintainer = maintainerWith(local, {
        retentionMs: 7 * 86_400_000,
        retention1mMs: 7 * 86_400_000,
        retention1hMs: 10 * 86_400_000,
      });
      const { dropped } = await maintainer.maintain();
      expect(dropped).toHaveLength(2);
      expect(dropped[0]).toEqual(new Date(Math.floor(old.getTime() / 3_600_000) * 3_600_000));
      // Samples of 8 days ago are gone, but the GPU's rollups are kept 10 days: it stays listed.
      const gpus = await request(asService(local.app)).get('/v1/gpus').expect(200);
      expect(gpus.body.gpus.map((g: { id: string }) => g.id)).toEqual(['GPU-new', 'GPU-rolled']);
      expect(await rows('GPU-old', local)).toHaveLength(0);
      expect(await rows('GPU-new', local)).toHaveLength(1);
      expect(await rows('GPU-rolled', local)).toHaveLength(0);
      const count = await local.database.pool.query('SELECT count(*)::int AS n FROM telemetry');
      expect(count.rows[0].n).toBe(1);
    } finally {
      await local.close();
    }
  });

  it('merges a late sample into a chunk kept longer than its rollups, making their days again', async () => {
    const local = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
    try {
      const at = Math.floor((Date.now() - 20 * 86_400_000) / 3_600_000) * 3_600_000 + 60_000;
      expect(
        await local.ingest.handle([
          message([sample({ gpuId: 'GPU-late', timestamp: new Date(at).toISOString() })]),
        ]),
      ).toEqual({ failed: [] });
      expect(
        await local.compactor.compactChunk({ start: at - 60_000, end: at - 60_000 + 3_600_000 }),
      ).not.toBeNull();
      // Raw samples kept for ever; rollups of 7 and 10 days: the chunk's rollup days are dropped.
      await maintainerWith(local, {
        retentionMs: 0,
        retention1mMs: 7 * 86_400_000,
        retention1hMs: 10 * 86_400_000,
      }).maintain();
      const late = message([sample({ gpuId: 'GPU-late', timestamp: new Date(at + 30_000).toISOString() })]);
      expect(await local.ingest.handle([late])).toEqual({ failed: [] });
      expect((await rows('GPU-late', local)).map((r) => r.timestamp)).toEqual([
        new Date(at).toISOString(),
        new Date(at + 30_000).toISOString(),
      ]);
    } finally {
      await local.close();
    }
  });

  describe('series', () => {
    const DAY = 86_400_000;
    /** Raw samples and 1-minute rollups kept 7 days, 1-hour rollups 10: series go after 14 days unseen. */
    const RETENTIONS = { retentionMs: 7 * DAY, retention1mMs: 7 * DAY, retention1hMs: 10 * DAY };
    const seriesOf = async (gpuId: string, app: typeof streamer) =>
      (
        await app.database.pool.query<{ id: string; age_days: number }>(
          `SELECT id, extract(epoch FROM now() - last_seen) / 86400 AS age_days FROM telemetry_series WHERE gpu_id = $1`,
          [gpuId],
        )
      ).rows.map((r) => ({ id: Number(r.id), ageDays: Number(r.age_days) }));
    const makeOld = (app: typeof streamer, gpuId: string, days: number) =>
      app.database.pool.query(
        `UPDATE telemetry_series SET last_seen = now() - make_interval(days => $2) WHERE gpu_id = $1`,
        [gpuId, days],
      );
    /** A streamer that has just started: nothing in its series cache. */
    const freshIngest = (app: typeof streamer, pool: Pool = app.database.pool) =>
      new IngestService({
        pool,
        logger: createLogger('streamer', 'silent'),
        metrics: app.streamerMetrics,
        retentionMs: 0,
        sliceMs: 3_600_000, // the test app's: hourly chunks, one slice each
        compactor: app.compactor,
      });

    it('draws no series ids for series already stored, however often a cache starts over', async () => {
      const local = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
      try {
        const scrape = (gpuId: string, at: number) =>
          message(
            ['DCGM_FI_DEV_GPU_UTIL', 'DCGM_FI_DEV_GPU_TEMP'].map((metricName) =>
              sample({ gpuId, metricName, timestamp: new Date(at).toISOString() }),
            ),
          );
        const at = Date.now() - 60_000;
        await local.ingest.handle([scrape('GPU-ids-a', at)]);
        // Three streamers that have just started, each resolving the same two series again.
        for (let k = 1; k <= 3; k++) await freshIngest(local).handle([scrape('GPU-ids-a', at + k * 1000)]);
        await freshIngest(local).handle([scrape('GPU-ids-b', at)]);
        const ids = [...(await seriesOf('GPU-ids-a', local)), ...(await seriesOf('GPU-ids-b', local))]
          .map((s) => s.id)
          .sort((a, b) => a - b);
        expect(ids).toHaveLength(4);
        expect(ids.at(-1)! - ids[0]!).toBe(3);
      } finally {
        await local.close();
      }
    });

    it('keeps no frame series past the series cache: one deleted meanwhile is stored anew', async () => {
      const local = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
      try {
        let now = Date.now();
        const ingest = new IngestService({
          pool: local.database.pool,
          logger: createLogger('streamer', 'silent'),
          metrics: local.streamerMetrics,
          retentionMs: 0,
          sliceMs: 3_600_000, // the test app's: hourly chunks, one slice each
          compactor: local.compactor,
          now: () => now,
        });
        const scrape = (at: number) =>
          frameMessage([sample({ gpuId: 'GPU-framed', timestamp: new Date(at).toISOString() })]);
        const at = Date.now() - 60_000;
        expect(await ingest.handle([scrape(at)])).toEqual({ failed: [] });
        const [first] = await seriesOf('GPU-framed', local);
        // Deleted (as the maintainer deletes series unseen for days); the cache starts over at 6 hours.
        await local.database.pool.query('DELETE FROM telemetry_series WHERE gpu_id = $1', ['GPU-framed']);
        now += 7 * 3_600_000;
        expect(await ingest.handle([scrape(at + 30_000)])).toEqual({ failed: [] });
        const [again] = await seriesOf('GPU-framed', local);
        expect(again?.id).not.toBe(first?.id);
        expect((await rows('GPU-framed', local)).map((r) => r.timestamp)).toEqual([
          new Date(at + 30_000).toISOString(),
        ]);
      } finally {
        await local.close();
      }
    });

    it('deletes series unseen for four days past the longest retention; one seen again is stored anew', async () => {
      const local = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
      try {
        await local.ingest.handle([message([sample({ gpuId: 'GPU-gone' }), sample({ gpuId: 'GPU-idle' })])]);
        const [gone] = await seriesOf('GPU-gone', local);
        // Its pod went away 15 days ago; the other series paused 13 days ago.
        await makeOld(local, 'GPU-gone', 15);
        await makeOld(local, 'GPU-idle', 13);
        const maintainer = maintainerWith(local, RETENTIONS);
        // Longest retention 10 days + 4: only the 15-day-old series goes.
        expect((await maintainer.maintain()).seriesDeleted).toBe(1);
        expect(await seriesOf('GPU-gone', local)).toEqual([]);
        expect(await seriesOf('GPU-idle', local)).toHaveLength(1);
        const metrics = await request(asService(local.app)).get('/metrics').expect(200);
        expect(metrics.text).toMatch(/^streamer_series_deleted_total\{[^}]*\} 1$/m);

        // A restarted streamer sees both again: the idle one is refreshed, the gone one stored
        // with a new id, and its new sample is read back.
        const again = sample({
          gpuId: 'GPU-gone',
          timestamp: new Date(Date.now() + 1000).toISOString(),
          value: 7,
        });
        expect(await freshIngest(local).handle([message([again, sample({ gpuId: 'GPU-idle' })])])).toEqual({
          failed: [],
        });
        const [idle] = await seriesOf('GPU-idle', local);
        expect(idle?.ageDays).toBeLessThan(0.01);
        const [back] = await seriesOf('GPU-gone', local);
        expect(back?.id).not.toBe(gone?.id);
        expect((await rows('GPU-gone', local)).map((r) => r['value'])).toEqual([7]);
      } finally {
        await local.close();
      }
    });

    it("lists a series' labels once it is stored, and drops those no series has once it is deleted", async () => {
      const local = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
      const labels = async (path: string) =>
        (await request(asService(local.app)).get(`/v1/prometheus/api/v1/${path}`).expect(200)).body.data;
      try {
        await local.ingest.handle([
          message([
            sample({ gpuId: 'GPU-gone', hostname: 'node-shared', labels: { rack: 'r9' } }),
            sample({
              gpuId: 'GPU-gone',
              hostname: 'node-shared',
              metricName: 'DCGM_FI_DEV_GPU_TEMP',
              labels: { rack: 'r9' },
            }),
            sample({ gpuId: 'GPU-kept', hostname: 'node-shared' }),
          ]),
        ]);
        expect(await labels('labels')).toContain('rack');
        expect(await labels('label/UUID/values')).toEqual(['GPU-gone', 'GPU-kept']);
        expect(await labels('label/rack/values')).toEqual(['r9']);

        await makeOld(local, 'GPU-gone', 15);
        const maintainer = maintainerWith(local, RETENTIONS);
        expect((await maintainer.maintain()).seriesDeleted).toBe(2);
        // Its GPU and rack went with it; the host stays, another series has it.
        expect(await labels('labels')).not.toContain('rack');
        expect(await labels('label/UUID/values')).toEqual(['GPU-kept']);
        expect(await labels('label/rack/values')).toEqual([]);
        expect(await labels('label/Hostname/values')).toEqual(['node-shared']);
      } finally {
        await local.close();
      }
    });

    it('stores a series anew when it is deleted between being found and being refreshed', async () => {
      const local = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
      try {
        await local.ingest.handle([message([sample({ gpuId: 'GPU-race', value: 1 })])]);
        const [before] = await seriesOf('GPU-race', local);
        await makeOld(local, 'GPU-race', 2);
        // The maintainer deletes the series just as a streamer, having found it a day old, goes
        // to refresh it.
        // A batch's statements run on one connection of the pool: its refresh is caught there.
        const real = local.database.pool;
        const racingClient = (client: PoolClient) =>
          new Proxy(client, {
            get(target, prop, receiver) {
              if (prop !== 'query') return Reflect.get(target, prop, receiver);
              const query = (target.query as (...args: unknown[]) => unknown).bind(target);
              return (text: unknown, ...rest: unknown[]) => {
                if (typeof text !== 'string' || !text.startsWith('UPDATE telemetry_series SET last_seen'))
                  return query(text, ...rest);
                return real
                  .query('DELETE FROM telemetry_series WHERE id = ANY($1::bigint[])', rest[0] as unknown[])
                  .then(() => query(text, ...rest));
              };
            },
          });
        const racing = new Proxy(real, {
          get(target, prop, receiver) {
            if (prop !== 'connect') return Reflect.get(target, prop, receiver);
            return async () => racingClient(await target.connect());
          },
        });
        const later = sample({
          gpuId: 'GPU-race',
          timestamp: new Date(Date.now() + 1000).toISOString(),
          value: 2,
        });
        expect(await freshIngest(local, racing).handle([message([later])])).toEqual({ failed: [] });
        const [after] = await seriesOf('GPU-race', local);
        expect(after?.id).not.toBe(before?.id);
        expect(after?.ageDays).toBeLessThan(0.01);
        // The first sample went with the deleted series (as retention would have taken it); the
        // new one is stored under the new id and read back.
        expect((await rows('GPU-race', local)).map((r) => r['value'])).toEqual([2]);
      } finally {
        await local.close();
      }
    });
  });
});
