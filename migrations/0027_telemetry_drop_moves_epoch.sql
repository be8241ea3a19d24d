-- migrate:up

-- A retention drop moves telemetry_epoch in its transaction, as a compaction's TRUNCATE does. A
-- PromQL query reads several statements in one snapshot; a partition dropped after the snapshot
-- was taken is gone for the statements after, while the chunk rows the snapshot read still name it.
-- The moved epoch tells the query to evaluate again from a snapshot taken after the drop. The
-- epoch is moved last: compactions and folds also move it last, just before they commit, so its
-- row lock is held by no one waiting for the tables these drops hold.
CREATE OR REPLACE FUNCTION telemetry_drop_days(p_parent text, p_before timestamptz)
RETURNS SETOF date LANGUAGE plpgsql SET lock_timeout = '2s' AS $$
DECLARE
  part record;
  dropped boolean := false;
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
        dropped := true;
        RETURN NEXT part.day;
      EXCEPTION WHEN lock_not_available THEN
        NULL; -- in use: next round
      END;
    END IF;
  END LOOP;
  IF dropped THEN
    UPDATE telemetry_epoch SET n = n + 1;
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION telemetry_drop_chunks(p_before timestamptz)
RETURNS SETOF timestamptz LANGUAGE plpgsql SET lock_timeout = '2s' AS $$
DECLARE
  chunk telemetry_chunks;
  dropped boolean := false;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('telemetry_partitions'));
  FOR chunk IN SELECT * FROM telemetry_chunks WHERE chunk_end <= p_before ORDER BY chunk_start LOOP
    BEGIN
      EXECUTE format('DROP TABLE IF EXISTS %I', telemetry_chunk_partition(chunk.chunk_start));
      DELETE FROM telemetry_chunks WHERE chunk_start = chunk.chunk_start;
      dropped := true;
      RETURN NEXT chunk.chunk_start;
    EXCEPTION WHEN lock_not_available THEN
      NULL; -- in use: next round
    END;
  END LOOP;
  PERFORM telemetry_drop_days('telemetry_blocks', p_before);
  IF dropped THEN
    UPDATE telemetry_epoch SET n = n + 1;
  END IF;
END
$$;

-- migrate:down


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

