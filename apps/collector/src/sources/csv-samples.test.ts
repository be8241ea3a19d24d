import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { frameSamples, scrapedSample, telemetryFrame } from '@gpu-telemetry/model';
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
      exportedAt: '2025-07-18T20:42:34Z',
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

  it('stamps rows with the replay time into valid samples', () => {
    const at = Date.parse('2026-05-01T00:00:00Z');
    const samples = rows.map((row) => stampRow(row, at));
    for (const sample of samples) expect(scrapedSample.safeParse(sample).success).toBe(true);
    expect(samples.every((s) => s.timestamp === '2026-05-01T00:00:00.000Z')).toBe(true);
    expect(stampRow(rows[0]!, at + 1)).toEqual({ ...samples[0], timestamp: '2026-05-01T00:00:00.001Z' });
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
  /** A replay of `file` whose ticks the test drives by hand, and what it sent. */
  async function replayOf(rowsPerSecond: number, file = CSV, loop = true) {
    const sent: OutgoingMessage[] = [];
    const clock = { now: Date.parse('2026-05-01T00:00:00Z') };
    const { registry } = createMetrics('test', { defaultMetrics: false });
    const replay = new CsvReplay({
      file,
      rowsPerSecond,
      loop,
      publisher: { enqueue: (messages) => sent.push(...messages) },
      logger: createLogger('test', 'silent'),
      metrics: createCollectorMetrics(registry),
      now: () => clock.now,
      tickMs: 60_000_000, // ticks are driven by hand
    });
    await replay.start();
    const tick = () => {
      replay.tick(100);
      clock.now += 100;
    };
    const samples = () =>
      sent.map((m) => telemetryFrame.parse(JSON.parse(m.json).payload)).flatMap(frameSamples);
    return { replay, tick, sent, samples, registry, start: clock.now };
  }
  const at = (ms: number) => new Date(ms).toISOString();
  const seriesAt = (s: { metricName: string; gpuId: string; timestamp: string }) =>
    `${s.metricName} ${s.gpuId} ${s.timestamp}`;

  /** A CSV of the fixture's first four rows (GPU_UTIL of four GPUs: s0-s3), as [timestamp, row] lines. */
  function csvOf(lines: [string, number][]): string {
    const [header, ...rows] = readFileSync(CSV, 'utf8').trim().split('\n');
    const text = [
      header,
      ...lines.map(([time, row]) => `"${time}"${rows[row]!.slice(rows[row]!.indexOf(','))}`),
    ];
    const dir = mkdtempSync(path.join(tmpdir(), 'csv-replay-'));
    made.push(dir);
    const file = path.join(dir, 'dcgm_metrics_test.csv');
    writeFileSync(file, text.join('\n'));
    return file;
  }
  const made: string[] = [];
  afterAll(() => {
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
  });
  // The fixture's runs: 741 rows taken at 20:42:34, 741 at :35, 247 at :36, 741 at :37.
  const RUNS = [741, 741, 247, 741];

  it('sends rows at the configured rate, looping over the file, each series once at a time', async () => {
    const { replay, tick, sent, samples, start } = await replayOf(20_000);
    tick(); // 2,000 rows: the first three runs and 271 rows of the fourth
    tick(); // the fourth run's 470 others, then 1,530 from the top
    replay.stop();
    const all = samples();
    expect(all).toHaveLength(4000);
    const frames = sent.map((m) => telemetryFrame.parse(JSON.parse(m.json).payload));
    expect(
      frames.every(
        (p) => p.source === 'csv:dcgm_metrics_20250718_134233.csv' && frameSamples(p).length <= 1000,
      ),
    ).toBe(true);
    const { value: _, ...first } = all[0] as (typeof all)[number];
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
    expect(new Set(all.map(({ value: _v, ...s }) => JSON.stringify(s))).size).toBe(4000);
    // The fourth run keeps the time it was reached, though its end went out a tick later; the
    // second pass is a scrape of its own.
    expect(all.slice(0, 2470).every((s) => s.timestamp === at(start))).toBe(true);
    expect(all.slice(2470).every((s) => s.timestamp === at(start + 100))).toBe(true);
  });

  it('stamps the rows the export took together with one time, the time the replay reached them', async () => {
    const { replay, tick, samples, start } = await replayOf(100); // 10 rows a tick
    for (let i = 0; i < 300; i++) tick(); // 3,000 rows: the whole file, then 530 rows from the top
    replay.stop();
    const times = samples().map((s) => s.timestamp);
    expect(times).toHaveLength(3000);
    // Each run's time is the tick that sent its first row.
    let row = 0;
    for (const run of [...RUNS, 530]) {
      const reached = start + Math.floor(row / 10) * 100;
      expect(new Set(times.slice(row, row + run))).toEqual(new Set([at(reached)]));
      row += run;
    }
    expect(new Set(times).size).toBe(5);
  });

  it('moves a run that takes longer than 10 s to send on to a later time', async () => {
    const { replay, tick, samples, start } = await replayOf(50); // 5 rows a tick: a run of 741 takes 14.8 s
    for (let i = 0; i < 160; i++) tick(); // 800 rows
    replay.stop();
    const times = samples().map((s) => s.timestamp);
    // 10 s of the first run (100 ticks, 500 rows) at its time, its last 241 rows at the tick that
    // passed 10 s, the second run from the tick that reached it.
    expect(new Set(times.slice(0, 500))).toEqual(new Set([at(start)]));
    expect(new Set(times.slice(500, 741))).toEqual(new Set([at(start + 10_000)]));
    expect(new Set(times.slice(741, 800))).toEqual(new Set([at(start + Math.floor(741 / 5) * 100)]));
  });
  it('starts a new time where a series comes again, so a later tick never repeats a series at a time', async () => {
    // s0 and s1 taken at one time; s2, s3 and s0 and s1 again at the next. Three rows a tick: the
    // second run starts in the first tick, and its s0 and s1 go out in the second.
    const file = csvOf([
      ['2025-07-18T20:42:34Z', 0],
      ['2025-07-18T20:42:34Z', 1],
      ['2025-07-18T20:42:35Z', 2],
      ['2025-07-18T20:42:35Z', 3],
      ['2025-07-18T20:42:35Z', 0],
      ['2025-07-18T20:42:35Z', 1],
    ]);
    const { tick, samples, start } = await replayOf(30, file, false);
    tick();
    tick();
    const all = samples();
    expect(all.map((s) => s.timestamp)).toEqual([
      ...Array(4).fill(at(start)), // s0 s1, then s2 s3 of the run reached in the same tick
      ...Array(2).fill(at(start + 100)), // s0 s1 again: a new scrape, at the tick that sent them
    ]);
    expect(new Set(all.map(seriesAt)).size).toBe(6);
  });

  it.each([
    ['rows of one timestamp', '2025-07-18T20:42:34Z'],
    ['an export without times', ''],
  ])('makes each round of the same series a scrape of its own, in %s', async (_, time) => {
    // s0-s3 three times over, then again from the top: 2 rows a tick.
    const file = csvOf([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3].map((row): [string, number] => [time, row]));
    const { replay, tick, samples, start } = await replayOf(20, file);
    for (let i = 0; i < 8; i++) tick();
    replay.stop();
    const all = samples();
    expect(all).toHaveLength(16);
    expect(new Set(all.map(seriesAt)).size).toBe(16);
    expect(all.map((s) => s.timestamp)).toEqual(
      [0, 200, 400, 600].flatMap((offset) => Array(4).fill(at(start + offset))),
    );
  });

  it.each([
    ['a gpu_id past 65535', '"70000","nvidia9","GPU-9","H100"'],
    ['a uuid that is no GPU id', '"9","nvidia9","GPU 9/x","H100"'],
    ['a modelName of 300 characters', `"9","nvidia9","GPU-9","${'M'.repeat(300)}"`],
  ])('leaves out a row with %s, counted as unstorable, and sends the rows beside it', async (_, bad) => {
    const header = readFileSync(CSV, 'utf8').split('\n')[0] as string;
    const row = (gpu: string) => `"2025-07-18T20:42:34Z","DCGM_FI_DEV_GPU_UTIL",${gpu},"h","","","","1",""`;
    const dir = mkdtempSync(path.join(tmpdir(), 'csv-replay-'));
    made.push(dir);
    const file = path.join(dir, 'dcgm_metrics_bad.csv');
    const good = (i: number) => row(`"${i}","nvidia${i}","GPU-${i}","H100"`);
    writeFileSync(file, [header, good(0), good(1), good(2), row(bad), good(3)].join('\n'));
    const { replay, tick, samples, registry } = await replayOf(40, file, false);
    tick();
    replay.stop();
    expect(samples().map((s) => s.gpuId)).toEqual(['GPU-0', 'GPU-1', 'GPU-2', 'GPU-3']);
    const metrics = await registry.metrics();
    expect(metrics).toMatch(/^collector_samples_dropped_total\{reason="unstorable"[^}]*\} 1$/m);
    expect(metrics).toMatch(/^collector_samples_scraped_total(\{[^}]*\})? 4$/m);
  });
});
