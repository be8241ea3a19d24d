-- migrate:up

-- Hot samples without a row in a unique index each. The key (series, time) cost 44 bytes a sample
-- on top of the row's 52 (inserted in every series' place at once, its pages split half full);
-- an index on the series alone keeps each series' rows as one posting list, about 10 bytes a
-- sample, and still finds a series' rows for reads and compaction.
DROP INDEX telemetry_samples_key;
CREATE INDEX telemetry_samples_series ON telemetry_samples (series_id);

-- What keeps a redelivered message from being stored twice instead: the ids of the messages whose
-- hot samples are stored, written in the same transaction as the samples. A message is tagged
-- with the last chunk it put hot samples in, and forgotten when that chunk is compacted or
-- dropped: by then a redelivery's samples are late, and merging late samples into blocks adds
-- only times a block does not hold. The same sample sent in two different messages is two rows
-- until its chunk compacts; reads and compaction keep one (the greatest value, NaN above all).
CREATE TABLE telemetry_ingested (
  message_id  uuid PRIMARY KEY,
  chunk_start timestamptz NOT NULL
);
CREATE INDEX telemetry_ingested_chunk ON telemetry_ingested (chunk_start);

CREATE OR REPLACE VIEW telemetry AS
SELECT telemetry_sample_uuid(s.key, x.ts) AS uuid,
       s.gpu_id, s.gpu_index, s.device, s.model_name, s.hostname, s.metric_name,
       x.ts AS "timestamp", x.value, s.container, s.pod, s.namespace, s.labels,
       x.ts AS ingested_at, s.id AS series_id
FROM (SELECT DISTINCT ON (series_id, ts) series_id, ts, value FROM telemetry_samples
      ORDER BY series_id, ts, value DESC) x
JOIN telemetry_series s ON s.id = x.series_id
UNION ALL
SELECT telemetry_sample_uuid(s.key, d.ts) AS uuid,
       s.gpu_id, s.gpu_index, s.device, s.model_name, s.hostname, s.metric_name,
       d.ts AS "timestamp", d.value, s.container, s.pod, s.namespace, s.labels,
       d.ts AS ingested_at, s.id AS series_id
FROM telemetry_blocks b
JOIN telemetry_series s ON s.id = b.series_id
CROSS JOIN LATERAL telemetry_decode(b.data) AS d;

CREATE OR REPLACE FUNCTION telemetry_between(p_series bigint[], p_from timestamptz, p_to timestamptz)
RETURNS TABLE (series_id bigint, ts timestamptz, value double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  (SELECT DISTINCT ON (x.series_id, x.ts) x.series_id, x.ts, x.value FROM telemetry_samples x
   WHERE x.series_id = ANY(p_series) AND x.ts >= p_from AND x.ts < p_to
   ORDER BY x.series_id, x.ts, x.value DESC)
  UNION ALL
  SELECT b.series_id, d.ts, d.value
  FROM telemetry_blocks b
  JOIN telemetry_chunks c ON c.chunk_start = b.chunk_start
  CROSS JOIN LATERAL telemetry_decode(b.data) AS d
  WHERE b.series_id = ANY(p_series) AND b.chunk_start < p_to AND c.chunk_end > p_from
    AND d.ts >= p_from AND d.ts < p_to
$$;

-- migrate:down

-- One row per (series, time) again, the greatest value kept, as reads chose it; then the key.
DELETE FROM telemetry_samples x
USING telemetry_samples y
WHERE x.series_id = y.series_id AND x.ts = y.ts
  AND (x.value < y.value OR (x.value = y.value AND x.ctid > y.ctid));
CREATE UNIQUE INDEX telemetry_samples_key ON telemetry_samples (series_id, ts);
DROP INDEX telemetry_samples_series;
DROP TABLE telemetry_ingested;

CREATE OR REPLACE VIEW telemetry AS
SELECT telemetry_sample_uuid(s.key, x.ts) AS uuid,
       s.gpu_id, s.gpu_index, s.device, s.model_name, s.hostname, s.metric_name,
       x.ts AS "timestamp", x.value, s.container, s.pod, s.namespace, s.labels,
       x.ts AS ingested_at, s.id AS series_id
FROM telemetry_samples x
JOIN telemetry_series s ON s.id = x.series_id
UNION ALL
SELECT telemetry_sample_uuid(s.key, d.ts) AS uuid,
       s.gpu_id, s.gpu_index, s.device, s.model_name, s.hostname, s.metric_name,
       d.ts AS "timestamp", d.value, s.container, s.pod, s.namespace, s.labels,
       d.ts AS ingested_at, s.id AS series_id
FROM telemetry_blocks b
JOIN telemetry_series s ON s.id = b.series_id
CROSS JOIN LATERAL telemetry_decode(b.data) AS d;

CREATE OR REPLACE FUNCTION telemetry_between(p_series bigint[], p_from timestamptz, p_to timestamptz)
RETURNS TABLE (series_id bigint, ts timestamptz, value double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT x.series_id, x.ts, x.value FROM telemetry_samples x
  WHERE x.series_id = ANY(p_series) AND x.ts >= p_from AND x.ts < p_to
  UNION ALL
  SELECT b.series_id, d.ts, d.value
  FROM telemetry_blocks b
  JOIN telemetry_chunks c ON c.chunk_start = b.chunk_start
  CROSS JOIN LATERAL telemetry_decode(b.data) AS d
  WHERE b.series_id = ANY(p_series) AND b.chunk_start < p_to AND c.chunk_end > p_from
    AND d.ts >= p_from AND d.ts < p_to
$$;
