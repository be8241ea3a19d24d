import { MAX_SAMPLES_PER_MESSAGE } from '@gpu-telemetry/model';
import { uuidV5 } from '../parsing/uuid-v5';
import type { OutgoingMessage } from '../publishing/message-builder';
import type { DecodedSeries } from './write-request';

/** Well under the queue's default payload limit (QUEUE_MAX_PAYLOAD, 256 KiB), as for scrapes. */
const MAX_MESSAGE_BYTES = 200 * 1024;

/** A sample value as JSON: -0 keeps its sign (String(-0) is "0"), a stale marker or NaN is a string. */
function valueJson(value: DecodedSeries['values'][number]): string {
  if (typeof value !== 'number') return `"${value}"`;
  return Object.is(value, -0) ? '-0' : String(value);
}

/**
 * The queue messages of one remote write: `{"source":"remote-write","series":[{"metric","labels",
 * "samples":[[ms,value],...]}]}`, each at most 1000 samples and ~200 KiB, a long series split
 * across messages. Every id is derived from `requestHash` (the decompressed request's digest) and
 * the message's place, so a request sent again publishes the same ids: the queue drops them while
 * the first copies wait there, and the streamer, keyed on series and time, stores nothing twice
 * once they are consumed. A retried write never stores a sample twice.
 */
export function buildSeriesMessages(requestHash: string, series: DecodedSeries[]): OutgoingMessage[] {
  const messages: OutgoingMessage[] = [];
  const head = '{"source":"remote-write","series":[';
  let entries: string[] = [];
  let size = head.length;
  let samples = 0;
  let staleMarkers = 0;
  const flush = () => {
    if (entries.length === 0) return;
    const id = uuidV5(`remote-write\n${requestHash}\n${messages.length}`);
    messages.push({
      id,
      json: `{"id":"${id}","payload":${head}${entries.join(',')}]}}`,
      samples,
      staleMarkers,
    });
    entries = [];
    size = head.length;
    samples = 0;
    staleMarkers = 0;
  };
  // Sizes in UTF-8 bytes, as the queue counts them: labels may be any text. (Decoding refused a
  // series whose labels take more than MAX_LABELS_JSON_BYTES, so each fits with samples beside.)
  for (const s of series) {
    const prefix = `{"metric":${JSON.stringify(s.metric)},"labels":${JSON.stringify(s.labels)},"samples":[`;
    const prefixBytes = Buffer.byteLength(prefix);
    let k = 0;
    while (k < s.timestamps.length) {
      if (samples >= MAX_SAMPLES_PER_MESSAGE || size + prefixBytes + 64 > MAX_MESSAGE_BYTES) flush();
      let entry = prefix;
      // Samples are ASCII: a character a byte.
      let entryBytes = prefixBytes;
      let first = true;
      for (; k < s.timestamps.length; k++) {
        const sample = `[${s.timestamps[k]},${valueJson(s.values[k] as DecodedSeries['values'][number])}]`;
        const room =
          samples < MAX_SAMPLES_PER_MESSAGE && size + entryBytes + sample.length + 3 <= MAX_MESSAGE_BYTES;
        if (!room && !first) break;
        entry += first ? sample : `,${sample}`;
        entryBytes += first ? sample.length : sample.length + 1;
        first = false;
        samples++;
        if (s.values[k] === 'stale') staleMarkers++;
      }
      entry += ']}';
      entries.push(entry);
      size += entryBytes + 3;
    }
  }
  flush();
  return messages;
}
