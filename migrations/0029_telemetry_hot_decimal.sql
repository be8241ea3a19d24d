-- migrate:up

-- Hot rows in 40 bytes instead of 48. A row was the 24-byte tuple header and three 8-byte
-- columns: series id, time, value. Nearly every value an exporter sends is a short decimal
-- (87, 1410, 245.117, 0.731522); stored as a 4-byte decimal beside a 4-byte series id, series,
-- value and time take 16 bytes. A value only a double holds exactly (a 14-digit energy counter,
-- 0.1 + 0.2, NaN) keeps its 8-byte `value`, and such a row stays at 48 bytes. In every row exactly
-- one of the two is set; the other is a null, a bit in the header's null bitmap, which has room
-- for it within the 24 bytes. Columns are in this order so that nothing is padded.
--
-- value_dec holds `mantissa << 4 | places`: the value is exactly mantissa / 10^places (a 28-bit
-- mantissa with its sign, 0-9 places). The streamer writes it only where that division gives back
-- the double it was sent, bit for bit (apps/streamer/src/services/hot-value.ts); telemetry_value
-- below reads either column. Rows written directly with `value` alone stay valid.
--
-- Series ids become 4 bytes here: telemetry_series' ids stop at 2^31 - 1 (2.1 billion series).

CREATE FUNCTION telemetry_value(p_value double precision, p_dec integer) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(p_value, (p_dec >> 4)::double precision
    / ('{1,10,100,1000,10000,100000,1000000,10000000,100000000,1000000000}'::double precision[])[(p_dec & 15) + 1])
$$;

ALTER TABLE telemetry_series ALTER COLUMN id SET MAXVALUE 2147483647;

-- The hot rows and partitions of open chunks move to the new table as they are (`value` set); a
-- compacted chunk's partition, empty and waiting to be dropped, is dropped here.
CREATE TEMP TABLE telemetry_hot_moving ON COMMIT DROP AS
  SELECT series_id, ts, value FROM telemetry_samples;
CREATE TEMP TABLE telemetry_hot_parts ON COMMIT DROP AS
  SELECT chunk_start, chunk_end FROM telemetry_chunks
  WHERE compacted_at IS NULL AND to_regclass(telemetry_chunk_partition(chunk_start)) IS NOT NULL;

DROP VIEW telemetry;
DROP FUNCTION telemetry_between(bigint[], timestamptz, timestamptz);
DROP TABLE telemetry_samples;

CREATE TABLE telemetry_samples (
  series_id integer NOT NULL,
  value_dec integer,
  ts        timestamptz NOT NULL,
  value     double precision,
  CONSTRAINT telemetry_samples_one_value CHECK ((value IS NULL) <> (value_dec IS NULL))
) PARTITION BY RANGE (ts);
CREATE INDEX telemetry_samples_series ON telemetry_samples (series_id);

SELECT telemetry_create_partition('telemetry_samples', telemetry_chunk_partition(chunk_start), chunk_start, chunk_end)
FROM telemetry_hot_parts;
INSERT INTO telemetry_samples (series_id, ts, value) SELECT series_id, ts, value FROM telemetry_hot_moving;

-- The samples with their series' labels, hot and compacted alike (as in 0011).
CREATE VIEW telemetry AS
SELECT telemetry_sample_uuid(s.key, x.ts) AS uuid,
       s.gpu_id, s.gpu_index, s.device, s.model_name, s.hostname, s.metric_name,
       x.ts AS "timestamp", telemetry_value(x.value, x.value_dec) AS value, s.container, s.pod,
       s.namespace, s.labels, x.ts AS ingested_at, s.id AS series_id
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

-- The samples (series, time, value) of these series in [p_from, p_to), hot or compacted (as in 0011).
CREATE FUNCTION telemetry_between(p_series bigint[], p_from timestamptz, p_to timestamptz)
RETURNS TABLE (series_id bigint, ts timestamptz, value double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT x.series_id::bigint, x.ts, telemetry_value(x.value, x.value_dec) FROM telemetry_samples x
  WHERE x.series_id = ANY(p_series) AND x.ts >= p_from AND x.ts < p_to
  UNION ALL
  SELECT b.series_id, d.ts, d.value
  FROM telemetry_blocks b
  JOIN telemetry_chunks c ON c.chunk_start = b.chunk_start
  CROSS JOIN LATERAL telemetry_decode(b.data) AS d
  WHERE b.series_id = ANY(p_series) AND b.chunk_start < p_to AND c.chunk_end > p_from
    AND d.ts >= p_from AND d.ts < p_to
$$;

-- migrate:down

CREATE TEMP TABLE telemetry_hot_moving ON COMMIT DROP AS
  SELECT series_id::bigint AS series_id, ts, telemetry_value(value, value_dec) AS value FROM telemetry_samples;
CREATE TEMP TABLE telemetry_hot_parts ON COMMIT DROP AS
  SELECT chunk_start, chunk_end FROM telemetry_chunks
  WHERE compacted_at IS NULL AND to_regclass(telemetry_chunk_partition(chunk_start)) IS NOT NULL;

DROP VIEW telemetry;
DROP FUNCTION telemetry_between(bigint[], timestamptz, timestamptz);
DROP TABLE telemetry_samples;

CREATE TABLE telemetry_samples (
  series_id bigint NOT NULL,
  ts        timestamptz NOT NULL,
  value     double precision NOT NULL
) PARTITION BY RANGE (ts);
CREATE INDEX telemetry_samples_series ON telemetry_samples (series_id);

SELECT telemetry_create_partition('telemetry_samples', telemetry_chunk_partition(chunk_start), chunk_start, chunk_end)
FROM telemetry_hot_parts;
INSERT INTO telemetry_samples (series_id, ts, value) SELECT series_id, ts, value FROM telemetry_hot_moving;

CREATE VIEW telemetry AS
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

CREATE FUNCTION telemetry_between(p_series bigint[], p_from timestamptz, p_to timestamptz)
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

ALTER TABLE telemetry_series ALTER COLUMN id SET MAXVALUE 9223372036854775807;
DROP FUNCTION telemetry_value(double precision, integer);
