-- migrate:up

-- A message keeps the trace context of the publish that stored it (W3C traceparent: the queue's
-- publish span, within the publisher's trace), and queue_lease() returns it, so that a consumer's
-- span of a batch links to the publishes of its messages. NULL for messages stored before, or by
-- a publish that was not traced. Adding a nullable column rewrites nothing.
ALTER TABLE queue_messages ADD COLUMN traceparent text;

DROP FUNCTION queue_lease(text, integer, interval, uuid, text, integer, bigint);
CREATE FUNCTION queue_lease(
  p_topic text, p_max integer, p_visibility interval, p_lease_id uuid, p_consumer text, p_default_max_attempts integer,
  p_max_bytes bigint DEFAULT NULL
) RETURNS TABLE (
  msg_uuid uuid, seq bigint, payload json, attempts integer, published_at timestamptz, redelivered boolean, dead boolean,
  lease_until timestamptz, traceparent text
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
              c.lease_expired AS redelivered, m.dead_at IS NOT NULL AS dead, m.traceparent
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
  SELECT t.msg_uuid, t.seq, t.payload, t.attempts, t.published_at, t.redelivered, t.dead, v_lease_until, t.traceparent
  FROM taken t;
END
$$;

-- migrate:down
DROP FUNCTION queue_lease(text, integer, interval, uuid, text, integer, bigint);
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

ALTER TABLE queue_messages DROP COLUMN traceparent;
