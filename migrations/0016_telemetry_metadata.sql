-- migrate:up

-- What exporters say of each metric family (`# TYPE`, `# HELP`, `# UNIT`, or a remote write's
-- metadata), for the Prometheus API's /api/v1/metadata. One row per metric: the latest said.
CREATE TABLE telemetry_metadata (
  metric_name text PRIMARY KEY,
  type        text NOT NULL,
  help        text NOT NULL,
  unit        text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- migrate:down
DROP TABLE telemetry_metadata;
