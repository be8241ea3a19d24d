import { once } from 'node:events';
import { type Labels, labelsToRecord, MemorySeriesSource } from '@gpu-telemetry/promql';
import type { Pool } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { ChunkCompactor } from '../services/chunk-compactor';
import { ensureChunks, resolveSeries, type SeriesLabels } from '../services/telemetry-write.queries';

/** A series as PromQL test data: labels, sample times (ms), values with staleness markers as bits. */
export interface PromSeries {
  labels: Labels | Record<string, string>;
  timestamps: readonly number[];
  values: Float64Array;
}

const record = (labels: PromSeries['labels']) =>
  Array.isArray(labels) ? labelsToRecord(labels as Labels) : (labels as Record<string, string>);

/**
 * A Prometheus label set as the collector stores a dcgm-exporter sample: UUID, gpu, device,
 * modelName, Hostname, container, pod and namespace in their columns, every other label in
 * `labels`. A series without UUID (a histogram of the exporter itself) has an empty gpu_id.
 */
export function seriesLabelsOf(labels: PromSeries['labels']): SeriesLabels {
  const {
    __name__: name,
    UUID,
    gpu,
    device,
    modelName,
    Hostname,
    container,
    pod,
    namespace,
    ...rest
  } = record(labels);
  const numericGpu = gpu !== undefined && /^\d{1,5}$/.test(gpu);
  return {
    metricName: name ?? '',
    gpuId: UUID ?? '',
    gpuIndex: numericGpu ? Number(gpu) : null,
    device: device ?? null,
    modelName: modelName ?? null,
    hostname: Hostname ?? null,
    container: container ?? null,
    pod: pod ?? null,
    namespace: namespace ?? null,
    labels: { ...rest, ...(gpu !== undefined && !numericGpu ? { gpu } : {}) },
  };
}

const PG_EPOCH_US = 946_684_800_000_000;
const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * Stores the series as hot rows, with their chunks, the way ingest stores them: series through
 * the write queries (resolveSeries), samples by binary COPY so staleness markers keep their bits.
 * Returns the chunks the samples fell in.
 */
export async function storeSeries(
  pool: Pool,
  series: readonly PromSeries[],
  chunkMs: number,
): Promise<{ start: number; end: number }[]> {
  const ids = await resolveSeries(
    pool,
    series.map((s) => seriesLabelsOf(s.labels)),
  );
  const times = new Set<number>();
  for (const s of series) for (const t of s.timestamps) times.add(Math.floor(t / chunkMs) * chunkMs);
  const chunks = await ensureChunks(pool, [...times], chunkMs);
  const client = await pool.connect();
  try {
    const stream = client.query(
      copyFrom('COPY telemetry_samples (series_id, ts, value) FROM STDIN (FORMAT binary)'),
    );
    const done = new Promise<void>((resolve, reject) => {
      stream.on('error', reject);
      stream.on('finish', resolve);
    });
    const header = Buffer.alloc(19);
    SIGNATURE.copy(header);
    if (!stream.write(header)) await once(stream, 'drain');
    for (let k = 0; k < series.length; k++) {
      const s = series[k] as PromSeries;
      const rows = Buffer.alloc(38 * s.timestamps.length);
      const words = new Uint32Array(s.values.buffer, s.values.byteOffset, s.values.length * 2);
      for (let i = 0; i < s.timestamps.length; i++) {
        const at = 38 * i;
        rows.writeInt16BE(3, at);
        rows.writeInt32BE(8, at + 2);
        rows.writeBigInt64BE(BigInt(ids[k] as number), at + 6);
        rows.writeInt32BE(8, at + 14);
        rows.writeBigInt64BE(BigInt((s.timestamps[i] as number) * 1000 - PG_EPOCH_US), at + 18);
        rows.writeInt32BE(8, at + 26);
        rows.writeUInt32BE(words[2 * i + 1] as number, at + 30);
        rows.writeUInt32BE(words[2 * i] as number, at + 34);
      }
      if (!stream.write(rows)) await once(stream, 'drain');
    }
    const trailer = Buffer.alloc(2);
    trailer.writeInt16BE(-1);
    stream.end(trailer);
    await done;
  } finally {
    client.release();
  }
  return chunks.map((c) => ({ start: c.start, end: c.end })).sort((a, b) => a.start - b.start);
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
