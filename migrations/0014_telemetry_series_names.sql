-- migrate:up

-- PromQL selects series by metric name: an index led by the name keeps that an index scan (the
-- (gpu_id, metric_name) index cannot serve it), lists the distinct names by skipping through it,
-- and with the id behind the name gives a selector's series in id order for keyset batches.
CREATE INDEX telemetry_series_name_idx ON telemetry_series (metric_name, id);

-- migrate:down
DROP INDEX telemetry_series_name_idx;
