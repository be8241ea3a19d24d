import { readFileSync } from 'node:fs';
import path from 'node:path';
import { scrapedSample } from '@gpu-telemetry/model';
import { parseExposition } from './exposition-parser';
import { toScrapedSample } from './to-telemetry';
import { uuidV5 } from './uuid-v5';

const FIXTURES = path.resolve(__dirname, '../../../../fixtures/dcgm-exporter');
const scrapedAt = Date.parse('2026-01-02T03:04:05.678Z');

describe('toScrapedSample', () => {
  it('maps a real A800 MIG scrape to valid samples, one per series (MIG instances apart by their labels)', () => {
    const { samples } = parseExposition(
      readFileSync(path.join(FIXTURES, 'johnsblog-a800-mig-8gpu.prom'), 'utf8'),
    );
    const telemetry = samples.map((s) => toScrapedSample(s, scrapedAt)).filter((s) => s !== null);
    expect(telemetry).toHaveLength(223);
    for (const sample of telemetry) expect(scrapedSample.safeParse(sample).success).toBe(true);
    const series = (s: (typeof telemetry)[number]) => JSON.stringify([s.metricName, s.gpuId, s.labels]);
    expect(new Set(telemetry.map(series)).size).toBe(223);
    const mig = telemetry.find(
      (s) => s.metricName === 'DCGM_FI_DEV_SM_CLOCK' && s.labels['GPU_I_ID'] === '5',
    );
    expect(mig).toMatchObject({
      gpuId: 'GPU-1f027ee8-6e1e-2b8c-0108-3d370e5f0418',
      gpuIndex: 0,
      device: 'nvidia0',
      modelName: 'NVIDIA A800-SXM4-80GB',
      hostname: 'msxf-hpc-64-35-ai',
      value: 1410,
      timestamp: '2026-01-02T03:04:05.678Z',
      container: null,
      pod: null,
      namespace: null,
      labels: {
        GPU_I_PROFILE: '2g.20gb',
        GPU_I_ID: '5',
        DCGM_FI_DRIVER_VERSION: '535.129.03',
        DCGM_FI_PROCESS_NAME: '/usr/bin/dcgm-exporter',
      },
    });
  });

  it('reads k8s labels in current and old spellings, treating empty ones as absent', () => {
    const { samples } = parseExposition(
      'a{UUID="GPU-1",gpu="3",container="trainer",pod="job-0",namespace="ml"} 1\n' +
        'b{uuid="GPU-2",hostname="node-1",container_name="",pod_name="p",pod_namespace="ns"} 2\n',
    );
    expect(toScrapedSample(samples[0]!, scrapedAt)).toMatchObject({
      gpuId: 'GPU-1',
      gpuIndex: 3,
      container: 'trainer',
      pod: 'job-0',
      namespace: 'ml',
      labels: {},
    });
    expect(toScrapedSample(samples[1]!, scrapedAt)).toMatchObject({
      gpuId: 'GPU-2',
      hostname: 'node-1',
      container: null,
      pod: 'p',
      namespace: 'ns',
    });
  });

  it('skips samples whose UUID is no GPU id (a REST path could not name the GPU)', () => {
    const { samples } = parseExposition(
      'a{UUID="GPU 9"} 1\nb{UUID="x/y"} 1\nc{UUID="GPU-9",uuid="odd one"} 1\nd{UUID="",uuid="GPU-8"} 1\n',
    );
    expect(samples.map((s) => toScrapedSample(s, scrapedAt)?.gpuId ?? null)).toEqual([
      null,
      null,
      'GPU-9',
      'GPU-8',
    ]);
  });

  it('skips samples that are not about a GPU, and keeps the exporter timestamp when present', () => {
    const { samples } = parseExposition(
      'process_cpu_seconds_total 12\ngpu_metric{UUID="GPU-9"} NaN 1700000000000\n',
    );
    expect(toScrapedSample(samples[0]!, scrapedAt)).toBeNull();
    expect(toScrapedSample(samples[1]!, scrapedAt)).toMatchObject({
      value: 'NaN',
      timestamp: '2023-11-14T22:13:20.000Z',
    });
  });
});

describe('uuidV5 (the ids of the messages a scrape makes)', () => {
  it('makes RFC 9562 version 5 UUIDs', () => {
    // Known answer: uuid v5 of "www.example.com" in the DNS namespace.
    const dns = Buffer.from('6ba7b8109dad11d180b400c04fd430c8', 'hex');
    expect(uuidV5('www.example.com', dns)).toBe('2ed6657d-e927-568b-95e1-2665a8aea6a2');
  });
});
