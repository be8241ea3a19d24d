-- migrate:up

-- Per series, 1-minute and 1-hour count, sum, min, max and last of the finite values, written as
-- chunks compact (see apps/streamer/src/codec/rollup.ts), kept longer than the samples
-- (TELEMETRY_RETENTION_1M, TELEMETRY_RETENTION_1H), and read for long ranges at coarse steps.
-- A row holds one series' buckets of one chunk; once a day is closed and compacted its 1-hour rows
-- are folded into one row per series (`start` the day), so a year costs 365 rows per series.
CREATE TABLE telemetry_rollups_1m (
  series_id bigint NOT NULL,
  start     timestamptz NOT NULL,
  data      bytea NOT NULL
) PARTITION BY RANGE (start);
ALTER TABLE telemetry_rollups_1m ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE UNIQUE INDEX telemetry_rollups_1m_key ON telemetry_rollups_1m (series_id, start);

CREATE TABLE telemetry_rollups_1h (
  series_id bigint NOT NULL,
  start     timestamptz NOT NULL,
  data      bytea NOT NULL
) PARTITION BY RANGE (start);
ALTER TABLE telemetry_rollups_1h ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE UNIQUE INDEX telemetry_rollups_1h_key ON telemetry_rollups_1h (series_id, start);

-- Days whose 1-hour rollups are folded into one row per series.
CREATE TABLE telemetry_rollup_days (
  day       date PRIMARY KEY,
  folded_at timestamptz NOT NULL DEFAULT now()
);

-- Days with 1-hour rollups ready to fold: ended at or before p_closed_before, every chunk that
-- overlaps them compacted, not folded yet.
CREATE FUNCTION telemetry_days_to_fold(p_closed_before timestamptz)
RETURNS SETOF date LANGUAGE sql STABLE AS $$
  SELECT day FROM (
    SELECT to_date(right(c.relname, 8), 'YYYYMMDD') AS day
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'telemetry_rollups_1h'::regclass
  ) AS d
  WHERE (day + 1)::timestamp AT TIME ZONE 'UTC' <= p_closed_before
    AND NOT EXISTS (SELECT 1 FROM telemetry_rollup_days f WHERE f.day = d.day)
    AND NOT EXISTS (
      SELECT 1 FROM telemetry_chunks c
      WHERE c.compacted_at IS NULL
        AND c.chunk_start < (day + 1)::timestamp AT TIME ZONE 'UTC'
        AND c.chunk_end > day::timestamp AT TIME ZONE 'UTC')
  ORDER BY day
$$;

-- migrate:down
DROP FUNCTION telemetry_days_to_fold(timestamptz);
DROP TABLE telemetry_rollup_days;
DROP TABLE telemetry_rollups_1h;
DROP TABLE telemetry_rollups_1m;
