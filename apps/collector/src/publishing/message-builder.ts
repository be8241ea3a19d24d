import { MAX_SAMPLES_PER_MESSAGE, type MetricMetadata, type ScrapedSample } from '@gpu-telemetry/model';
import { uuidV5 } from '../parsing/uuid-v5';

/** A queue message ready to publish: its deterministic id and its JSON text. */
export interface OutgoingMessage {
  id: string;
  json: string;
  samples: number;
  /** Of `samples`, the stale markers (remote write). */
  staleMarkers?: number;
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
  /** Its place in the message's rows. */
  index: number;
  group: number;
  time: number;
  values: (string | undefined)[];
}

/** The label sets of one GPU whose group JSON a builder keeps (MIG: up to 7 instances and the GPU). */
const GROUPS_A_GPU = 8;

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
  /** The samples in the order added, as pairs: the index of the row holding it, its metric. */
  private order: number[] = [];
  /** The samples in the message. */
  private count = 0;
  /** Each group's JSON, made once a scrape: by GPU id, the groups (label sets) of that GPU. */
  private readonly groupJson = new Map<string, { of: ScrapedSample; json: string }[]>();
  /** The last sample's time, and its JSON: a scrape's samples share one. */
  private lastTime = '';
  private lastTimeJson = '""';
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

  add(sample: ScrapedSample): void {
    const group = this.groupOf(sample);
    const metric = JSON.stringify(sample.metricName);
    if (sample.timestamp !== this.lastTime) {
      this.lastTime = sample.timestamp;
      this.lastTimeJson = JSON.stringify(sample.timestamp);
    }
    const time = this.lastTimeJson;
    const value = JSON.stringify(sample.value);
    if (
      this.count >= MAX_SAMPLES_PER_MESSAGE ||
      (this.count > 0 &&
        this.mayExceed(group, metric, time, value) &&
        this.sizeWith(group, metric, time, value) > MAX_MESSAGE_BYTES)
    )
      this.flush();
    this.size += this.groups.cost(group) + this.metrics.cost(metric) + this.times.cost(time);
    const g = this.groups.add(group);
    const t = this.times.add(time);
    const m = this.metrics.add(metric);
    let row = this.openRow(g, t, m);
    if (!row) {
      row = { index: this.rows.length, group: g, time: t, values: [] };
      this.rows.push(row);
      this.open.set(rowKey(g, t), row);
      this.rowBytes += rowOverhead(g, t);
    }
    row.values[m] = value;
    this.valueBytes += value.length - 4;
    this.order.push(row.index, m);
    this.count++;
    // `[g,m,t,value],`
    this.sampleBytes += digits(g) + digits(m) + digits(t) + value.length + 6;
  }

  /**
   * The JSON of a sample's group (its GPU fields and labels). A scrape has tens of samples of each
   * GPU: the JSON is made for the first, and found again for the others by comparing fields. A GPU
   * keeps at most GROUPS_A_GPU label sets so (its MIG instances); past them, as for samples whose
   * labels are all their own (a pid, a histogram's le), the JSON is made each time, the dictionary
   * still sending each group once: the search stays short whatever a target sends.
   */
  private groupOf(sample: ScrapedSample): string {
    let known = this.groupJson.get(sample.gpuId);
    if (known) {
      for (const entry of known) if (sameGroup(entry.of, sample)) return entry.json;
    } else this.groupJson.set(sample.gpuId, (known = []));
    const json = JSON.stringify({
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
    if (known.length < GROUPS_A_GPU) known.push({ of: sample, json });
    return json;
  }

  /**
   * Whether the sample might take the message past MAX_MESSAGE_BYTES: a bound of what sizeWith
   * works out, without its lookups (each string at most 3 UTF-8 bytes a UTF-16 unit, as new to the
   * message; the sample as `[g, m, t, v]`, the larger form; indexes of up to 4 digits).
   */
  private mayExceed(group: string, metric: string, time: string, value: string): boolean {
    const strings = 3 * (group.length + metric.length + time.length) + 3;
    return this.size + strings + this.sampleBytes + value.length + 18 > MAX_MESSAGE_BYTES;
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
    const asSamples = this.sampleBytes + digits(g) + digits(m) + digits(t) + value.length + 6;
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
    if (this.count === 0) return;
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
    } else {
      const cells: string[] = [];
      for (let i = 0; i < this.order.length; i += 2) {
        const row = this.rows[this.order[i] as number] as Row;
        const m = this.order[i + 1] as number;
        cells.push(`[${row.group},${m},${row.time},${row.values[m]}]`);
      }
      samples = `"samples":[${cells.join(',')}]`;
    }
    const frame =
      `{"source":${JSON.stringify(this.source)},"groups":[${this.groups.parts.join(',')}],` +
      `"metrics":[${this.metrics.parts.join(',')}],"times":[${this.times.parts.join(',')}],` +
      `${samples}}`;
    this.messages.push({ id, json: `{"id":"${id}","payload":${frame}}`, samples: this.count });
    this.groups = new Dictionary();
    this.metrics = new Dictionary();
    this.times = new Dictionary();
    this.rows = [];
    this.open = new Map();
    this.order = [];
    this.count = 0;
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
  return digits(group) + digits(time) + 4;
}

/** The characters of a frame index (below 1024) in JSON. */
function digits(index: number): number {
  return index < 10 ? 1 : index < 100 ? 2 : index < 1000 ? 3 : 4;
}

/** Whether two samples have one group: the same GPU fields and labels. */
function sameGroup(a: ScrapedSample, b: ScrapedSample): boolean {
  return (
    a.gpuId === b.gpuId &&
    a.gpuIndex === b.gpuIndex &&
    a.device === b.device &&
    a.modelName === b.modelName &&
    a.hostname === b.hostname &&
    a.container === b.container &&
    a.pod === b.pod &&
    a.namespace === b.namespace &&
    sameLabels(a.labels, b.labels)
  );
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  if (a === b) return true;
  let count = 0;
  for (const key in a) {
    if (a[key] !== b[key]) return false;
    count++;
  }
  for (const _ in b) count--;
  return count === 0;
}

/** The messages of samples already in hand (a CSV replay step). */
export function buildMessages(
  source: string,
  scrapedAtMs: number,
  samples: ScrapedSample[],
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
