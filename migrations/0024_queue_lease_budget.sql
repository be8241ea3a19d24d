-- migrate:up

-- queue_lease() takes a byte budget, p_max_bytes: oldest first, it takes messages while the sum of
-- their payloads (as JSON text) stays within it, and always at least one. A lease of 1000 payloads
-- near the 256 KiB limit would otherwise be built several times over in the service's memory, and
-- a service that dies of it after the lease committed spends an attempt of each message without
-- delivering it. Messages past the budget are not touched: they stay ready for the next lease.
--   * The walk is a loop over the same pinned, index-ordered, SKIP LOCKED scan as before, so it
--     stops at the first row that does not fit instead of locking and measuring p_max rows. The
--     loop fetches a few rows ahead: those are locked until this statement commits, not taken.
--   * octet_length(payload::text) reads the payload, which the lease returns anyway; json has no
--     length function of its own.
--   * NULL (the default, which older callers get) is no budget.
-- It also returns lease_until, the one its lease row holds, so the service answers the database's
-- deadline (the one extend answers too) instead of making up its own after the query.
DROP FUNCTION queue_lease(text, integer, interval, uuid, text, integer);
CREATE FUNCTION queue_lease(
  p_topic text, p_max integer, p_visibility interval, p_lease_id uuid, p_consumer text, p_default_max_attempts integer,
  p_max_bytes bigint DEFAULT NULL
) RETURNS TABLE (
  msg_uuid uuid, seq bigint, payload json, attempts integer, published_at timestamptz, redelivered boolean, dead boolean,
  lease_until timestamptz
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
  v_lease_until timestamptz := now() + p_visibility;
  v_rows tid[] := '{}';
  v_expired boolean[] := '{}';
  v_bytes bigint := 0;
  r record;
BEGIN
  FOR r IN
    -- A row that still carries a lease id was leased before and never acked or nacked: its lease expired.
    SELECT m.ctid AS row_id, m.lease_id IS NOT NULL AS lease_expired, octet_length(m.payload::text) AS bytes
    FROM queue_messages m
    WHERE m.topic = p_topic AND m.dead_at IS NULL AND m.visible_at <= now()
    ORDER BY m.visible_at, m.seq
    LIMIT p_max
    FOR UPDATE SKIP LOCKED
  LOOP
    EXIT WHEN v_bytes + r.bytes > p_max_bytes AND cardinality(v_rows) > 0;
    v_bytes := v_bytes + r.bytes;
    v_rows := v_rows || r.row_id;
    v_expired := v_expired || r.lease_expired;
  END LOOP;
  IF cardinality(v_rows) = 0 THEN
    RETURN;
  END IF;

  RETURN QUERY
  WITH taken AS (
    UPDATE queue_messages m SET
      attempts   = CASE WHEN m.attempts >= v_max_attempts THEN m.attempts ELSE m.attempts + 1 END,
      visible_at = CASE WHEN m.attempts >= v_max_attempts THEN m.visible_at ELSE v_lease_until END,
      lease_id   = CASE WHEN m.attempts >= v_max_attempts THEN NULL ELSE p_lease_id END,
      dead_at    = CASE WHEN m.attempts >= v_max_attempts THEN now() END,
      last_error = CASE WHEN m.attempts >= v_max_attempts
                        THEN format('lease expired without ack after %s deliveries', m.attempts)
                        ELSE m.last_error END
    FROM unnest(v_rows, v_expired) AS c(row_id, lease_expired)
    WHERE m.ctid = c.row_id
    RETURNING m.msg_uuid, m.seq, m.payload, m.attempts, m.published_at,
              c.lease_expired AS redelivered, m.dead_at IS NOT NULL AS dead
  ),
  lease AS (
    INSERT INTO queue_leases (lease_id, topic, consumer, msg_uuids, lease_until)
    SELECT p_lease_id, p_topic, p_consumer, array_agg(t.msg_uuid), v_lease_until
    FROM taken t WHERE NOT t.dead HAVING count(*) > 0
  ),
  counted AS (
    INSERT INTO queue_topic_counters AS c (topic, slot, live, dead)
    SELECT p_topic, pg_backend_pid() % 16, -count(*), count(*) FROM taken t WHERE t.dead HAVING count(*) > 0
    ON CONFLICT (topic, slot) DO UPDATE SET live = c.live + excluded.live, dead = c.dead + excluded.dead
  )
  SELECT t.msg_uuid, t.seq, t.payload, t.attempts, t.published_at, t.redelivered, t.dead, v_lease_until FROM taken t;
END
$$;

-- migrate:down
DROP FUNCTION queue_lease(text, integer, interval, uuid, text, integer, bigint);
CREATE FUNCTION queue_lease(
  p_topic text, p_max integer, p_visibility interval, p_lease_id uuid, p_consumer text, p_default_max_attempts integer
) RETURNS TABLE (
  msg_uuid uuid, seq bigint, payload json, attempts integer, published_at timestamptz, redelivered boolean, dead boolean
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
    RETURNING m.msg_uuid, m.seq, m.payload, m.attempts, m.published_at,
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
