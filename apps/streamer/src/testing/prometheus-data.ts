import { randomUUID } from 'node:crypto';
import {
  type LeasedMessage,
  MAX_SAMPLES_PER_MESSAGE,
  type SeriesEntry,
  seriesValueOfBits,
} from '@gpu-telemetry/model';
import { type Labels, labelsToRecord, MemorySeriesSource } from '@gpu-telemetry/promql';
import type { Pool } from 'pg';
import type { ChunkCompactor } from '../services/chunk-compactor';
import type { IngestService } from '../services/ingest.service';

/** A series as PromQL test data: labels, sample times (ms), values with staleness markers as bits. */
export interface PromSeries {
  labels: Labels | Record<string, string>;
  timestamps: readonly number[];
  values: Float64Array;
}

const record = (labels: PromSeries['labels']) =>
  Array.isArray(labels) ? labelsToRecord(labels as Labels) : (labels as Record<string, string>);

/**
 * Stores the series the way remote-written series are stored: through the streamer's ingest
 * (`series` messages of at most MAX_SAMPLES_PER_MESSAGE samples, stale markers as "stale"), so
 * labels, values and stale markers are kept as the write path keeps them. Returns the chunks the
 * samples fell in, oldest first.
 */
export async function storeSeries(
  streamer: { ingest: IngestService; pool: Pool },
  series: readonly PromSeries[],
): Promise<{ start: number; end: number }[]> {
  const messages: LeasedMessage<unknown>[] = [];
  let entries: SeriesEntry[] = [];
  let count = 0;
  const flush = () => {
    if (entries.length === 0) return;
    messages.push({
      id: randomUUID(),
      payload: { source: 'remote-write', series: entries },
      attempts: 1,
      publishedAt: new Date().toISOString(),
    });
    entries = [];
    count = 0;
  };
  let first = Infinity;
  let last = -Infinity;
  for (const s of series) {
    const { __name__: metric, ...labels } = record(s.labels);
    const words = new Uint32Array(s.values.buffer, s.values.byteOffset, s.values.length * 2);
    for (let i = 0; i < s.timestamps.length; i += MAX_SAMPLES_PER_MESSAGE) {
      const samples: SeriesEntry['samples'] = [];
      for (let k = i; k < Math.min(s.timestamps.length, i + MAX_SAMPLES_PER_MESSAGE); k++) {
        const t = s.timestamps[k] as number;
        first = Math.min(first, t);
        last = Math.max(last, t);
        samples.push([
          t,
          seriesValueOfBits(words[2 * k + 1] as number, words[2 * k] as number, s.values[k] as number),
        ]);
      }
      if (count + samples.length > MAX_SAMPLES_PER_MESSAGE) flush();
      entries.push({ metric: metric ?? '', labels, samples });
      count += samples.length;
    }
  }
  flush();
  for (let i = 0; i < messages.length; i += 20) {
    const { failed } = await streamer.ingest.handle(messages.slice(i, i + 20));
    if (failed?.length) throw new Error(`not stored: ${JSON.stringify(failed[0])}`);
  }
  const { rows } = await streamer.pool.query<{ s: Date; e: Date }>(
    'SELECT chunk_start AS s, chunk_end AS e FROM telemetry_chunks WHERE chunk_end > $1 AND chunk_start <= $2 ORDER BY 1',
    [new Date(first), new Date(last)],
  );
  return rows.map((r) => ({ start: r.s.getTime(), end: r.e.getTime() }));
}

/** Compacts these chunks now (blocks and rollups), as the maintainer does once they are closed. */
export async function compactChunks(
  compactor: ChunkCompactor,
  chunks: { start: number; end: number }[],
): Promise<void> {
  for (const chunk of chunks) {
    const done = await compactor.compactChunk(chunk);
    if (!done) throw new Error(`chunk ${new Date(chunk.start).toISOString()} was not compacted`);
  }
}

/** The same series in memory: what the engine answers from them is what the stored ones must answer. */
export function memorySource(series: readonly PromSeries[]): MemorySeriesSource {
  const source = new MemorySeriesSource();
  for (const s of series) {
    const words = new Uint32Array(s.values.buffer, s.values.byteOffset, s.values.length * 2);
    source.add(
      record(s.labels),
      s.timestamps.map((t, i) =>
        words[2 * i] === 2 && words[2 * i + 1] === 0x7ff00000
          ? { t, stale: true as const }
          : ([t, s.values[i] as number] as [number, number]),
      ),
    );
  }
  return source;
}
