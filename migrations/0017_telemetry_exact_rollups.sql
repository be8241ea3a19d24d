-- migrate:up

-- Whether a compacted chunk's 1-hour rollups stand for its samples exactly: a bucket for every
-- sample, with a count of those it cannot stand for and the first and last finite sample with
-- their times. PromQL answers instant selectors and max/min/present_over_time at whole hours from
-- such rollups alone, and reads the blocks of every other chunk: compacted before this migration,
-- or kept past its 1-hour rollups (the flag is cleared before they are dropped).
ALTER TABLE telemetry_chunks ADD COLUMN exact_rollups boolean NOT NULL DEFAULT false;

-- migrate:down
ALTER TABLE telemetry_chunks DROP COLUMN exact_rollups;
