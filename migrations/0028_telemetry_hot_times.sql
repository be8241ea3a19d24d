-- migrate:up

-- Hot samples without a per-sample key. The unique index (series_id, ts) cost 44 bytes a sample
-- (a scrape round inserts into every series' place at once, so its pages split half full) beside
-- a 52-byte row. Samples are now found by series alone, an index whose entries are deduplicated
-- into one posting list per series and page (~10 bytes a sample), and a sample is kept once by
-- telemetry_hot_times: for each sample time held hot and each group of series, the set of the
-- group's series with a sample at it, written in the transaction that stores them. A series'
-- group is its host's (telemetry_hot_group: its hostname, else its instance label), so a scrape's
-- samples, which share their time, make one row, and hosts scraped at the same millisecond write
-- rows of their own, neither waiting for each other nor rewriting each other's sets. A set costs
-- about a byte a sample (sorted ids as LEB128 deltas: a host's series were made together).
CREATE TABLE telemetry_hot_times (
  ts     timestamptz NOT NULL,
  grp    integer NOT NULL,
  series bytea NOT NULL,
  PRIMARY KEY (ts, grp)
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

-- The group of a series' hot sample times: FNV-1a (32 bits, the top one cleared) of the UTF-8
-- of its host (hostname, else its instance label); without either, its bucket of 1,024 ids,
-- as -1 - id / 1024. services/hot-times.ts computes the same from a sample's series.
CREATE FUNCTION telemetry_hot_group(p_host text, p_series bigint) RETURNS integer
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  h bigint := 2166136261;
  bytes bytea;
BEGIN
  IF p_host IS NULL OR p_host = '' THEN
    RETURN (-1 - p_series / 1024)::integer;
  END IF;
  bytes := convert_to(p_host, 'UTF8');
  FOR i IN 0 .. length(bytes) - 1 LOOP
    h := ((h # get_byte(bytes, i)) * 16777619) % 4294967296;
  END LOOP;
  RETURN (h & 2147483647)::integer;
END
$$;

INSERT INTO telemetry_hot_times (ts, grp, series)
SELECT x.ts, telemetry_hot_group(coalesce(nullif(s.hostname, ''), s.prom_labels->>'instance'), x.series_id),
       telemetry_id_set(array_agg(x.series_id ORDER BY x.series_id))
FROM telemetry_samples x JOIN telemetry_series s ON s.id = x.series_id
GROUP BY 1, 2;

DROP INDEX telemetry_samples_key;
CREATE INDEX telemetry_samples_series ON telemetry_samples (series_id);

-- migrate:down

DROP INDEX telemetry_samples_series;
CREATE UNIQUE INDEX telemetry_samples_key ON telemetry_samples (series_id, ts);
DROP TABLE telemetry_hot_times;
DROP FUNCTION telemetry_hot_group(text, bigint);
DROP FUNCTION telemetry_id_set_ids(bytea);
DROP FUNCTION telemetry_id_set(bigint[]);
