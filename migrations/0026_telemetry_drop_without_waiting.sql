-- migrate:up

-- Retention drops a partition only when it can have it at once. DROP TABLE of a partition takes
-- ACCESS EXCLUSIVE on its parent: waiting for a read in flight (a PromQL snapshot, a dashboard
-- query), it held up every ingest and every read queued behind it. Each drop now waits at most
-- 2 s (lock_timeout) and, refused, is left for the next maintenance round, nothing else undone:
-- a chunk keeps its row while its partition stays, so readers still find what is there.
CREATE OR REPLACE FUNCTION telemetry_drop_days(p_parent text, p_before timestamptz)
RETURNS SETOF date LANGUAGE plpgsql SET lock_timeout = '2s' AS $$
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
      BEGIN
        EXECUTE format('DROP TABLE %I', part.relname);
        RETURN NEXT part.day;
      EXCEPTION WHEN lock_not_available THEN
        NULL; -- in use: next round
      END;
    END IF;
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION telemetry_drop_chunks(p_before timestamptz)
RETURNS SETOF timestamptz LANGUAGE plpgsql SET lock_timeout = '2s' AS $$
DECLARE
  chunk telemetry_chunks;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  FOR chunk IN SELECT * FROM telemetry_chunks WHERE chunk_end <= p_before ORDER BY chunk_start LOOP
    BEGIN
      EXECUTE format('DROP TABLE IF EXISTS %I', telemetry_chunk_partition(chunk.chunk_start));
      DELETE FROM telemetry_chunks WHERE chunk_start = chunk.chunk_start;
      RETURN NEXT chunk.chunk_start;
    EXCEPTION WHEN lock_not_available THEN
      NULL; -- in use: next round
    END;
  END LOOP;
  PERFORM telemetry_drop_days('telemetry_blocks', p_before);
END
$$;

-- migrate:down

CREATE OR REPLACE FUNCTION telemetry_drop_days(p_parent text, p_before timestamptz)
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
ALTER FUNCTION telemetry_drop_days(text, timestamptz) RESET lock_timeout;

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
ALTER FUNCTION telemetry_drop_chunks(timestamptz) RESET lock_timeout;
