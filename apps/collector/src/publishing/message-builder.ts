import { MAX_SAMPLES_PER_MESSAGE, type TelemetrySample } from '@gpu-telemetry/model';
import { uuidV5 } from '../parsing/sample-id';

/** A queue message ready to publish: its deterministic id and its JSON text. */
export interface OutgoingMessage {
  id: string;
  json: string;
  samples: number;
}

/** Stay well under the queue's 256 KiB payload limit. */
export const MAX_MESSAGE_BYTES = 200 * 1024;

/**
 * Splits one scrape into queue messages of at most 1000 samples and ~200 KiB. Each message id is
 * derived from (source, scrape time, chunk), so publishing it again is a duplicate the queue drops.
 * Every sample is serialised exactly once, here.
 */
export function buildMessages(
  source: string,
  scrapedAtMs: number,
  samples: TelemetrySample[],
): OutgoingMessage[] {
  const messages: OutgoingMessage[] = [];
  const head = `{"source":${JSON.stringify(source)},"samples":[`;
  let parts: string[] = [];
  let size = head.length;
  const flush = () => {
    if (parts.length === 0) return;
    const id = uuidV5(`${source}\n${scrapedAtMs}\n${messages.length}`);
    messages.push({
      id,
      json: `{"id":"${id}","payload":${head}${parts.join(',')}]}}`,
      samples: parts.length,
    });
    parts = [];
    size = head.length;
  };
  for (const sample of samples) {
    const json = JSON.stringify(sample);
    if (
      parts.length >= MAX_SAMPLES_PER_MESSAGE ||
      (parts.length > 0 && size + json.length + 1 > MAX_MESSAGE_BYTES)
    )
      flush();
    parts.push(json);
    size += json.length + 1;
  }
  flush();
  return messages;
}
