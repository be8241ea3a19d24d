-- migrate:up

-- GPU samples, one row each, partitioned by day so retention drops whole partitions instead of
-- deleting rows (no bloat, no vacuum debt). The streamer creates partitions ahead of time and on
-- demand (telemetry_ensure_partitions) and drops expired ones (telemetry_drop_partitions).
CREATE TABLE telemetry (
  uuid        uuid NOT NULL,              -- deterministic sample id: GPU, metric, labels, time
  gpu_id      text NOT NULL,              -- the GPU's UUID as the exporter reports it
  gpu_index   integer,
  device      text,
  model_name  text,
  hostname    text,
  metric_name text NOT NULL,
  "timestamp" timestamptz NOT NULL,       -- when the sample was taken (scrape or replay time)
  value       double precision NOT NULL,  -- NaN and ±Infinity kept as the exporter sent them
  container   text,
  pod         text,
  namespace   text,
  labels      jsonb NOT NULL DEFAULT '{}',
  ingested_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE ("timestamp");

-- One index is both the dedup key and the per-metric query path. A unique index on a partitioned
-- table must contain the partition key; since the uuid is derived from GPU, metric and time, this
-- key is unique exactly when the uuid is, and ON CONFLICT on it makes redelivery harmless.
CREATE UNIQUE INDEX telemetry_sample_key ON telemetry (gpu_id, metric_name, "timestamp", uuid);
-- All metrics of a GPU in time order.
CREATE INDEX telemetry_gpu_time ON telemetry (gpu_id, "timestamp");

-- Every GPU seen, maintained by the streamer as it stores samples, so listing GPUs never scans
-- the samples.
CREATE TABLE gpus (
  gpu_id     text PRIMARY KEY,
  gpu_index  integer,
  device     text,
  model_name text,
  hostname   text,
  first_seen timestamptz NOT NULL,
  last_seen  timestamptz NOT NULL,
  metrics    text[] NOT NULL DEFAULT '{}'
);

-- Daily partitions telemetry_pYYYYMMDD covering [p_from, p_to], in UTC. Safe to call from several
-- streamers at once. Returns how many it created.
CREATE FUNCTION telemetry_ensure_partitions(p_from date, p_to date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  day date;
  created integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  FOR day IN SELECT generate_series(p_from, p_to, interval '1 day')::date LOOP
    IF to_regclass(format('telemetry_p%s', to_char(day, 'YYYYMMDD'))) IS NULL THEN
      EXECUTE format(
        'CREATE TABLE %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)',
        format('telemetry_p%s', to_char(day, 'YYYYMMDD')),
        day::timestamp AT TIME ZONE 'UTC',
        (day + 1)::timestamp AT TIME ZONE 'UTC'
      );
      created := created + 1;
    END IF;
  END LOOP;
  RETURN created;
END
$$;

-- Drops the partitions whose whole day ends at or before p_before; returns their names.
CREATE FUNCTION telemetry_drop_partitions(p_before timestamptz) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
  part record;
  dropped text[] := '{}';
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  FOR part IN
    SELECT c.relname
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'telemetry'::regclass AND c.relname ~ '^telemetry_p\d{8}$'
      AND ((to_date(substr(c.relname, 12), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC') <= p_before
    ORDER BY c.relname
  LOOP
    EXECUTE format('DROP TABLE %I', part.relname);
    dropped := dropped || part.relname::text;
  END LOOP;
  RETURN dropped;
END
$$;

-- migrate:down
DROP FUNCTION IF EXISTS telemetry_drop_partitions(timestamptz);
DROP FUNCTION IF EXISTS telemetry_ensure_partitions(date, date);
DROP TABLE IF EXISTS gpus;
DROP TABLE IF EXISTS telemetry;
