-- migrate:up

-- New partitions are made beside their parent and then attached. CREATE TABLE ... PARTITION OF
-- takes an ACCESS EXCLUSIVE lock on the parent: it waited for every read in flight (a PromQL
-- snapshot holds its tables for up to PROMQL_TIMEOUT, a dashboard's telemetry_between() for as
-- long as it runs), and every ingest COPY and every read queued behind it meanwhile. ATTACH
-- PARTITION takes SHARE UPDATE EXCLUSIVE, which neither waits for reads and writes nor stops them;
-- the table it attaches is new and empty, so checking its bounds reads nothing. Its indexes
-- (copied by LIKE) are taken as the partitions of the parent's, and the parent's row triggers
-- are cloned onto it, as PARTITION OF would.
CREATE FUNCTION telemetry_create_partition(p_parent regclass, p_name text, p_from timestamptz, p_to timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING ALL)', p_name, p_parent);
  EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', p_parent, p_name, p_from, p_to);
END
$$;

CREATE OR REPLACE FUNCTION telemetry_ensure_chunks(p_times timestamptz[], p_chunk_seconds integer)
RETURNS SETOF telemetry_chunks LANGUAGE plpgsql AS $$
DECLARE
  t timestamptz;
  chunk telemetry_chunks;
  new_start timestamptz;
  new_end timestamptz;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  FOR t IN SELECT DISTINCT x FROM unnest(p_times) AS x ORDER BY 1 LOOP
    SELECT * INTO chunk FROM telemetry_chunks
      WHERE chunk_start <= t AND chunk_end > t;
    IF NOT FOUND THEN
      new_start := to_timestamp(floor(extract(epoch FROM t) / p_chunk_seconds) * p_chunk_seconds);
      new_end := new_start + make_interval(secs => p_chunk_seconds);
      new_start := greatest(new_start,
        (SELECT max(chunk_end) FROM telemetry_chunks WHERE chunk_end <= t));
      new_end := least(new_end,
        (SELECT min(chunk_start) FROM telemetry_chunks WHERE chunk_start > t));
      PERFORM telemetry_create_partition('telemetry_samples', telemetry_chunk_partition(new_start), new_start, new_end);
      INSERT INTO telemetry_chunks (chunk_start, chunk_end) VALUES (new_start, new_end)
        RETURNING * INTO chunk;
    END IF;
    RETURN NEXT chunk;
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION telemetry_ensure_day(p_parent text, p_day date) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  IF to_regclass(format('%s_%s', p_parent, to_char(p_day, 'YYYYMMDD'))) IS NULL THEN
    PERFORM telemetry_create_partition(p_parent::regclass, format('%s_%s', p_parent, to_char(p_day, 'YYYYMMDD')),
                                       p_day::timestamp AT TIME ZONE 'UTC', (p_day + 1)::timestamp AT TIME ZONE 'UTC');
  END IF;
END
$$;

-- migrate:down

CREATE OR REPLACE FUNCTION telemetry_ensure_chunks(p_times timestamptz[], p_chunk_seconds integer)
RETURNS SETOF telemetry_chunks LANGUAGE plpgsql AS $$
DECLARE
  t timestamptz;
  chunk telemetry_chunks;
  new_start timestamptz;
  new_end timestamptz;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  FOR t IN SELECT DISTINCT x FROM unnest(p_times) AS x ORDER BY 1 LOOP
    SELECT * INTO chunk FROM telemetry_chunks
      WHERE chunk_start <= t AND chunk_end > t;
    IF NOT FOUND THEN
      new_start := to_timestamp(floor(extract(epoch FROM t) / p_chunk_seconds) * p_chunk_seconds);
      new_end := new_start + make_interval(secs => p_chunk_seconds);
      new_start := greatest(new_start,
        (SELECT max(chunk_end) FROM telemetry_chunks WHERE chunk_end <= t));
      new_end := least(new_end,
        (SELECT min(chunk_start) FROM telemetry_chunks WHERE chunk_start > t));
      EXECUTE format('CREATE TABLE %I PARTITION OF telemetry_samples FOR VALUES FROM (%L) TO (%L)',
                     telemetry_chunk_partition(new_start), new_start, new_end);
      INSERT INTO telemetry_chunks (chunk_start, chunk_end) VALUES (new_start, new_end)
        RETURNING * INTO chunk;
    END IF;
    RETURN NEXT chunk;
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION telemetry_ensure_day(p_parent text, p_day date) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  IF to_regclass(format('%s_%s', p_parent, to_char(p_day, 'YYYYMMDD'))) IS NULL THEN
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                   format('%s_%s', p_parent, to_char(p_day, 'YYYYMMDD')), p_parent,
                   p_day::timestamp AT TIME ZONE 'UTC', (p_day + 1)::timestamp AT TIME ZONE 'UTC');
  END IF;
END
$$;

DROP FUNCTION telemetry_create_partition(regclass, text, timestamptz, timestamptz);
