import { encodeWriteRequest, type WriteSeries } from '@gpu-telemetry/collector/app';
import { waitFor } from '@gpu-telemetry/harness';
import * as snappy from 'snappyjs';
import request from 'supertest';
import { startSystem, type System } from './pipeline';

/**
 * Prometheus remote write through the real system: gateway -> collector -> queue -> streamer ->
 * Postgres, with a body this test encodes the way Prometheus does (protobuf, snappy).
 */
const ADMIN = 'e2e-remote-write-admin-key-0123456789abcdef';
let system: System;
let writer: string;
let reader: string;

beforeAll(async () => {
  system = await startSystem({ hosts: 1, gpusPerHost: 1, adminKey: ADMIN });
  const key = async (body: object) =>
    (await request(system.url).post('/api/v1/keys').set('x-api-key', ADMIN).send(body).expect(201)).body.key;
  writer = await key({ name: 'prometheus', scopes: ['publish'], topics: ['telemetry'] });
  reader = await key({ name: 'grafana', scopes: ['read'] });
}, 60_000);

afterEach(() => system.responses.assertNone());

afterAll(async () => {
  await system.close();
});

const STALE = 0x7ff0000000000002n;
const now = Math.floor(Date.now() / 1000) * 1000 - 120_000;

function series(labels: Record<string, string>, samples: [number, number | bigint][]): WriteSeries {
  return {
    labels: Object.entries(labels).map(([name, value]) => ({ name, value })),
    timestamps: samples.map(([t]) => t),
    values: samples.map(([, v]) => v),
  };
}

const compress = (protobuf: Buffer) => Buffer.from(snappy.compress(protobuf));

function write(body: Buffer, key = writer) {
  return request(system.url)
    .post('/api/v1/write')
    .set('authorization', `Bearer ${key}`)
    .set('content-type', 'application/x-protobuf')
    .set('content-encoding', 'snappy')
    .set('x-prometheus-remote-write-version', '0.1.0')
    .send(body);
}

/** What Postgres holds for a metric: each series' labels, values and stale markers. */
async function stored(metric: string) {
  const { rows } = await system.pipeline.database.pool.query(
    `SELECT s.prom_labels AS labels, s.gpu_id,
            array(SELECT (extract(epoch FROM x.ts) * 1000)::bigint || '=' || telemetry_value(x.value, x.value_dec)::text
                  FROM telemetry_samples x WHERE x.series_id = s.id ORDER BY x.ts) AS samples,
            array(SELECT (extract(epoch FROM m.ts) * 1000)::bigint
                  FROM telemetry_stale m WHERE m.series_id = s.id ORDER BY m.ts)::text[] AS stale
     FROM telemetry_series s WHERE s.metric_name = $1 ORDER BY s.prom_labels::text`,
    [metric],
  );
  return rows as {
    labels: Record<string, string>;
    gpu_id: string | null;
    samples: string[];
    stale: string[];
  }[];
}

async function published(): Promise<number> {
  const text = await system.pipeline.collector.metrics.registry.getSingleMetricAsString(
    'collector_remote_write_samples_total',
  );
  return [...text.matchAll(/} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

/** A counter of the queue's on the telemetry topic, from its /metrics. */
async function queueCount(name: string): Promise<number> {
  const text = await (await fetch(`${system.pipeline.queueUrl}/metrics`)).text();
  return Number(new RegExp(`^${name}\\{[^}]*topic="telemetry"[^}]*\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
}

describe('POST /api/v1/write (Prometheus remote write 1.0)', () => {
  it('stores the samples exactly once, labels exactly as sent, stale markers kept, however often it is sent', async () => {
    const gpu = {
      __name__: 'DCGM_FI_DEV_GPU_TEMP',
      DCGM_FI_DRIVER_VERSION: '535.129.03',
      Hostname: 'rw-node-1',
      UUID: 'GPU-rw-e2e-0',
      device: 'nvidia0',
      gpu: '0',
      instance: 'rw-node-1:9400',
      job: 'dcgm',
      modelName: 'NVIDIA H100 80GB HBM3',
    };
    const body = compress(
      encodeWriteRequest([
        series(gpu, [
          [now, 61],
          [now + 15_000, 62.5],
        ]),
        series({ __name__: 'node_load1', instance: 'rw-node-1:9100', job: 'node' }, [
          [now, 0.25],
          [now + 15_000, STALE],
        ]),
        series({ __name__: 'node_weird', job: 'node', quote: 'a "b" \\ c', unicode: 'ü ✓' }, [
          [now, NaN],
          [now + 1, Infinity],
        ]),
      ]),
    );
    const before = await published();
    const duplicatesBefore = await queueCount('queue_messages_duplicate_total');
    const publishedBefore = await queueCount('queue_messages_published_total');
    await write(body).expect(204);
    // Prometheus retries a write whose answer it did not see: the same body again, twice.
    await write(body).expect(204);
    await write(body).expect(204);
    await waitFor(
      'remote-written samples stored',
      async () => (await stored('node_weird'))[0]?.samples.length === 2,
    );
    expect(await published()).toBe(before + 18);

    const { __name__: _name, ...gpuLabels } = gpu;
    expect(await stored('DCGM_FI_DEV_GPU_TEMP')).toContainEqual({
      labels: gpuLabels,
      gpu_id: 'GPU-rw-e2e-0',
      samples: [`${now}=61`, `${now + 15_000}=62.5`],
      stale: [],
    });
    expect(await stored('node_load1')).toEqual([
      {
        labels: { instance: 'rw-node-1:9100', job: 'node' },
        gpu_id: null,
        samples: [`${now}=0.25`],
        stale: [`${now + 15_000}`],
      },
    ]);
    expect(await stored('node_weird')).toEqual([
      {
        labels: { job: 'node', quote: 'a "b" \\ c', unicode: 'ü ✓' },
        gpu_id: null,
        samples: [`${now}=NaN`, `${now + 1}=Infinity`],
        stale: [],
      },
    ]);
    // The retries published the same message id: the queue drops it while the first copy is
    // queued, and once that is consumed the streamer stores nothing twice (series and time).
    const duplicates = (await queueCount('queue_messages_duplicate_total')) - duplicatesBefore;
    const accepted = (await queueCount('queue_messages_published_total')) - publishedBefore;
    expect(duplicates + accepted).toBe(3);
    expect(accepted).toBeGreaterThanOrEqual(1);

    // The GPU is listed with its remote-written metric; the node series are not GPUs.
    const gpus = await request(system.url).get('/api/v1/gpus').set('x-api-key', reader).expect(200);
    const listed = gpus.body.gpus.find((g: { id: string }) => g.id === 'GPU-rw-e2e-0');
    expect(listed).toMatchObject({ hostname: 'rw-node-1', index: 0, metrics: ['DCGM_FI_DEV_GPU_TEMP'] });
    const samples = await request(system.url)
      .get('/api/v1/gpus/GPU-rw-e2e-0/telemetry')
      .query({ start_time: new Date(now - 1).toISOString() })
      .set('x-api-key', reader)
      .expect(200);
    expect(samples.body.samples.map((s: { value: number }) => s.value)).toEqual([61, 62.5]);
  });

  it('stores the series beside one it cannot store, and says in a 400 what it passed over', async () => {
    const body = compress(
      encodeWriteRequest([
        series({ __name__: 'rw_partial', job: 'kept', constructor: 'a label name like any other' }, [
          [now, 1],
          [Date.parse('2200-01-01'), 2],
        ]),
        series({ __name__: 'rw_partial', job: 'bad', 'bad-label': 'x' }, [[now, 3]]),
        // Older than TELEMETRY_RETENTION (7 days): refused in the answer, not dead-lettered after a 204.
        series({ __name__: 'rw_partial', job: 'old' }, [[now - 8 * 86_400_000, 5]]),
        series({ __name__: 'rw_partial', job: 'wide', note: '\u6e29'.repeat(3_000) }, [[now, 4]]),
      ]),
    );
    const res = await write(body).expect(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.detail).toContain(
      'Stored 2 samples of 2 series; 1 series and 3 samples could not be stored',
    );
    expect(res.body.detail).toContain('timeseries[0].samples[1]: the timestamp');
    expect(res.body.detail).toContain(
      'timeseries[1]: the label name "bad-label" is not a Prometheus label name',
    );
    expect(res.body.detail).toContain(
      `timeseries[2].samples[0]: the timestamp ${now - 8 * 86_400_000} is older than TELEMETRY_RETENTION`,
    );
    // A series is visible before the transaction that stores its samples commits: wait for the
    // samples of both, not for the series.
    await waitFor(
      'the two good series stored',
      async () => (await stored('rw_partial')).filter((s) => s.samples.length > 0).length === 2,
    );
    expect((await stored('rw_partial')).map((s) => [s.labels['job'], s.samples])).toEqual([
      ['kept', [`${now}=1`]],
      ['wide', [`${now}=4`]],
    ]);
  });

  it('needs a key that may publish to the telemetry topic', async () => {
    const body = compress(encodeWriteRequest([series({ __name__: 'up', job: 'x' }, [[now, 1]])]));
    await request(system.url).post('/api/v1/write').send(body).expect(401);
    expect((await write(body, reader).expect(403)).body.detail).toContain('"publish" scope');
  });

  it.each([
    ['a body that is not snappy', () => Buffer.from('plain text'), 400, 'The body is not a snappy block'],
    [
      'snappy that is not a WriteRequest',
      () => compress(Buffer.from([0x0a, 0x10, 0x00])),
      400,
      'runs past the end of its message',
    ],
    [
      'a bad label name',
      () => compress(encodeWriteRequest([series({ __name__: 'up', 'bad.name': 'x' }, [[now, 1]])])),
      400,
      'the label name "bad.name" is not a Prometheus label name',
    ],
    [
      'a series without a metric name',
      () => compress(encodeWriteRequest([series({ job: 'x' }, [[now, 1]])])),
      400,
      'timeseries[0] has no __name__ label',
    ],
    [
      'more samples than REMOTE_WRITE_MAX_SAMPLES',
      () =>
        compress(
          encodeWriteRequest(
            Array.from({ length: 11 }, (_, i) =>
              series(
                { __name__: 'up', i: String(i) },
                Array.from({ length: 10_000 }, (_, k) => [now - k, k] as [number, number]),
              ),
            ),
          ),
        ),
      413,
      'the request holds more than 100000 samples',
    ],
    [
      'a declared size over REMOTE_WRITE_MAX_DECOMPRESSED',
      () => Buffer.from([0x80, 0x80, 0x80, 0x10]),
      413,
      'more than the 16777216-byte limit',
    ],
  ])('answers %s with a 4xx saying why, and stores nothing', async (_what, body, status, detail) => {
    const res = await write(body()).expect(status);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.detail).toContain(detail);
  });

  it('answers 503 while the queue is down, so Prometheus retries, and stores the retry once', async () => {
    const body = compress(encodeWriteRequest([series({ __name__: 'rw_outage', job: 'j' }, [[now, 7]])]));
    await system.pipeline.queueServer.stop();
    try {
      const res = await write(body).expect(503);
      expect(res.headers['retry-after']).toBeDefined();
    } finally {
      await system.pipeline.queueServer.start();
    }
    await write(body).expect(204);
    // The series is stored (and visible) before the transaction that stores its sample commits:
    // wait for the sample, not the series.
    await waitFor(
      'the retried write stored',
      async () => (await stored('rw_outage'))[0]?.samples.length === 1,
    );
    expect(await stored('rw_outage')).toHaveLength(1);
    expect((await stored('rw_outage'))[0]?.samples).toEqual([`${now}=7`]);
  });
});
