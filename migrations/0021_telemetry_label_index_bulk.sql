-- migrate:up

-- New series enter the label index in bulk. Inserted one series at a time (fastupdate off), each of
-- a series' ~10 labels descended the index on its own: ~20 µs of Postgres and ~3.8 kB of WAL a
-- series, most of what a fleet's first scrape (400,000 series for 10,000 GPUs) costs. With a
-- pending list the entries are appended, and the streamer moves them into the index in one bulk
-- pass after each batch of new series (gin_clean_pending_list), so searches find the list empty;
-- where it may not (only the index's owner may), an insert that finds the list past 256 kB does
-- the same, and a search reads at most that much.
-- Turning fastupdate on locks the index as a DROP would: rather than queue every query of
-- telemetry_series behind a long one, give up (the migration is tried again at the next start).
SET LOCAL lock_timeout = '10s';
ALTER INDEX telemetry_series_labels_idx SET (fastupdate = on, gin_pending_list_limit = 256);

-- migrate:down
ALTER INDEX telemetry_series_labels_idx SET (fastupdate = off);
ALTER INDEX telemetry_series_labels_idx RESET (gin_pending_list_limit);
SELECT gin_clean_pending_list('telemetry_series_labels_idx'::regclass);
