import { MAX_SAMPLES_PER_MESSAGE } from '@gpu-telemetry/model';
import { uuidV5 } from '../parsing/sample-id';
import type { OutgoingMessage } from '../publishing/message-builder';
import { WriteRequestError, type DecodedSeries } from './write-request';

/** Well under the queue's default payload limit (QUEUE_MAX_PAYLOAD, 256 KiB), as for scrapes. */
const MAX_MESSAGE_BYTES = 200 * 1024;
/** A series' labels as JSON must leave room for its samples in one message. */
export const MAX_LABELS_JSON_BYTES = 64 * 1024;

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
  const flush = () => {
    if (entries.length === 0) return;
    const id = uuidV5(`remote-write\n${requestHash}\n${messages.length}`);
    messages.push({ id, json: `{"id":"${id}","payload":${head}${entries.join(',')}]}}`, samples });
    entries = [];
    size = head.length;
    samples = 0;
  };
  series.forEach((s, index) => {
    const prefix = `{"metric":${JSON.stringify(s.metric)},"labels":${JSON.stringify(s.labels)},"samples":[`;
    if (prefix.length > MAX_LABELS_JSON_BYTES) {
      throw new WriteRequestError(
        `timeseries[${index}]: its labels take more than ${MAX_LABELS_JSON_BYTES} bytes as JSON`,
      );
    }
    let k = 0;
    while (k < s.timestamps.length) {
      if (samples >= MAX_SAMPLES_PER_MESSAGE || size + prefix.length + 64 > MAX_MESSAGE_BYTES) flush();
      let entry = prefix;
      let first = true;
      for (; k < s.timestamps.length; k++) {
        const value = s.values[k];
        const sample = `[${s.timestamps[k]},${typeof value === 'number' ? String(value) : `"${value}"`}]`;
        const room =
          samples < MAX_SAMPLES_PER_MESSAGE && size + entry.length + sample.length + 3 <= MAX_MESSAGE_BYTES;
        if (!room && !first) break;
        entry += first ? sample : `,${sample}`;
        first = false;
        samples++;
      }
      entry += ']}';
      entries.push(entry);
      size += entry.length + 1;
    }
  });
  flush();
  return messages;
}
