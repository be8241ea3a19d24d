import { randomUUID } from 'node:crypto';
import type { LeasedMessage, SeriesEntry } from '@gpu-telemetry/model';
import { createLogger } from '@gpu-telemetry/service-kit';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { Pool } from 'pg';
import request from 'supertest';
import { message, sample } from '../testing/samples';
import { maintainerWith, startStreamerTestApp } from '../testing/streamer-test-app';
import { IngestService } from './ingest.service';

/**
 * Series of any metric with any labels (the messages remote write turns into): stored exactly as
 * sent, GPU columns only where the labels name a GPU, stale markers kept apart.
 */
let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;

beforeAll(async () => {
  streamer = await startStreamerTestApp();
});

afterAll(async () => {
  await streamer.close();
});

function seriesMessage(series: unknown[], source = 'remote-write'): LeasedMessage<unknown> {
  return {
    id: randomUUID(),
    payload: { source, series },
    attempts: 1,
    publishedAt: new Date().toISOString(),
  };
}

const t0 = Math.floor((Date.now() - 600_000) / 1000) * 1000;

async function storedSeries(metric: string) {
  const { rows } = await streamer.database.pool.query(
    `SELECT s.id, s.metric_name, s.gpu_id, s.gpu_index, s.hostname, s.model_name, s.labels, s.prom_labels,
            array(SELECT (extract(epoch FROM x.ts) * 1000)::bigint || '=' || telemetry_value(x.value, x.value_dec)::text FROM telemetry_samples x
                  WHERE x.series_id = s.id ORDER BY x.ts) AS samples,
            array(SELECT extract(epoch FROM m.ts) * 1000 FROM telemetry_stale m
                  WHERE m.series_id = s.id ORDER BY m.ts)::float8[] AS stale
     FROM telemetry_series s WHERE s.metric_name = $1 ORDER BY s.id`,
    [metric],
  );
  return rows;
}

/** `count` series of a metric never seen before, one sample each. */
function newSeries(metric: string, count: number): SeriesEntry[] {
  return Array.from({ length: count }, (_, i) => ({
    metric,
    labels: { job: 'test', instance: `host-${i}:9100` },
    samples: [[t0, i]],
  }));
}

async function seriesMatching(selector: string) {
  const res = await request(asService(streamer.app))
    .get('/v1/prometheus/api/v1/series')
    .query({ 'match[]': selector })
    .expect(200);
  return res.body.data;
}

describe('series of any metric (remote write)', () => {
  it('stores a series exactly as sent: its metric, every label, every value, and no GPU where none is named', async () => {
    const series: SeriesEntry = {
      metric: 'node_cpu_seconds_total',
      labels: { job: 'node', instance: 'host-1:9100', cpu: '0', mode: 'idle', weird: 'tab\t"q" \\ ü' },
      samples: [
        [t0, 1.5],
        [t0 + 15_000, 'NaN'],
        [t0 + 30_000, '+Inf'],
        [t0 + 45_000, '-Inf'],
      ],
    };
    expect(await streamer.ingest.handle([seriesMessage([series])])).toEqual({ failed: [] });
    const [row, ...more] = await storedSeries('node_cpu_seconds_total');
    expect(more).toEqual([]);
    expect(row).toMatchObject({
      gpu_id: null,
      gpu_index: null,
      hostname: null,
      labels: series.labels,
      prom_labels: series.labels,
      samples: [`${t0}=1.5`, `${t0 + 15_000}=NaN`, `${t0 + 30_000}=Infinity`, `${t0 + 45_000}=-Infinity`],
      stale: [],
    });
    // Not a GPU: /v1/gpus does not list it, and the fleet aggregate of its name leaves it out.
    const gpus = await request(asService(streamer.app)).get('/v1/gpus').expect(200);
    expect(JSON.stringify(gpus.body)).not.toContain('node_cpu_seconds_total');
    const fleet = await request(asService(streamer.app))
      .get('/v1/gpus/metrics/node_cpu_seconds_total/series')
      .query({
        start_time: new Date(t0 - 3_600_000).toISOString(),
        end_time: new Date(t0 + 3_600_000).toISOString(),
      })
      .expect(200);
    expect(fleet.body).toMatchObject({ series: 0, buckets: [] });
  });

  it('fills the GPU columns from dcgm-exporter labels, keeps the whole label set, and lists the GPU', async () => {
    const labels = {
      UUID: 'GPU-rw-1',
      gpu: '3',
      device: 'nvidia3',
      modelName: 'NVIDIA H100 80GB HBM3',
      Hostname: 'node-rw',
      DCGM_FI_DRIVER_VERSION: '535.129.03',
      job: 'dcgm',
      instance: 'node-rw:9400',
    };
    await streamer.ingest.handle([
      seriesMessage([{ metric: 'DCGM_FI_DEV_GPU_UTIL', labels, samples: [[t0, 42]] }]),
    ]);
    const rows = await storedSeries('DCGM_FI_DEV_GPU_UTIL');
    expect(rows.find((r) => r.gpu_id === 'GPU-rw-1')).toMatchObject({
      gpu_index: 3,
      hostname: 'node-rw',
      model_name: 'NVIDIA H100 80GB HBM3',
      labels: { DCGM_FI_DRIVER_VERSION: '535.129.03', job: 'dcgm', instance: 'node-rw:9400' },
      prom_labels: labels,
    });
    const gpus = await request(asService(streamer.app)).get('/v1/gpus').expect(200);
    expect(gpus.body.gpus).toContainEqual(
      expect.objectContaining({
        id: 'GPU-rw-1',
        index: 3,
        hostname: 'node-rw',
        metrics: ['DCGM_FI_DEV_GPU_UTIL'],
      }),
    );
    const samples = await request(asService(streamer.app))
      .get('/v1/gpus/GPU-rw-1/telemetry')
      .query({ start_time: new Date(t0 - 1).toISOString() })
      .expect(200);
    expect(samples.body.samples).toEqual([
      expect.objectContaining({
        value: 42,
        timestamp: new Date(t0).toISOString(),
        labels: rows[0]?.labels ?? {},
      }),
    ]);
  });

  it('keeps a series whose UUID is no GPU id with its labels only: PromQL reads it, no GPU is listed', async () => {
    const labels = { UUID: 'GPU 7/../x', Hostname: 'node-odd', job: 'dcgm' };
    await streamer.ingest.handle([
      seriesMessage([{ metric: 'DCGM_FI_DEV_FB_USED', labels, samples: [[t0, 1234]] }]),
    ]);
    const rows = await storedSeries('DCGM_FI_DEV_FB_USED');
    expect(rows).toEqual([expect.objectContaining({ gpu_id: null, prom_labels: labels })]);
    const gpus = await request(asService(streamer.app)).get('/v1/gpus').query({ limit: 10_000 }).expect(200);
    expect(gpus.body.gpus.map((g: { id: string }) => g.id)).not.toContain(labels.UUID);
    const res = await request(asService(streamer.app))
      .get('/v1/prometheus/api/v1/query')
      .query({ query: 'DCGM_FI_DEV_FB_USED{Hostname="node-odd"}', time: String(t0 / 1000) })
      .expect(200);
    expect(res.body.data.result).toEqual([
      { metric: { __name__: 'DCGM_FI_DEV_FB_USED', ...labels }, value: [t0 / 1000, '1234'] },
    ]);
  });

  it('is one series whatever the order of its labels, and never the same series as a scrape', async () => {
    const at = (k: number) => t0 + k * 1000;
    await streamer.ingest.handle([
      seriesMessage([{ metric: 'rw_order', labels: { a: '1', b: '2' }, samples: [[at(0), 1]] }]),
      seriesMessage([{ metric: 'rw_order', labels: { b: '2', a: '1' }, samples: [[at(1), 2]] }]),
    ]);
    await streamer.ingest.handle([
      seriesMessage([{ metric: 'rw_order', labels: { a: '1', b: '2' }, samples: [[at(2), 3]] }]),
    ]);
    expect((await storedSeries('rw_order')).map((r) => r.samples)).toEqual([
      [`${at(0)}=1`, `${at(1)}=2`, `${at(2)}=3`],
    ]);
    // The same label set scraped by the collector (GPU fields) and sent as labels: two series.
    const scraped = sample({
      metricName: 'rw_both',
      gpuId: 'GPU-both',
      gpuIndex: null,
      device: null,
      modelName: null,
      hostname: null,
      labels: {},
      timestamp: new Date(at(0)).toISOString(),
    });
    await streamer.ingest.handle([
      message([scraped]),
      seriesMessage([{ metric: 'rw_both', labels: { UUID: 'GPU-both' }, samples: [[at(1), 1]] }]),
    ]);
    const both = await storedSeries('rw_both');
    expect(both.map((r) => r.prom_labels)).toEqual([{ UUID: 'GPU-both' }, { UUID: 'GPU-both' }]);
  });

  it('stores stale markers apart from values, once, however often they are delivered', async () => {
    const batch = seriesMessage([
      {
        metric: 'rw_stale',
        labels: { job: 'j' },
        samples: [
          [t0, 1],
          [t0 + 15_000, 'stale'],
          [t0 + 30_000, 'NaN'],
        ],
      },
    ]);
    const before = await streamer.metrics.registry.getSingleMetricAsString('streamer_stale_markers_total');
    await streamer.ingest.handle([batch]);
    await streamer.ingest.handle([batch, batch]);
    const [row] = await storedSeries('rw_stale');
    expect(row).toMatchObject({ samples: [`${t0}=1`, `${t0 + 30_000}=NaN`], stale: [t0 + 15_000] });
    const after = await streamer.metrics.registry.getSingleMetricAsString('streamer_stale_markers_total');
    const count = (text: string) => Number(/ (\d+)$/m.exec(text)?.[1] ?? 0);
    expect(count(after) - count(before)).toBe(1);
  });

  it('puts new series into the label index in bulk, leaving searches no pending list', async () => {
    const pool = streamer.database.pool;
    // Only this test's writes may flush the list: not an autovacuum run in between.
    await pool.query('ALTER TABLE telemetry_series SET (autovacuum_enabled = off)');
    const flush = async () =>
      Number(
        (await pool.query(`SELECT gin_clean_pending_list('telemetry_series_labels_idx'::regclass) AS pages`))
          .rows[0].pages,
      );
    try {
      await flush();
      // A series stored by plain SQL (a script) waits in the index's pending list...
      await pool.query(
        `INSERT INTO telemetry_series (key, metric_name, prom_labels) VALUES ($1, 'by_sql', '{"job":"script"}')`,
        [randomUUID()],
      );
      expect(await flush()).toBeGreaterThan(0);
      // ...and the streamer moves its own new series into the index as it stores them.
      expect(await streamer.ingest.handle([seriesMessage(newSeries('bulk_indexed', 50))])).toEqual({
        failed: [],
      });
      expect(await flush()).toBe(0);
      expect(await seriesMatching('bulk_indexed{instance="host-7:9100"}')).toEqual([
        { __name__: 'bulk_indexed', job: 'test', instance: 'host-7:9100' },
      ]);
    } finally {
      await pool.query('ALTER TABLE telemetry_series RESET (autovacuum_enabled)');
    }
  });

  it('stores new series under a role that may not flush the label index, and stops asking', async () => {
    const admin = streamer.database.pool;
    const role = `streamer_${randomUUID().slice(0, 8)}`;
    const url = new URL(streamer.database.url);
    url.username = role;
    url.password = 'not-the-owner';
    const pool = new Pool({ connectionString: url.toString(), max: 1 });
    const flushes = async (outcome: string) =>
      (await streamer.streamerMetrics.labelIndexFlushes.get()).values.find(
        (v) => v.labels.outcome === outcome,
      )?.value ?? 0;
    try {
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'not-the-owner'`);
      await admin.query(`GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO ${role}`);
      await admin.query(`GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO ${role}`);
      const ingest = new IngestService({
        pool,
        logger: createLogger('streamer', 'silent'),
        metrics: streamer.streamerMetrics,
        retentionMs: 0,
        sliceMs: 3_600_000, // the test app's: hourly chunks, one slice each
        compactor: streamer.compactor,
      });
      const notOwner = await flushes('not_owner');
      for (const metric of ['not_owner_a', 'not_owner_b']) {
        expect(await ingest.handle([seriesMessage(newSeries(metric, 3))])).toEqual({ failed: [] });
        expect(await storedSeries(metric)).toHaveLength(3);
      }
      // Refused once, then not asked again; a search still finds the series in the pending list.
      expect((await flushes('not_owner')) - notOwner).toBe(1);
      expect(await seriesMatching('not_owner_b{instance="host-2:9100"}')).toEqual([
        { __name__: 'not_owner_b', job: 'test', instance: 'host-2:9100' },
      ]);
    } finally {
      await pool.end();
      await admin.query(`DROP OWNED BY ${role}`).catch(() => undefined);
      await admin.query(`DROP ROLE IF EXISTS ${role}`);
    }
  });

  it('stores a redelivered message of series once', async () => {
    const batch = seriesMessage([
      {
        metric: 'rw_redelivered',
        labels: { job: 'j' },
        samples: [
          [t0, 1],
          [t0 + 1000, 2],
        ],
      },
    ]);
    await streamer.ingest.handle([batch]);
    await streamer.ingest.handle([batch]);
    expect((await storedSeries('rw_redelivered'))[0]?.samples).toHaveLength(2);
  });

  it('dead-letters a message with a bad series, naming the field, and stores its good series', async () => {
    const good = { metric: 'rw_good', labels: { job: 'j' }, samples: [[t0, 1]] };
    const cases: [unknown, string][] = [
      [{ ...good, metric: 'bad-name' }, 'series[1].metric: must be a Prometheus metric name'],
      [{ ...good, labels: { '0bad': 'v' } }, 'series[1].labels.0bad'],
      [{ ...good, labels: { __name__: 'x' } }, 'series[1].labels.__name__'],
      [{ ...good, labels: { a: '' } }, 'series[1].labels.a: must not be empty'],
      [{ ...good, labels: { a: 'nul\u0000' } }, 'series[1].labels.a: must not contain NUL characters'],
      [{ ...good, labels: { a: '\ud800' } }, 'series[1].labels.a: must be valid Unicode'],
      [{ ...good, samples: [[t0, 'Infinity']] }, 'series[1].samples[0][1]'],
      [
        { ...good, samples: [[t0 + 0.5, 1]] },
        'series[1].samples[0][0]: must be a whole number of milliseconds',
      ],
      [
        { ...good, samples: [[Date.now() + 3 * 86_400_000, 1]] },
        'series[1].samples[0][0]: is more than a day in the future',
      ],
      [{ ...good, extra: 1 }, 'series[1]'],
    ];
    for (const [bad, reason] of cases) {
      const batch = seriesMessage([good, bad]);
      const { failed } = await streamer.ingest.handle([batch]);
      expect(failed).toEqual([{ id: batch.id, deadLetter: true, reason: expect.stringContaining(reason) }]);
    }
    const envelope = seriesMessage([]);
    expect((await streamer.ingest.handle([envelope])).failed?.[0]?.reason).toBe(
      'invalid telemetry: series: must contain at least one series',
    );
    expect((await storedSeries('rw_good'))[0]?.samples).toEqual([`${t0}=1`]);
  });

  it('keeps the label set of a scraped series as the migration made it for the older ones', async () => {
    await streamer.ingest.handle([
      message([
        sample({
          metricName: 'rw_scraped_labels',
          gpuId: 'GPU-scraped-labels',
          gpuIndex: 7,
          container: '',
          pod: 'trainer-0',
          labels: { pci_bus_id: '00:18', empty: '' },
        }),
      ]),
    ]);
    const { rows } = await streamer.database.pool.query(
      `SELECT prom_labels, telemetry_gpu_labels(gpu_id, gpu_index, device, model_name, hostname, container, pod,
                                                namespace, labels) AS from_sql
       FROM telemetry_series WHERE metric_name = 'rw_scraped_labels'`,
    );
    expect(rows[0].prom_labels).toEqual({
      UUID: 'GPU-scraped-labels',
      gpu: '7',
      device: 'nvidia0',
      modelName: 'NVIDIA H100 80GB HBM3',
      Hostname: 'node-1',
      pod: 'trainer-0',
      pci_bus_id: '00:18',
    });
    expect(rows[0].from_sql).toEqual(rows[0].prom_labels);
    // SQL that writes a series by its GPU columns alone gets the same label set.
    const { rows: written } = await streamer.database.pool.query(
      `INSERT INTO telemetry_series (key, metric_name, gpu_id, gpu_index, hostname, labels)
       VALUES (gen_random_uuid(), 'rw_by_sql', 'GPU-sql', 1, 'node-sql', '{"a": "1"}') RETURNING prom_labels`,
    );
    expect(written[0].prom_labels).toEqual({ UUID: 'GPU-sql', gpu: '1', Hostname: 'node-sql', a: '1' });
  });

  it('drops stale markers with the samples of their time (retention)', async () => {
    const old = Date.now() - 20 * 86_400_000;
    const local = await startStreamerTestApp({ config: { TELEMETRY_RETENTION: 0 } });
    try {
      await local.ingest.handle([
        seriesMessage([
          {
            metric: 'rw_old',
            labels: { job: 'j' },
            samples: [
              [old, 'stale'],
              [t0, 'stale'],
            ],
          },
        ]),
      ]);
      const maintainer = maintainerWith(local, { retentionMs: 7 * 86_400_000 });
      await maintainer.maintain();
      const { rows } = await local.database.pool.query(
        'SELECT (extract(epoch FROM ts) * 1000)::float8 AS at FROM telemetry_stale',
      );
      expect(rows).toEqual([{ at: t0 }]);
    } finally {
      await local.close();
    }
  });
});
