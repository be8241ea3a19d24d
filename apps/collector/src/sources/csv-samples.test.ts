import { readFileSync } from 'node:fs';
import path from 'node:path';
import { frameSamples, telemetryFrame, telemetrySample } from '@gpu-telemetry/model';
import { createLogger, createMetrics } from '@gpu-telemetry/service-kit';
import { createCollectorMetrics } from '../collector.metrics';
import type { OutgoingMessage } from '../publishing/message-builder';
import { readCsv } from '../parsing/csv-reader';
import { CsvReplay } from './csv-replay';
import { readTelemetryCsv, stampRow } from './csv-samples';

const CSV = path.resolve(__dirname, '../../../../fixtures/csv/dcgm_metrics_20250718_134233.csv');

describe('reading the real telemetry CSV', () => {
  const { rows, errors } = readTelemetryCsv(readFileSync(CSV, 'utf8'));

  it('reads all 2,470 rows: 10 metrics x 247 GPUs on 31 hosts, with no errors', () => {
    expect(errors).toEqual([]);
    expect(rows).toHaveLength(2470);
    expect(new Set(rows.map((r) => r.metricName)).size).toBe(10);
    expect(new Set(rows.map((r) => r.gpuId)).size).toBe(247);
    expect(new Set(rows.map((r) => r.hostname)).size).toBe(31);
  });

  it('maps columns and labels_raw (with its CSV-escaped quotes) onto samples', () => {
    expect(rows[0]).toEqual({
      metricName: 'DCGM_FI_DEV_GPU_UTIL',
      gpuIndex: 0,
      device: 'nvidia0',
      gpuId: 'GPU-5fd4f087-86f3-7a43-b711-4771313afc50',
      modelName: 'NVIDIA H100 80GB HBM3',
      hostname: 'mtv5-dgx1-hgpu-031',
      container: null,
      pod: null,
      namespace: null,
      value: 0,
      labels: {
        DCGM_FI_DRIVER_VERSION: '535.129.03',
        instance: 'mtv5-dgx1-hgpu-031:9400',
        job: 'dgx_dcgm_exporter',
      },
    });
    const power = rows.filter((r) => r.metricName === 'DCGM_FI_DEV_POWER_USAGE').map((r) => r.value);
    expect(Math.min(...power)).toBeCloseTo(66.781);
    expect(Math.max(...power)).toBeCloseTo(689.457);
  });

  it('stamps rows with the replay time into valid samples whose ids differ per replay time', () => {
    const at = Date.parse('2026-05-01T00:00:00Z');
    const samples = rows.map((row) => stampRow(row, at));
    for (const sample of samples) expect(telemetrySample.safeParse(sample).success).toBe(true);
    expect(new Set(samples.map((s) => s.uuid)).size).toBe(2470);
    expect(samples.every((s) => s.timestamp === '2026-05-01T00:00:00.000Z')).toBe(true);
    expect(stampRow(rows[0]!, at + 1).uuid).not.toBe(samples[0]?.uuid);
    expect(stampRow(rows[0]!, at).uuid).toBe(samples[0]?.uuid);
  });
});

describe('readCsv', () => {
  it('handles quotes, escaped quotes, embedded commas and newlines, and CRLF', () => {
    const records: string[][] = [];
    readCsv('a,"b ""c"", d","x\ny"\r\n1,,3\n', (fields) => records.push(fields));
    expect(records).toEqual([
      ['a', 'b "c", d', 'x\ny'],
      ['1', '', '3'],
    ]);
  });

  it('reports bad rows and an unterminated quote without throwing', () => {
    const header =
      'timestamp,metric_name,gpu_id,device,uuid,modelName,Hostname,container,pod,namespace,value,labels_raw';
    const { rows, errors } = readTelemetryCsv(
      `${header}\n"t","m","0","nvidia0","GPU-1","L4","h","","","","abc",""\n"t","m","0"\n"t","m","0","nvidia0","GPU-1","L4","h","","","","1","gpu=""0"""\n"unterminated`,
    );
    expect(rows).toHaveLength(1);
    expect(errors.map((e) => e.message)).toEqual([
      'value "abc" is not a number',
      'expected 12 fields, found 3',
      'unterminated quoted field starting on line 5',
    ]);
  });
});

describe('CsvReplay', () => {
  it('sends rows at the configured rate, stamped with the time they are processed, looping over the file', async () => {
    const sent: OutgoingMessage[] = [];
    let now = Date.parse('2026-05-01T00:00:00Z');
    const replay = new CsvReplay({
      file: CSV,
      rowsPerSecond: 20_000,
      loop: true,
      publisher: { enqueue: (messages) => sent.push(...messages) },
      logger: createLogger('test', 'silent'),
      metrics: createCollectorMetrics(createMetrics('test', { defaultMetrics: false }).registry),
      now: () => now,
      tickMs: 60_000_000, // ticks are driven by hand below
    });
    await replay.start();
    replay.tick(100); // 2,000 rows
    now += 100;
    replay.tick(100); // 470 to the end of the file, then 1,530 from the top
    replay.stop();
    const payloads = sent.map((m) => telemetryFrame.parse(JSON.parse(m.json).payload));
    const samples = payloads.flatMap(frameSamples);
    expect(samples).toHaveLength(4000);
    expect(
      payloads.every((p) => p.source === 'csv:dcgm_metrics_20250718_134233.csv' && p.samples.length <= 1000),
    ).toBe(true);
    // Each a sample of its own: no series sent twice at one time.
    const { value: _, ...first } = samples[0] as (typeof samples)[number];
    expect(Object.keys(first).sort()).toEqual([
      'container',
      'device',
      'gpuId',
      'gpuIndex',
      'hostname',
      'labels',
      'metricName',
      'modelName',
      'namespace',
      'pod',
      'timestamp',
    ]);
    expect(new Set(samples.map(({ value: _v, ...s }) => JSON.stringify(s))).size).toBe(4000);
    expect(samples.slice(0, 2000).every((s) => s.timestamp === '2026-05-01T00:00:00.000Z')).toBe(true);
    expect(samples.slice(2000).every((s) => s.timestamp === '2026-05-01T00:00:00.100Z')).toBe(true);
  });
});
