-- migrate:up

-- Hot rows' series ids are 4 bytes (0029), and telemetry_between compared them with its bigint[]
-- argument: a cross-type test Postgres cannot hash, so where the planner scans a hot partition
-- rather than its index (many series of a large chunk: a fleet's metric) every row was tested
-- against the whole list, ~10 µs a row for 10,000 ids. The hot part now compares with the ids as
-- integer[], which it can hash. Series ids stop at 2^31 - 1 (0029), so every stored id converts; an
-- id beyond that range is an error ("integer out of range") rather than no rows.
CREATE OR REPLACE FUNCTION telemetry_between(p_series bigint[], p_from timestamptz, p_to timestamptz)
RETURNS TABLE (series_id bigint, ts timestamptz, value double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT x.series_id::bigint, x.ts, telemetry_value(x.value, x.value_dec) FROM telemetry_samples x
  WHERE x.series_id = ANY(p_series::integer[]) AND x.ts >= p_from AND x.ts < p_to
  UNION ALL
  SELECT b.series_id, d.ts, d.value
  FROM telemetry_blocks b
  JOIN telemetry_chunks c ON c.chunk_start = b.chunk_start
  CROSS JOIN LATERAL telemetry_decode(b.data) AS d
  WHERE b.series_id = ANY(p_series) AND b.chunk_start < p_to AND c.chunk_end > p_from
    AND d.ts >= p_from AND d.ts < p_to
$$;

-- migrate:down

CREATE OR REPLACE FUNCTION telemetry_between(p_series bigint[], p_from timestamptz, p_to timestamptz)
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
