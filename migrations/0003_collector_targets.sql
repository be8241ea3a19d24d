-- migrate:up

-- Scrape targets added at runtime through POST /v1/targets (static and DNS targets come from
-- the collector's environment).
CREATE TABLE collector_targets (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  url        text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- The last scrape of every target, whatever its source, written by the replica that owns it, so
-- any replica can answer GET /v1/targets for all of them.
CREATE TABLE collector_target_status (
  url                  text PRIMARY KEY,
  owner                text NOT NULL,
  last_scrape_at       timestamptz NOT NULL,
  last_success_at      timestamptz,
  last_error           text,
  last_duration_ms     double precision NOT NULL,
  last_samples         integer NOT NULL,
  consecutive_failures integer NOT NULL DEFAULT 0
);

-- migrate:down
DROP TABLE IF EXISTS collector_target_status;
DROP TABLE IF EXISTS collector_targets;
