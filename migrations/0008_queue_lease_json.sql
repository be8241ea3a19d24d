-- migrate:up

-- queue_lease() returns each payload as json instead of text. json is stored as its text, but
-- `json::text` is an I/O conversion: json_out copies the value to a C string and textin copies it
-- back, per leased message, before the row is even sent. Returned as json, Postgres sends the
-- stored text once; the queue service reads the column as a string (it never parses payloads).
-- Same body as 0001 otherwise.
DROP FUNCTION queue_lease(text, integer, interval, uuid, text, integer);
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

-- migrate:down
DROP FUNCTION queue_lease(text, integer, interval, uuid, text, integer);
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
