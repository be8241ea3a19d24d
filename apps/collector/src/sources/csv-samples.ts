import { isScrapedSample, type ScrapedSample, scrapedSample, toSampleValue } from '@gpu-telemetry/model';
import { fieldErrors } from '@gpu-telemetry/service-kit';
import { CsvError, readCsv } from '../parsing/csv-reader';
import { parseLabelSet } from '../parsing/exposition-parser';
import { parseValue } from '../parsing/sample-value';

/** One row of a dcgm_metrics_*.csv export, before it is stamped with a time. */
export interface CsvRow {
  /** The export's `timestamp`, as written: rows that share it were scraped together. */
  exportedAt: string;
  metricName: string;
  gpuIndex: number | null;
  device: string | null;
  gpuId: string;
  modelName: string | null;
  hostname: string | null;
  container: string | null;
  pod: string | null;
  namespace: string | null;
  value: number;
  labels: Record<string, string>;
}

const COLUMNS = [
  'timestamp',
  'metric_name',
  'gpu_id',
  'device',
  'uuid',
  'modelName',
  'Hostname',
  'container',
  'pod',
  'namespace',
  'value',
  'labels_raw',
];
/** Labels that duplicate a typed column, or are Prometheus bookkeeping, are not kept as labels. */
const TYPED_LABELS = new Set([
  '__name__',
  'UUID',
  'uuid',
  'gpu',
  'device',
  'modelName',
  'Hostname',
  'hostname',
  'container',
  'pod',
  'namespace',
]);

const blank = (text: string | undefined) => (text === undefined || text === '' ? null : text);

/**
 * Reads the CSV export format (header `timestamp,metric_name,gpu_id,device,uuid,modelName,
 * Hostname,container,pod,namespace,value,labels_raw`). Bad rows are reported, not fatal. Rows
 * that read but make a sample the store cannot take (a `gpu_id` past 65535, a uuid that is no GPU
 * id, a field too long) are checked as scraped samples are and reported apart, in `unstorable`:
 * one of them in a message would cost the whole message.
 */
export function readTelemetryCsv(text: string): {
  rows: CsvRow[];
  errors: { line: number; message: string }[];
  unstorable: { line: number; message: string }[];
} {
  const rows: CsvRow[] = [];
  const errors: { line: number; message: string }[] = [];
  const unstorable: { line: number; message: string }[] = [];
  let header: string[] | undefined;
  try {
    readCsv(text, (fields, line) => {
      if (!header) {
        header = fields.map((f) => f.trim());
        const missing = COLUMNS.filter((c) => !header?.includes(c));
        if (missing.length) throw new CsvError(`header lacks ${missing.join(', ')}`, line);
        return;
      }
      const get = (name: string) => fields[(header as string[]).indexOf(name)];
      if (fields.length !== header.length) {
        errors.push({ line, message: `expected ${header.length} fields, found ${fields.length}` });
        return;
      }
      const gpuId = blank(get('uuid'));
      const metricName = get('metric_name') ?? '';
      const value = parseValue(get('value') ?? '');
      const labels = parseLabelSet(get('labels_raw') ?? '');
      if (!gpuId) return void errors.push({ line, message: 'uuid is empty' });
      if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(metricName))
        return void errors.push({ line, message: 'metric_name is not a metric name' });
      if (value === undefined)
        return void errors.push({ line, message: `value ${JSON.stringify(get('value'))} is not a number` });
      if (!labels) return void errors.push({ line, message: 'labels_raw is not a label set' });
      const gpu = get('gpu_id') ?? '';
      const rest: Record<string, string> = {};
      for (const key in labels) if (!TYPED_LABELS.has(key)) rest[key] = labels[key] as string;
      const row: CsvRow = {
        exportedAt: get('timestamp') ?? '',
        metricName,
        gpuIndex: /^\d{1,5}$/.test(gpu) ? Number(gpu) : null,
        device: blank(get('device')),
        gpuId,
        modelName: blank(get('modelName')),
        hostname: blank(get('Hostname')),
        container: blank(get('container')),
        pod: blank(get('pod')),
        namespace: blank(get('namespace')),
        value,
        labels: rest,
      };
      // The time is stamped at replay, always storable; the rest is checked here, once.
      const sample = stampRow(row, 0);
      if (!isScrapedSample(sample)) {
        const checked = scrapedSample.safeParse(sample);
        if (!checked.success) {
          const problems = fieldErrors(checked.error).map((e) => `${e.field} ${e.message}`);
          return void unstorable.push({ line, message: problems.join('; ') });
        }
      }
      rows.push(row);
    });
  } catch (error) {
    if (!(error instanceof CsvError)) throw error;
    errors.push({ line: error.line, message: error.message });
  }
  return { rows, errors, unstorable };
}

/** A CSV row as a sample taken at `timestampMs`. */
export function stampRow(row: CsvRow, timestampMs: number): ScrapedSample {
  return {
    gpuId: row.gpuId,
    gpuIndex: row.gpuIndex,
    device: row.device,
    modelName: row.modelName,
    hostname: row.hostname,
    metricName: row.metricName,
    value: toSampleValue(row.value),
    timestamp: new Date(timestampMs).toISOString(),
    container: row.container,
    pod: row.pod,
    namespace: row.namespace,
    labels: row.labels,
  };
}

/** The longest a run of rows keeps its time while the replay sends it (ReplayClock). */
const MAX_RUN_MS = 10_000;

/**
 * The times a replay stamps rows with. The rows an export took at one time (a run of rows with
 * the same `exportedAt`: one scrape of the fleet) keep one time between them, the time the replay
 * reached the run, as one scrape's samples share its time; the replay may take several ticks to
 * send them. A new scrape starts where the export's time changes, where a series already stamped
 * with the current time comes again (the next pass over the file, an export without times), and
 * MAX_RUN_MS after the current one started, so that no sample is stamped much before it is sent.
 * A scrape started in a later tick takes that tick's time, so a series is stamped twice with one
 * time only by two of its rows sent in the same tick, as when every row took its tick's time.
 */
export class ReplayClock {
  private run: string | undefined;
  /** The time being stamped, and the series stamped with it (metric and GPU). */
  private at = Number.NaN;
  private readonly stamped = new Set<string>();

  stamp(row: CsvRow, nowMs: number): ScrapedSample {
    const series = `${row.metricName}\n${row.gpuId}`;
    const newScrape =
      row.exportedAt !== this.run || this.stamped.has(series) || nowMs - this.at >= MAX_RUN_MS;
    if (newScrape) {
      this.run = row.exportedAt;
      if (nowMs !== this.at) {
        this.at = nowMs;
        this.stamped.clear();
      }
    }
    this.stamped.add(series);
    return stampRow(row, this.at);
  }
}
