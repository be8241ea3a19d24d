import { copyIn, copyText, isPgError } from '@gpu-telemetry/db';
import { type TelemetrySample, fromSampleValue } from '@gpu-telemetry/model';
import type { Pool, PoolClient } from 'pg';

/**
 * The hot insert. Measured here: a plain COPY into telemetry is the fastest way in (~100k rows/s),
 * COPY into a temp table then INSERT ... SELECT ... ON CONFLICT DO NOTHING the fastest idempotent
 * one (~60k), a prepared multi-row INSERT ~42k. Nearly every batch is new rows, so a batch goes
 * in by plain COPY first; the unique key on (gpu_id, metric_name, timestamp, uuid) refuses it
 * whole if any row is already stored, and only then does it take the de-duplicating path. Either
 * way a batch is one transaction and a redelivered sample is never stored twice.
 */
const COLUMNS =
  'uuid, gpu_id, gpu_index, device, model_name, hostname, metric_name, "timestamp", value, container, pod, namespace, labels';
const staged = new WeakSet<PoolClient>();

function number(value: TelemetrySample['value']): string {
  const n = fromSampleValue(value);
  return Number.isNaN(n) ? 'NaN' : n === Infinity ? 'Infinity' : n === -Infinity ? '-Infinity' : String(n);
}

/** One line of COPY text format. */
export function copyLine(s: TelemetrySample): string {
  return (
    `${s.uuid}\t${copyText(s.gpuId)}\t${s.gpuIndex ?? '\\N'}\t${copyText(s.device)}\t${copyText(s.modelName)}\t${copyText(s.hostname)}\t` +
    `${copyText(s.metricName)}\t${s.timestamp}\t${number(s.value)}\t${copyText(s.container)}\t${copyText(s.pod)}\t${copyText(s.namespace)}\t` +
    `${copyText(JSON.stringify(s.labels))}\n`
  );
}

/** Streams the samples to `COPY <table> FROM STDIN`, with backpressure; returns the row count. */
function copyRows(client: PoolClient, table: string, samples: TelemetrySample[]): Promise<number> {
  return copyIn(client, `${table} (${COLUMNS})`, copyChunks(samples));
}

/** The samples as COPY text, 500 lines a chunk, each made only when the COPY is ready for it. */
function* copyChunks(samples: TelemetrySample[]): Generator<string> {
  const CHUNK = 500;
  for (let i = 0; i < samples.length; i += CHUNK) {
    let chunk = '';
    for (const sample of samples.slice(i, i + CHUNK)) chunk += copyLine(sample);
    yield chunk;
  }
}

export type InsertPath = 'copy' | 'dedup';

/**
 * Stores the samples in one transaction; returns how many were new and which path they took:
 * `copy` (all new, one plain COPY) or `dedup` (some were stored before).
 */
export async function insertSamples(
  pool: Pool,
  samples: TelemetrySample[],
): Promise<{ inserted: number; path: InsertPath }> {
  if (samples.length === 0) return { inserted: 0, path: 'copy' };
  const client = await pool.connect();
  try {
    try {
      // One statement, so its own transaction: all rows or none.
      return { inserted: await copyRows(client, 'telemetry', samples), path: 'copy' };
    } catch (error) {
      if (!isPgError(error, '23505')) throw error; // unique_violation
    }
    await client.query('BEGIN');
    try {
      if (!staged.has(client)) {
        await client.query(
          `CREATE TEMP TABLE IF NOT EXISTS telemetry_stage (LIKE telemetry INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`,
        );
        staged.add(client);
      }
      await copyRows(client, 'telemetry_stage', samples);
      const result = await client.query({
        name: 'telemetry_insert',
        text: `INSERT INTO telemetry (${COLUMNS}) SELECT ${COLUMNS} FROM telemetry_stage ON CONFLICT DO NOTHING`,
      });
      await client.query('COMMIT');
      return { inserted: result.rowCount ?? 0, path: 'dedup' };
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw error;
    }
  } finally {
    client.release();
  }
}

export interface GpuSighting {
  gpuId: string;
  gpuIndex: number | null;
  device: string | null;
  modelName: string | null;
  hostname: string | null;
  firstSeen: string;
  lastSeen: string;
  metrics: string[];
}

/** Keeps `gpus` current: one row per GPU, updated only when something moved. */
export async function upsertGpus(pool: Pool, gpus: GpuSighting[]): Promise<void> {
  if (gpus.length === 0) return;
  await pool.query({
    name: 'gpus_upsert',
    text: `INSERT INTO gpus AS g (gpu_id, gpu_index, device, model_name, hostname, first_seen, last_seen, metrics)
      SELECT x."gpuId", x."gpuIndex", x.device, x."modelName", x.hostname, x."firstSeen", x."lastSeen", x.metrics
      FROM jsonb_to_recordset($1::jsonb) AS x("gpuId" text, "gpuIndex" int, device text, "modelName" text, hostname text,
                                              "firstSeen" timestamptz, "lastSeen" timestamptz, metrics text[])
      ORDER BY x."gpuId" -- one lock order for every writer: concurrent batches never deadlock
      ON CONFLICT (gpu_id) DO UPDATE SET
        gpu_index = coalesce(excluded.gpu_index, g.gpu_index),
        device = coalesce(excluded.device, g.device),
        model_name = coalesce(excluded.model_name, g.model_name),
        hostname = coalesce(excluded.hostname, g.hostname),
        first_seen = least(g.first_seen, excluded.first_seen),
        last_seen = greatest(g.last_seen, excluded.last_seen),
        metrics = CASE WHEN excluded.metrics <@ g.metrics THEN g.metrics
                       ELSE ARRAY(SELECT DISTINCT m FROM unnest(g.metrics || excluded.metrics) AS m ORDER BY m) END
      WHERE excluded.last_seen > g.last_seen OR excluded.first_seen < g.first_seen OR NOT excluded.metrics <@ g.metrics`,
    values: [JSON.stringify(gpus)],
  });
}

/** Daily partitions for [from, to] (UTC dates, YYYY-MM-DD). */
export async function ensurePartitions(pool: Pool, from: string, to: string): Promise<number> {
  const { rows } = await pool.query<{ created: number }>(
    'SELECT telemetry_ensure_partitions($1::date, $2::date) AS created',
    [from, to],
  );
  return rows[0]?.created ?? 0;
}

/** Drops the partitions entirely older than `before`; deletes GPUs not seen since. */
export async function dropExpired(pool: Pool, before: Date): Promise<string[]> {
  const { rows } = await pool.query<{ dropped: string[] }>(
    'SELECT telemetry_drop_partitions($1) AS dropped',
    [before],
  );
  await pool.query('DELETE FROM gpus WHERE last_seen < $1', [before]);
  return rows[0]?.dropped ?? [];
}
