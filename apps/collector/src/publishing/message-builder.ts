import { MAX_SAMPLES_PER_MESSAGE, type MetricMetadata, type TelemetrySample } from '@gpu-telemetry/model';
import { uuidV5 } from '../parsing/sample-id';

/** A queue message ready to publish: its deterministic id and its JSON text. */
export interface OutgoingMessage {
  id: string;
  json: string;
  samples: number;
  /** Metric metadata entries it carries (a metadata message). */
  metadata?: number;
  /** Called when the message is dropped unpublished (its sender may then send it again). */
  onDropped?: () => void;
}

/** Well under the queue's default payload limit (QUEUE_MAX_PAYLOAD, 256 KiB). */
const MAX_MESSAGE_BYTES = 200 * 1024;

/** The strings of one message's frame, each kept once, with its index. */
class Dictionary {
  readonly index = new Map<string, number>();
  readonly parts: string[] = [];

  /** What adding `json` would cost in UTF-8 bytes (what the queue counts): 0 when it is there already. */
  cost(json: string): number {
    return this.index.has(json) ? 0 : Buffer.byteLength(json) + 1;
  }

  add(json: string): number {
    let i = this.index.get(json);
    if (i === undefined) {
      i = this.parts.length;
      this.index.set(json, i);
      this.parts.push(json);
    }
    return i;
  }
}

/** A frame's row in the making: its group and time, and its values (JSON) by metric index. */
interface Row {
  group: number;
  time: number;
  values: (string | undefined)[];
}

/** JSON's `null`, and the comma after it: what a row pays for a metric it has no sample of. */
const EMPTY_CELL = 5;

/**
 * Splits one scrape into queue messages (telemetryFrame: each GPU's fields, each metric name and
 * the time sent once) of at most 1000 samples and ~200 KiB. A frame's samples go as rows, each
 * GPU's values at a time in metric order (what a scrape's GPUs sharing their metrics makes dense),
 * or as `[group, metric, time, value]` when that is smaller: a scrape whose groups each have a few
 * metrics of their own would fill rows with nulls. Each message id is derived from (source, scrape
 * time, chunk), so publishing it again is a duplicate the queue drops. Every value is serialised
 * once, as it is added: a scrape holds JSON text, not objects.
 */
export class MessageBuilder {
  private readonly messages: OutgoingMessage[] = [];
  private readonly head: number;
  private groups = new Dictionary();
  private metrics = new Dictionary();
  private times = new Dictionary();
  private rows: Row[] = [];
  /** The row that takes a group's next sample at a time, by rowKey. */
  private open = new Map<number, Row>();
  /** The samples as `[group, metric, time, value]`, in the order added. */
  private samples: string[] = [];
  /** The message's UTF-8 bytes but its samples: the head and the groups, metrics and times. */
  private size: number;
  /** The rows' bytes but their cells: each row's brackets and indexes. */
  private rowBytes = 0;
  /** What the rows' values add to their cells counted empty (EMPTY_CELL each). */
  private valueBytes = 0;
  /** The samples' bytes as `[group, metric, time, value]`. */
  private sampleBytes = 0;

  constructor(
    private readonly source: string,
    private readonly scrapedAtMs: number,
  ) {
    this.head = Buffer.byteLength(
      `{"id":"${uuidV5('')}","payload":{"source":${JSON.stringify(source)},"groups":[],"metrics":[],"times":[],"samples":[]}}`,
    );
    this.size = this.head;
  }

  add(sample: TelemetrySample): void {
    const group = JSON.stringify({
      gpuId: sample.gpuId,
      gpuIndex: sample.gpuIndex,
      device: sample.device,
      modelName: sample.modelName,
      hostname: sample.hostname,
      container: sample.container,
      pod: sample.pod,
      namespace: sample.namespace,
      labels: sample.labels,
    });
    const metric = JSON.stringify(sample.metricName);
    const time = JSON.stringify(sample.timestamp);
    const value = JSON.stringify(sample.value);
    if (
      this.samples.length >= MAX_SAMPLES_PER_MESSAGE ||
      (this.samples.length > 0 && this.sizeWith(group, metric, time, value) > MAX_MESSAGE_BYTES)
    )
      this.flush();
    this.size += this.groups.cost(group) + this.metrics.cost(metric) + this.times.cost(time);
    const g = this.groups.add(group);
    const t = this.times.add(time);
    const m = this.metrics.add(metric);
    let row = this.openRow(g, t, m);
    if (!row) {
      row = { group: g, time: t, values: [] };
      this.rows.push(row);
      this.open.set(rowKey(g, t), row);
      this.rowBytes += rowOverhead(g, t);
    }
    row.values[m] = value;
    this.valueBytes += value.length - 4;
    const at = `[${g},${m},${t},${value}]`;
    this.samples.push(at);
    this.sampleBytes += at.length + 1;
  }

  /** The message's bytes once the sample is in, in the smaller of the two forms. */
  private sizeWith(group: string, metric: string, time: string, value: string): number {
    const g = this.groups.index.get(group) ?? this.groups.parts.length;
    const t = this.times.index.get(time) ?? this.times.parts.length;
    const m = this.metrics.index.get(metric) ?? this.metrics.parts.length;
    const newRow = !this.openRow(g, t, m);
    const asRows = rowsBytes(
      this.rowBytes + (newRow ? rowOverhead(g, t) : 0),
      this.rows.length + (newRow ? 1 : 0),
      this.metrics.parts.length + (m === this.metrics.parts.length ? 1 : 0),
      this.valueBytes + value.length - 4,
    );
    // `[g,m,t,value],`
    const asSamples =
      this.sampleBytes + String(g).length + String(m).length + String(t).length + value.length + 6;
    return (
      this.size +
      this.groups.cost(group) +
      this.metrics.cost(metric) +
      this.times.cost(time) +
      Math.min(asRows, asSamples)
    );
  }

  /**
   * The row that takes group `g`'s sample of metric `m` at time `t`: the open one, unless it has
   * that metric already (the same series twice in a scrape: the second value goes in a row of its
   * own, as it came); undefined when a new row is needed.
   */
  private openRow(g: number, t: number, m: number): Row | undefined {
    const row = this.open.get(rowKey(g, t));
    return row && row.values[m] === undefined ? row : undefined;
  }

  /** The messages, the last one closed. */
  finish(): OutgoingMessage[] {
    this.flush();
    return this.messages;
  }

  private flush(): void {
    if (this.samples.length === 0) return;
    const id = uuidV5(`${this.source}\n${this.scrapedAtMs}\n${this.messages.length}`);
    const metrics = this.metrics.parts.length;
    let samples: string;
    if (rowsBytes(this.rowBytes, this.rows.length, metrics, this.valueBytes) <= this.sampleBytes) {
      const rows = this.rows.map((row) => {
        let cells = `[${row.group},${row.time}`;
        for (let m = 0; m < metrics; m++) cells += `,${row.values[m] ?? 'null'}`;
        return `${cells}]`;
      });
      samples = `"rows":[${rows.join(',')}]`;
    } else samples = `"samples":[${this.samples.join(',')}]`;
    const frame =
      `{"source":${JSON.stringify(this.source)},"groups":[${this.groups.parts.join(',')}],` +
      `"metrics":[${this.metrics.parts.join(',')}],"times":[${this.times.parts.join(',')}],` +
      `${samples}}`;
    this.messages.push({ id, json: `{"id":"${id}","payload":${frame}}`, samples: this.samples.length });
    this.groups = new Dictionary();
    this.metrics = new Dictionary();
    this.times = new Dictionary();
    this.rows = [];
    this.open = new Map();
    this.samples = [];
    this.rowBytes = 0;
    this.valueBytes = 0;
    this.sampleBytes = 0;
    this.size = this.head;
  }
}

/** A group and time as one number (each is an index below 1000, MAX_SAMPLES_PER_MESSAGE). */
function rowKey(group: number, time: number): number {
  return group * 1024 + time;
}

/**
 * The bytes of `rows` rows as sent, of `metrics` cells each: their brackets and indexes
 * (`overheads`), every cell counted empty, and what their values add to that (`valueBytes`).
 */
function rowsBytes(overheads: number, rows: number, metrics: number, valueBytes: number): number {
  return overheads + rows * metrics * EMPTY_CELL + valueBytes;
}

/** A row's bytes but its cells: `[g,t]` and the comma after it. */
function rowOverhead(group: number, time: number): number {
  return String(group).length + String(time).length + 4;
}

/** The messages of samples already in hand (a CSV replay step). */
export function buildMessages(
  source: string,
  scrapedAtMs: number,
  samples: TelemetrySample[],
): OutgoingMessage[] {
  const builder = new MessageBuilder(source, scrapedAtMs);
  for (const sample of samples) builder.add(sample);
  return builder.finish();
}

/**
 * Metadata messages (`{source, metadata}`) of one scrape or write: at most 1000 metrics and ~200
 * KiB (counted in UTF-8 bytes: help texts may be long and not ASCII) each. Ids come from the
 * source and `key` (the scrape's time, the write's digest), so a retried publish is a duplicate;
 * storing the same metadata again changes nothing.
 */
export function metadataMessages(source: string, key: string, entries: MetricMetadata[]): OutgoingMessage[] {
  const out: OutgoingMessage[] = [];
  const head = Buffer.byteLength(JSON.stringify({ id: uuidV5(''), payload: { source, metadata: [] } }));
  let batch: string[] = [];
  let size = head;
  const flush = () => {
    if (batch.length === 0) return;
    const id = uuidV5(`${source}\n${key}\nmetadata\n${out.length}`);
    out.push({
      id,
      json: `{"id":"${id}","payload":{"source":${JSON.stringify(source)},"metadata":[${batch.join(',')}]}}`,
      samples: 0,
      metadata: batch.length,
    });
    batch = [];
    size = head;
  };
  for (const entry of entries) {
    const json = JSON.stringify(entry);
    const bytes = Buffer.byteLength(json) + 1;
    if (batch.length >= MAX_SAMPLES_PER_MESSAGE || (batch.length > 0 && size + bytes > MAX_MESSAGE_BYTES))
      flush();
    batch.push(json);
    size += bytes;
  }
  flush();
  return out;
}
