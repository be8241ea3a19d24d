-- migrate:up

-- Hot samples without a per-sample key. The unique index (series_id, ts) cost 44 bytes a sample
-- (a scrape round inserts into every series' place at once, so its pages split half full) beside
-- a 52-byte row. Samples are now found by series alone, an index whose entries are deduplicated
-- into one posting list per series and page (~10 bytes a sample), and a sample is kept once by
-- telemetry_hot_times: for each sample time held hot and each bucket of 1,024 series ids
-- (series_id / 1024), the set of those series with a sample at it, written in the transaction
-- that stores them. A scrape's samples share their time and its series were made together, so a
-- set holds a host's series and costs about a byte a sample (sorted ids as LEB128 deltas); hosts
-- scraped at the same millisecond write different rows, so they neither wait for each other nor
-- rewrite each other's sets.
CREATE TABLE telemetry_hot_times (
  ts     timestamptz NOT NULL,
  bucket integer NOT NULL,
  series bytea NOT NULL,
  PRIMARY KEY (ts, bucket)
);
ALTER TABLE telemetry_hot_times ALTER COLUMN series SET STORAGE MAIN;

-- The set stored for these series ids (ascending, distinct): the first id, then each difference
-- from the one before, as unsigned LEB128. apps/streamer/src/services/id-set.ts reads and writes
-- the same bytes; this one is for SQL (the backfill below, and anyone inspecting the table).
CREATE FUNCTION telemetry_id_set(p_ids bigint[]) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  bytes integer[] := '{}';
  prev bigint := 0;
  id bigint;
  d bigint;
BEGIN
  FOREACH id IN ARRAY p_ids LOOP
    d := id - prev;
    prev := id;
    WHILE d >= 128 LOOP
      bytes := bytes || ((d & 127) | 128)::integer;
      d := d >> 7;
    END LOOP;
    bytes := bytes || d::integer;
  END LOOP;
  RETURN decode(coalesce(string_agg(lpad(to_hex(b), 2, '0'), '' ORDER BY i), ''), 'hex')
  FROM unnest(bytes) WITH ORDINALITY AS u(b, i);
END
$$;

-- The ids of a set, ascending.
CREATE FUNCTION telemetry_id_set_ids(p_set bytea) RETURNS SETOF bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  at integer := 0;
  prev bigint := 0;
  d bigint;
  shift integer;
  b integer;
BEGIN
  WHILE at < length(p_set) LOOP
    d := 0;
    shift := 0;
    LOOP
      b := get_byte(p_set, at);
      at := at + 1;
      d := d | ((b & 127)::bigint << shift);
      EXIT WHEN b < 128;
      shift := shift + 7;
    END LOOP;
    prev := prev + d;
    RETURN NEXT prev;
  END LOOP;
END
$$;

INSERT INTO telemetry_hot_times (ts, bucket, series)
SELECT ts, (series_id / 1024)::integer, telemetry_id_set(array_agg(series_id ORDER BY series_id))
FROM telemetry_samples
GROUP BY 1, 2;

DROP INDEX telemetry_samples_key;
CREATE INDEX telemetry_samples_series ON telemetry_samples (series_id);

-- migrate:down

DROP INDEX telemetry_samples_series;
CREATE UNIQUE INDEX telemetry_samples_key ON telemetry_samples (series_id, ts);
DROP TABLE telemetry_hot_times;
DROP FUNCTION telemetry_id_set_ids(bytea);
DROP FUNCTION telemetry_id_set(bigint[]);
