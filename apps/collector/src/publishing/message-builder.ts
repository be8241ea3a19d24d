import { MAX_SAMPLES_PER_MESSAGE, type MetricMetadata, type TelemetrySample } from '@gpu-telemetry/model';
import { uuidV5 } from '../parsing/sample-id';

/** A queue message ready to publish: its deterministic id and its JSON text. */
export interface OutgoingMessage {
  id: string;
  json: string;
  samples: number;
}

/** Well under the queue's default payload limit (QUEUE_MAX_PAYLOAD, 256 KiB). */
const MAX_MESSAGE_BYTES = 200 * 1024;

/**
 * Splits one scrape into queue messages of at most 1000 samples and ~200 KiB. Each message id is
 * derived from (source, scrape time, chunk), so publishing it again is a duplicate the queue drops.
 * Every sample is serialised exactly once, as it is added: a scrape holds JSON text, not objects.
 */
export class MessageBuilder {
  private readonly messages: OutgoingMessage[] = [];
  private readonly head: string;
  private parts: string[] = [];
  private size: number;

  constructor(
    private readonly source: string,
    private readonly scrapedAtMs: number,
  ) {
    this.head = `{"source":${JSON.stringify(source)},"samples":[`;
    this.size = this.head.length;
  }

  add(sample: TelemetrySample): void {
    const json = JSON.stringify(sample);
    if (
      this.parts.length >= MAX_SAMPLES_PER_MESSAGE ||
      (this.parts.length > 0 && this.size + json.length + 1 > MAX_MESSAGE_BYTES)
    )
      this.flush();
    this.parts.push(json);
    this.size += json.length + 1;
  }

  /** The messages, the last one closed. */
  finish(): OutgoingMessage[] {
    this.flush();
    return this.messages;
  }

  private flush(): void {
    if (this.parts.length === 0) return;
    const id = uuidV5(`${this.source}\n${this.scrapedAtMs}\n${this.messages.length}`);
    this.messages.push({
      id,
      json: `{"id":"${id}","payload":${this.head}${this.parts.join(',')}]}}`,
      samples: this.parts.length,
    });
    this.parts = [];
    this.size = this.head.length;
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
