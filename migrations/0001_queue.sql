-- migrate:up

-- Topics and their settings. A topic row appears on first publish (or when settings are written).
CREATE TABLE queue_topics (
  topic        text PRIMARY KEY CHECK (topic ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  max_attempts integer CHECK (max_attempts BETWEEN 1 AND 1000), -- NULL: the service default
  created_at   timestamptz NOT NULL DEFAULT now()
);

-- Live messages only: ready, delayed, in flight, or dead. Ack deletes the row, so the table holds
-- the backlog, not the history. A message is ready when visible_at has passed; a lease pushes
-- visible_at forward, so an expired lease is ready again with no sweeper.
--
-- Every lease rewrites visible_at, which is indexed, so every lease writes a new entry into every
-- index of the table. Hence exactly two: the key, and the lease path. Rows of a lease are found
-- through queue_leases, not through an index on lease_id.
CREATE TABLE queue_messages (
  topic        text NOT NULL,
  msg_uuid     uuid NOT NULL,          -- the message id clients see, and the per-topic dedup key
  seq          bigint GENERATED ALWAYS AS IDENTITY, -- publish order, among equal visible_at
  payload      json NOT NULL,          -- json, not jsonb: the queue never looks inside, and json text
                                       -- is stored and returned as is (no re-serialisation per lease)
  visible_at   timestamptz NOT NULL DEFAULT now(),
  lease_id     uuid,                   -- last lease; kept after expiry so a late ack still works
  attempts     integer NOT NULL DEFAULT 0,
  published_at timestamptz NOT NULL DEFAULT now(),
  dead_at      timestamptz,
  last_error   text,
  PRIMARY KEY (topic, msg_uuid)
) WITH (
  -- Every message is inserted, updated once per delivery and deleted: ~2 dead tuples each.
  -- Vacuum by row count, not by fraction of the table, and without cost throttling.
  fillfactor = 90,
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 10000,
  autovacuum_vacuum_insert_scale_factor = 0,
  autovacuum_vacuum_insert_threshold = 10000,
  autovacuum_analyze_scale_factor = 0,
  autovacuum_analyze_threshold = 10000,
  autovacuum_vacuum_cost_delay = 0
);

-- The one path a lease takes: ready rows of a topic in visibility order. In-flight and delayed
-- rows sort after now(), dead rows are not in it, so a lease reads exactly the rows it takes.
CREATE INDEX queue_messages_lease_idx ON queue_messages (topic, visible_at, seq) WHERE dead_at IS NULL;
-- Dead letters, in the order they were published. Live rows never enter this partial index.
CREATE INDEX queue_messages_dead_idx ON queue_messages (topic, seq) WHERE dead_at IS NOT NULL;

-- One row per lease: which messages it took, and until when. Ack, nack, extend and release by
-- lease id read it to find their rows by key. Acking the whole lease deletes it; the queue
-- service removes leases that ended long ago.
CREATE TABLE queue_leases (
  lease_id    uuid PRIMARY KEY,
  topic       text NOT NULL,
  consumer    text NOT NULL,
  msg_uuids   uuid[] NOT NULL,
  lease_until timestamptz NOT NULL,
  leased_at   timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);
CREATE INDEX queue_leases_lease_until_idx ON queue_leases (lease_until);

-- Depth per topic without count(*): each statement that adds or removes messages adjusts one of
-- 16 slots (chosen by backend pid) in the same statement, so concurrent writers rarely touch the
-- same row and the counts are exact.
CREATE TABLE queue_topic_counters (
  topic text NOT NULL,
  slot  smallint NOT NULL,
  live  bigint NOT NULL DEFAULT 0,     -- ready + delayed + in flight
  dead  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (topic, slot)
) WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000);

-- Lease up to p_max ready messages of a topic, oldest visible first.
--   * FOR UPDATE SKIP LOCKED: concurrent consumers take disjoint rows without waiting on each other.
--   * The planner settings pin the plan to an ordered walk of queue_messages_lease_idx that stops
--     after p_max rows, then a direct (ctid) fetch per taken row. Left to itself, with stale
--     statistics or a generic plan, it can choose "read every ready row, then sort", or hash the
--     whole table to join p_max rows: that is how Postgres queues collapse under a backlog.
--   * A message that already used up its attempts (its leases kept expiring: the consumer crashes
--     on it) goes to the dead letters instead of being delivered again.
-- Payloads come back as text so the service can pass them through without parsing. PL/pgSQL, not
-- SQL: its statement plans are cached per connection instead of re-planned on every call.
CREATE FUNCTION queue_lease(
  p_topic text, p_max integer, p_visibility interval, p_lease_id uuid, p_consumer text, p_default_max_attempts integer
) RETURNS TABLE (
  msg_uuid uuid, seq bigint, payload text, attempts integer, published_at timestamptz, redelivered boolean, dead boolean
)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_sort = off
SET enable_incremental_sort = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
DECLARE
  v_max_attempts integer := coalesce(
    (SELECT t.max_attempts FROM queue_topics t WHERE t.topic = p_topic), p_default_max_attempts
  );
BEGIN
  RETURN QUERY
  WITH candidates AS (
    -- A row that still carries a lease id was leased before and never acked or nacked: its lease expired.
    SELECT m.ctid AS row_id, m.lease_id IS NOT NULL AS lease_expired
    FROM queue_messages m
    WHERE m.topic = p_topic AND m.dead_at IS NULL AND m.visible_at <= now()
    ORDER BY m.visible_at, m.seq
    LIMIT p_max
    FOR UPDATE SKIP LOCKED
  ),
  taken AS (
    UPDATE queue_messages m SET
      attempts   = CASE WHEN m.attempts >= v_max_attempts THEN m.attempts ELSE m.attempts + 1 END,
      visible_at = CASE WHEN m.attempts >= v_max_attempts THEN m.visible_at ELSE now() + p_visibility END,
      lease_id   = CASE WHEN m.attempts >= v_max_attempts THEN NULL ELSE p_lease_id END,
      dead_at    = CASE WHEN m.attempts >= v_max_attempts THEN now() END,
      last_error = CASE WHEN m.attempts >= v_max_attempts
                        THEN format('lease expired without ack after %s deliveries', m.attempts)
                        ELSE m.last_error END
    FROM candidates c
    WHERE m.ctid = c.row_id
    RETURNING m.msg_uuid, m.seq, m.payload::text AS payload, m.attempts, m.published_at,
              c.lease_expired AS redelivered, m.dead_at IS NOT NULL AS dead
  ),
  lease AS (
    INSERT INTO queue_leases (lease_id, topic, consumer, msg_uuids, lease_until)
    SELECT p_lease_id, p_topic, p_consumer, array_agg(t.msg_uuid), now() + p_visibility
    FROM taken t WHERE NOT t.dead HAVING count(*) > 0
  ),
  counted AS (
    INSERT INTO queue_topic_counters AS c (topic, slot, live, dead)
    SELECT p_topic, pg_backend_pid() % 16, -count(*), count(*) FROM taken t WHERE t.dead HAVING count(*) > 0
    ON CONFLICT (topic, slot) DO UPDATE SET live = c.live + excluded.live, dead = c.dead + excluded.dead
  )
  SELECT t.msg_uuid, t.seq, t.payload, t.attempts, t.published_at, t.redelivered, t.dead FROM taken t;
END
$$;

-- migrate:down
DROP FUNCTION IF EXISTS queue_lease(text, integer, interval, uuid, text, integer);
DROP TABLE IF EXISTS queue_topic_counters;
DROP TABLE IF EXISTS queue_leases;
DROP TABLE IF EXISTS queue_messages;
DROP TABLE IF EXISTS queue_topics;
