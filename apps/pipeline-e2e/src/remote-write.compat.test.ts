import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DcgmSimulator } from '@gpu-telemetry/dcgm-simulator';
import { freePort, type ManagedProcess, startProcess, waitFor } from '@gpu-telemetry/harness';
import request from 'supertest';
import { Restartable, startSystem, type System } from './pipeline';

/**
 * A real Prometheus (Debian's `prometheus`, or PROMETHEUS_BIN) scrapes a simulated dcgm-exporter
 * fleet and remote-writes to the gateway, as an operator would set it up. What the system stores
 * must be what Prometheus holds: the same series with the same labels, the same samples, and the
 * stale markers Prometheus writes when a target goes away. Part of `npm run test:compat`.
 */
const ADMIN = 'compat-remote-write-admin-key-0123456789abcdef';
const BIN = process.env['PROMETHEUS_BIN'] ?? 'prometheus';
let system: System;
let prometheus: ManagedProcess;
let prometheusUrl: string;
let dir: string;
const hosts = [1, 2].map(() => undefined as unknown as Restartable);

beforeAll(async () => {
  const probe = spawnSync(BIN, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `this suite needs Prometheus: ${BIN} did not run (apt-get install prometheus, or set PROMETHEUS_BIN)`,
    );
  }
  system = await startSystem({ hosts: 1, gpusPerHost: 1, adminKey: ADMIN });
  const writer = (
    await request(system.url)
      .post('/api/v1/keys')
      .set('x-api-key', ADMIN)
      .send({ name: 'prometheus', scopes: ['publish'], topics: ['telemetry'] })
      .expect(201)
  ).body.key as string;
  // Two exporter hosts of two GPUs, each its own server, so one can go away.
  const simulator = new DcgmSimulator({ hosts: 2, gpusPerHost: 2, hostPrefix: 'compat-node' });
  const urls: string[] = [];
  for (const [i, host] of [1, 2].entries()) {
    hosts[i] = new Restartable((req, res) => {
      req.url = `/hosts/${host}/metrics`;
      simulator.handle(req, res);
    });
    urls.push(await hosts[i]!.start());
  }
  dir = await mkdtemp(join(tmpdir(), 'remote-write-compat-'));
  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  await writeFile(
    join(dir, 'prometheus.yml'),
    [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 900ms',
      'scrape_configs:',
      ...urls.map(
        (url, i) =>
          `  - job_name: dcgm-${i + 1}\n    static_configs:\n      - targets: ['${new URL(url).host}']`,
      ),
      'remote_write:',
      `  - url: ${system.url}/api/v1/write`,
      '    authorization:',
      `      credentials: ${writer}`,
      '    queue_config:',
      '      batch_send_deadline: 500ms',
      '      min_backoff: 100ms',
      '      max_backoff: 1s',
      '    metadata_config:',
      '      send_interval: 1s',
      '',
    ].join('\n'),
  );
  prometheus = startProcess({
    name: 'prometheus',
    command: BIN,
    args: [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    stdout: 'ignore',
    stderr: 'keep',
  });
  await prometheus.waitForUrl(`${prometheusUrl}/-/ready`, { timeoutMs: 60_000 });
}, 120_000);

afterAll(async () => {
  await prometheus?.stop({ graceMs: 5_000 });
  for (const host of hosts) await host?.stop();
  await system?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

type LabelSet = Record<string, string>;
const key = (labels: LabelSet) =>
  JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

/** The result of a query Prometheus answers itself. */
async function prom<T>(query: string, at?: number): Promise<T[]> {
  const params = new URLSearchParams({ query, ...(at === undefined ? {} : { time: String(at / 1000) }) });
  const res = await fetch(`${prometheusUrl}/api/v1/query?${params}`);
  const body = (await res.json()) as { status: string; data: { result: T[] }; error?: string };
  if (body.status !== 'success') throw new Error(`prometheus ${query}: ${body.error}`);
  return body.data.result;
}

/** Every series the system stored for a Prometheus job: label set (with __name__), samples, stale markers. */
async function storedSeries(job: string) {
  const { rows } = await system.pipeline.database.pool.query(
    `SELECT s.metric_name, s.prom_labels,
            array(SELECT json_build_array((extract(epoch FROM x.ts) * 1000)::bigint, telemetry_value(x.value, x.value_dec)::text)
                  FROM telemetry_samples x WHERE x.series_id = s.id ORDER BY x.ts) AS samples,
            array(SELECT (extract(epoch FROM m.ts) * 1000)::bigint
                  FROM telemetry_stale m WHERE m.series_id = s.id ORDER BY m.ts)::float8[] AS stale
     FROM telemetry_series s WHERE s.prom_labels->>'job' = $1`,
    [job],
  );
  return new Map(
    rows.map((r) => [
      key({ __name__: r.metric_name, ...r.prom_labels }),
      {
        samples: (r.samples as [string, string][]).map(([t, v]) => [Number(t), Number(v)]),
        stale: r.stale as number[],
      },
    ]),
  );
}

describe('a real Prometheus remote-writing to the gateway', () => {
  it('stores every series Prometheus has, labels exactly, and every sample it sent, value for value', async () => {
    // Some rounds of scrapes, then a time T that both must have sent and stored by now.
    await waitFor('series from both exporters stored', async () => (await storedSeries('dcgm-2')).size > 80, {
      timeoutMs: 60_000,
    });
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const at = Date.now() - 2_000;
    await waitFor(
      'every series of dcgm-1 stored up to T',
      async () =>
        [...(await storedSeries('dcgm-1')).values()].every((s) => (s.samples.at(-1)?.[0] ?? 0) >= at),
      { timeoutMs: 30_000 },
    );
    const theirs = await prom<{ metric: LabelSet; values: [number, string][] }>('{job="dcgm-1"}[1h]', at);
    const ours = await storedSeries('dcgm-1');
    // The same series, every one, with job, instance and the exporter's labels.
    expect([...ours.keys()].sort()).toEqual(theirs.map((s) => key(s.metric)).sort());
    expect(theirs.length).toBeGreaterThan(40);
    for (const series of theirs) {
      const stored = ours.get(key(series.metric))?.samples.filter(([t]) => t <= at);
      expect({ series: series.metric, samples: stored }).toEqual({
        series: series.metric,
        samples: series.values.map(([t, v]) => [Math.round(t * 1000), Number(v)]),
      });
    }
    const gpu = theirs.find((s) => s.metric['__name__'] === 'DCGM_FI_DEV_GPU_UTIL')?.metric;
    expect(gpu).toMatchObject({
      job: 'dcgm-1',
      instance: expect.any(String),
      UUID: expect.stringMatching(/^GPU-/),
    });
    // Prometheus dropped nothing: no write was refused.
    const metrics = await (await fetch(`${prometheusUrl}/metrics`)).text();
    expect(metrics).toMatch(/^prometheus_remote_storage_samples_failed_total\{[^}]*\} 0$/m);
    // Its metadata requests are stored: /api/v1/metadata answers as Prometheus' own does.
    const theirMetadata = (await (await fetch(`${prometheusUrl}/api/v1/metadata`)).json()) as {
      data: Record<string, unknown>;
    };
    expect(Object.keys(theirMetadata.data).length).toBeGreaterThan(20);
    let ourMetadata: unknown;
    await waitFor(
      'metadata as Prometheus has it',
      async () => {
        const res = await request(system.url).get('/prometheus/api/v1/metadata').set('x-api-key', ADMIN);
        ourMetadata = res.body.data;
        return JSON.stringify(ourMetadata) === JSON.stringify(sortedKeys(theirMetadata.data));
      },
      { timeoutMs: 20_000 },
    ).catch(() => undefined);
    expect(ourMetadata).toEqual(theirMetadata.data);
  });

  it('keeps the stale markers Prometheus writes when a target goes away', async () => {
    const before = await storedSeries('dcgm-2');
    await hosts[1]!.stop();
    await waitFor(
      'stale markers for the GPU series of the target that went away',
      async () => {
        const after = await storedSeries('dcgm-2');
        const gpuSeries = [...after.entries()].filter(([k]) => k.includes('"UUID"'));
        return gpuSeries.length > 0 && gpuSeries.every(([, s]) => s.stale.length > 0);
      },
      { timeoutMs: 30_000 },
    );
    const after = await storedSeries('dcgm-2');
    for (const [series, { samples, stale }] of after) {
      if (!series.includes('"UUID"')) continue;
      expect(before.has(series)).toBe(true);
      // The marker comes after the last sample, and no sample after it.
      expect(stale[0]).toBeGreaterThan(samples.at(-1)?.[0] ?? 0);
    }
    // And Prometheus agrees the series ended: an instant query at now finds none of them.
    expect(await prom('{job="dcgm-2", UUID!=""}')).toEqual([]);
    const up = await prom<{ value: [number, string] }>('up{job="dcgm-2"}');
    expect(up[0]?.value[1]).toBe('0');
  });
});

/** An object with its keys in sorted order (the stored metadata comes in name order). */
function sortedKeys<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
