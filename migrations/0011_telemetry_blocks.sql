-- migrate:up

-- Once a chunk has been closed for TELEMETRY_COMPACT_AFTER, the streamer rewrites each series'
-- samples in it as one block (see apps/streamer/src/codec/block-codec.ts for the layout) and
-- empties the chunk's hot partition, in one transaction.
ALTER TABLE telemetry_chunks
  ADD COLUMN compacted_at timestamptz,
  ADD COLUMN samples bigint,
  ADD COLUMN blocks integer;

-- One row per series per compacted chunk, partitioned by the chunk's UTC day, so retention drops
-- whole days. Blocks are already dense: TOAST is told not to try compressing them.
CREATE TABLE telemetry_blocks (
  series_id   bigint NOT NULL,
  chunk_start timestamptz NOT NULL,
  n           integer NOT NULL,
  data        bytea NOT NULL
) PARTITION BY RANGE (chunk_start);
ALTER TABLE telemetry_blocks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE UNIQUE INDEX telemetry_blocks_key ON telemetry_blocks (series_id, chunk_start);

-- The daily partition <p_parent>_YYYYMMDD holding p_day, for tables partitioned by UTC day.
-- Safe from several streamers at once.
CREATE FUNCTION telemetry_ensure_day(p_parent text, p_day date) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  IF to_regclass(format('%s_%s', p_parent, to_char(p_day, 'YYYYMMDD'))) IS NULL THEN
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   format('%s_%s', p_parent, to_char(p_day, 'YYYYMMDD')), p_parent,
                   p_day::timestamp AT TIME ZONE 'UTC', (p_day + 1)::timestamp AT TIME ZONE 'UTC');
  END IF;
END
$$;

-- Drops the daily partitions of p_parent whose whole day ends at or before p_before; returns their days.
CREATE FUNCTION telemetry_drop_days(p_parent text, p_before timestamptz)
RETURNS SETOF date LANGUAGE plpgsql AS $$
DECLARE
  part record;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  FOR part IN
    SELECT c.relname, to_date(right(c.relname, 8), 'YYYYMMDD') AS day
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = p_parent::regclass AND c.relname ~ ('^' || p_parent || '_\d{8}$')
  LOOP
    IF ((part.day + 1)::timestamp AT TIME ZONE 'UTC') <= p_before THEN
      EXECUTE format('DROP TABLE %I', part.relname);
      RETURN NEXT part.day;
    END IF;
  END LOOP;
END
$$;

-- Drops the chunks that end at or before p_before: their hot partitions, their day of blocks once
-- the whole day is past, and their rows; returns their starts.
CREATE OR REPLACE FUNCTION telemetry_drop_chunks(p_before timestamptz)
RETURNS SETOF timestamptz LANGUAGE plpgsql AS $$
DECLARE
  chunk telemetry_chunks;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  FOR chunk IN SELECT * FROM telemetry_chunks WHERE chunk_end <= p_before ORDER BY chunk_start LOOP
    EXECUTE format('DROP TABLE IF EXISTS %I', telemetry_chunk_partition(chunk.chunk_start));
    DELETE FROM telemetry_chunks WHERE chunk_start = chunk.chunk_start;
    RETURN NEXT chunk.chunk_start;
  END LOOP;
  PERFORM telemetry_drop_days('telemetry_blocks', p_before);
END
$$;

-- The emptied hot partitions of compacted chunks (they refuse rows, see the compactor), dropped
-- when no one holds them: dropping a partition needs a moment alone with telemetry_samples.
CREATE FUNCTION telemetry_drop_compacted_partitions() RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
  chunk telemetry_chunks;
  dropped integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  SET LOCAL lock_timeout = '2s';
  FOR chunk IN SELECT * FROM telemetry_chunks WHERE compacted_at IS NOT NULL ORDER BY chunk_start LOOP
    IF to_regclass(telemetry_chunk_partition(chunk.chunk_start)) IS NOT NULL THEN
      BEGIN
        EXECUTE format('DROP TABLE %I', telemetry_chunk_partition(chunk.chunk_start));
        dropped := dropped + 1;
      EXCEPTION WHEN lock_not_available THEN
        NULL; -- busy: next time
      END;
    END IF;
  END LOOP;
  RETURN dropped;
END
$$;

-- Decoding blocks in SQL, for the view below, dashboards and the down migrations. The streamer
-- decodes them itself; these follow the same layout, set-wise rather than byte by byte.

-- A big-endian integer of p_len bytes at byte p_at (0-based).
CREATE FUNCTION telemetry_block_int(p_data bytea, p_at integer, p_len integer)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (('x' || encode(substring(p_data FROM p_at + 1 FOR p_len), 'hex'))::varbit::bit(64) >> (64 - 8 * p_len))::bigint
$$;

-- The double whose IEEE 754 bits are p_bits.
CREATE FUNCTION telemetry_float8(p_bits bigint)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN e = 2047 AND f = 0 THEN CASE WHEN s THEN '-Infinity'::float8 ELSE 'Infinity'::float8 END
    WHEN e = 2047 THEN 'NaN'::float8
    WHEN e = 0 THEN (CASE WHEN s THEN -1 ELSE 1 END) * (f::float8 * power(2::float8, -1074))
    ELSE (CASE WHEN s THEN -1 ELSE 1 END) * ((4503599627370496 + f)::float8 * power(2::float8, e - 1075))
  END
  FROM (SELECT p_bits < 0 AS s, ((p_bits >> 52) & 2047)::integer AS e, p_bits & 4503599627370495 AS f) AS x
$$;

-- The p_count signed integers of the packed stream at byte p_at: one width byte per group of 32,
-- then each group's zigzagged values at that width, most significant bit first.
CREATE FUNCTION telemetry_unpack(p_data bytea, p_at integer, p_count integer)
RETURNS TABLE (i integer, v bigint) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  WITH grp AS (
    SELECT g, get_byte(p_data, p_at + g) AS w, least(32, p_count - g * 32) AS cnt
    FROM generate_series(0, (p_count + 31) / 32 - 1) AS g
  ), placed AS (
    SELECT g, w, cnt,
           (p_at + (p_count + 31) / 32
             + coalesce(sum((cnt * w + 7) / 8) OVER (ORDER BY g ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0))::integer AS byte_at
    FROM grp
  ), raw AS (
    SELECT g * 32 + j AS i,
           CASE WHEN w = 0 THEN 0::bigint ELSE
             ((('x' || encode(substring(p_data FROM byte_at + (j * w) / 8 + 1 FOR 9), 'hex'))::varbit::bit(72)
               << ((j * w) % 8))::bit(64) >> (64 - w))::bigint END AS z
    FROM placed, generate_series(0, cnt - 1) AS j
  )
  SELECT i, (z >> 1) # (-(z & 1)) FROM raw
$$;

-- The samples of a block, in time order.
CREATE FUNCTION telemetry_decode(p_data bytea)
RETURNS TABLE (ts timestamptz, value double precision) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  WITH h AS (
    SELECT telemetry_block_int(p_data, 1, 4)::integer AS n,
           (ARRAY[1, 10, 100, 1000, 10000, 100000, 1000000])[get_byte(p_data, 5) + 1]::bigint AS unit,
           telemetry_block_int(p_data, 6, 8) AS t0,
           telemetry_block_int(p_data, 14, 4)::integer AS time_bytes,
           get_byte(p_data, 18) AS mode,
           ('{1,1e1,1e2,1e3,1e4,1e5,1e6,1e7,1e8,1e9,1e10,1e11,1e12,1e13,1e14,1e15,1e16,1e17,1e18}'::float8[])
             [get_byte(p_data, 19) + 1] AS scale,
           telemetry_block_int(p_data, 20, 8) AS m0
  ), dt AS (
    SELECT u.i + 1 AS i, sum(u.v) OVER (ORDER BY u.i) AS delta
    FROM h, telemetry_unpack(p_data, 28, h.n - 1) AS u
  ), t AS (
    SELECT 0 AS i, 0::numeric AS off
    UNION ALL
    SELECT i, sum(delta) OVER (ORDER BY i) FROM dt
  ), dm AS (
    SELECT u.i + 1 AS i, CASE WHEN h.mode = 1 THEN u.v::numeric ELSE sum(u.v) OVER (ORDER BY u.i) END AS step
    FROM h, telemetry_unpack(p_data, 28 + h.time_bytes, h.n - 1) AS u
    WHERE h.mode > 0
  ), v AS (
    SELECT g AS i, telemetry_float8(telemetry_block_int(p_data, 28 + h.time_bytes + g * 8, 8)) AS value
    FROM h, generate_series(0, h.n - 1) AS g
    WHERE h.mode = 0
    UNION ALL
    SELECT 0, h.m0::float8 / h.scale FROM h WHERE h.mode > 0
    UNION ALL
    SELECT dm.i, (h.m0 + sum(dm.step) OVER (ORDER BY dm.i))::bigint::float8 / h.scale FROM h, dm
  )
  SELECT TIMESTAMPTZ 'epoch' + ((h.t0 + t.off) * h.unit)::bigint * INTERVAL '1 microsecond', v.value
  FROM h, t JOIN v USING (i)
  ORDER BY t.i
$$;

-- The samples with their series' labels, hot and compacted alike, under the old table's name and
-- columns. ingested_at is no longer stored per sample: it shows the sample time.
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

-- The samples (series, time, value) of these series in [p_from, p_to), hot or compacted, only
-- the blocks in range decoded: for dashboards, e.g.
--   telemetry_between(ARRAY(SELECT id FROM telemetry_series WHERE metric_name = '...'), $from, $to)
-- joined to telemetry_series for the labels.
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

-- migrate:down

-- Compacted samples go back to hot rows (their chunks' partitions made anew), one chunk at a time.
CREATE OR REPLACE VIEW telemetry AS
SELECT telemetry_sample_uuid(s.key, x.ts) AS uuid,
       s.gpu_id, s.gpu_index, s.device, s.model_name, s.hostname, s.metric_name,
       x.ts AS "timestamp", x.value, s.container, s.pod, s.namespace, s.labels,
       x.ts AS ingested_at, s.id AS series_id
FROM telemetry_samples x
JOIN telemetry_series s ON s.id = x.series_id;

DO $$
DECLARE
  chunk telemetry_chunks;
  part text;
BEGIN
  FOR chunk IN SELECT * FROM telemetry_chunks WHERE compacted_at IS NOT NULL ORDER BY chunk_start LOOP
    part := telemetry_chunk_partition(chunk.chunk_start);
    EXECUTE format('DROP TABLE IF EXISTS %I', part);
    EXECUTE format('CREATE TABLE %I PARTITION OF telemetry_samples FOR VALUES FROM (%L) TO (%L)',
                   part, chunk.chunk_start, chunk.chunk_end);
    INSERT INTO telemetry_samples (series_id, ts, value)
    SELECT b.series_id, d.ts, d.value
    FROM telemetry_blocks b CROSS JOIN LATERAL telemetry_decode(b.data) AS d
    WHERE b.chunk_start = chunk.chunk_start;
  END LOOP;
END
$$;
DROP FUNCTION telemetry_between(bigint[], timestamptz, timestamptz);
DROP TABLE telemetry_blocks;
DROP FUNCTION telemetry_decode(bytea);
DROP FUNCTION telemetry_unpack(bytea, integer, integer);
DROP FUNCTION telemetry_float8(bigint);
DROP FUNCTION telemetry_block_int(bytea, integer, integer);
DROP FUNCTION telemetry_drop_compacted_partitions();
DROP FUNCTION telemetry_drop_days(text, timestamptz);
DROP FUNCTION telemetry_ensure_day(text, date);
CREATE OR REPLACE FUNCTION telemetry_drop_chunks(p_before timestamptz)
RETURNS SETOF timestamptz LANGUAGE plpgsql AS $$
DECLARE
  chunk telemetry_chunks;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  FOR chunk IN SELECT * FROM telemetry_chunks WHERE chunk_end <= p_before ORDER BY chunk_start LOOP
    EXECUTE format('DROP TABLE IF EXISTS %I', telemetry_chunk_partition(chunk.chunk_start));
    DELETE FROM telemetry_chunks WHERE chunk_start = chunk.chunk_start;
    RETURN NEXT chunk.chunk_start;
  END LOOP;
END
$$;
ALTER TABLE telemetry_chunks DROP COLUMN compacted_at, DROP COLUMN samples, DROP COLUMN blocks;
