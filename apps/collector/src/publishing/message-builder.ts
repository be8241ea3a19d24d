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

/**
 * Splits one scrape into queue messages (telemetryFrame: each GPU's fields, each metric name and
 * the time sent once, a sample as four short fields) of at most 1000 samples and ~200 KiB. Each
 * message id is derived from (source, scrape time, chunk), so publishing it again is a duplicate
 * the queue drops. Every sample is serialised once, as it is added: a scrape holds JSON text, not
 * objects.
 */
export class MessageBuilder {
  private readonly messages: OutgoingMessage[] = [];
  private readonly head: string;
  private groups = new Dictionary();
  private metrics = new Dictionary();
  private times = new Dictionary();
  private samples: string[] = [];
  private size: number;

  constructor(
    private readonly source: string,
    private readonly scrapedAtMs: number,
  ) {
    this.head = `{"source":${JSON.stringify(source)},"groups":[],"metrics":[],"times":[],"samples":[]}`;
    this.size = Buffer.byteLength(this.head);
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
    // A sample's indexes take at most 4 digits each (at most 1000 of anything); values are ASCII.
    const cost = () =>
      this.groups.cost(group) + this.metrics.cost(metric) + this.times.cost(time) + value.length + 16;
    if (
      this.samples.length >= MAX_SAMPLES_PER_MESSAGE ||
      (this.samples.length > 0 && this.size + cost() > MAX_MESSAGE_BYTES)
    )
      this.flush();
    this.size += cost();
    const at = `[${this.groups.add(group)},${this.metrics.add(metric)},${this.times.add(time)},${value}]`;
    this.samples.push(at);
  }

  /** The messages, the last one closed. */
  finish(): OutgoingMessage[] {
    this.flush();
    return this.messages;
  }

  private flush(): void {
    if (this.samples.length === 0) return;
    const id = uuidV5(`${this.source}\n${this.scrapedAtMs}\n${this.messages.length}`);
    const frame =
      `{"source":${JSON.stringify(this.source)},"groups":[${this.groups.parts.join(',')}],` +
      `"metrics":[${this.metrics.parts.join(',')}],"times":[${this.times.parts.join(',')}],` +
      `"samples":[${this.samples.join(',')}]}`;
    this.messages.push({ id, json: `{"id":"${id}","payload":${frame}}`, samples: this.samples.length });
    this.groups = new Dictionary();
    this.metrics = new Dictionary();
    this.times = new Dictionary();
    this.samples = [];
    this.size = Buffer.byteLength(this.head);
  }
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
