-- migrate:up

-- When a streamer last resolved the series to store samples of it, refreshed once it is a day old
-- (so at most a day behind). Labels churn (a GPU's pod, container and namespace change with every
-- job), and a series whose samples and rollups have all expired is deleted: a series not seen for
-- four days beyond the longest retention (see the streamer's TelemetryMaintainer). Existing
-- series count as seen now. A non-volatile default: no table rewrite. The index finds the ones
-- due without reading the table (it changes once a day per series, when last_seen is refreshed).
ALTER TABLE telemetry_series ADD COLUMN last_seen timestamptz NOT NULL DEFAULT now();
CREATE INDEX telemetry_series_last_seen_idx ON telemetry_series (last_seen);

-- migrate:down
DROP INDEX telemetry_series_last_seen_idx;
ALTER TABLE telemetry_series DROP COLUMN last_seen;
