-- migrate:up

-- A counter every compaction and day fold moves in the transaction that empties a table with
-- TRUNCATE (a chunk's hot partition, a day's 1-hour rollups). TRUNCATE is not MVCC-safe: a
-- REPEATABLE READ query whose snapshot predates that commit, touching the table after it, finds it
-- empty while the blocks or folded rows that replace it are not yet visible to it. A PromQL query
-- reads the counter in its snapshot and again once done: moved, it is evaluated again.
CREATE TABLE telemetry_epoch (
  id boolean PRIMARY KEY DEFAULT true CHECK (id),
  n  bigint NOT NULL
);
INSERT INTO telemetry_epoch (id, n) VALUES (true, 0);

-- migrate:down
DROP TABLE telemetry_epoch;
