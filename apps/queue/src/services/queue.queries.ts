import type { Database } from '@gpu-telemetry/db';
import { type Kysely, sql } from 'kysely';

/**
 * The queue's SQL. Each function is one statement, so it is atomic on its own and works on a
 * Kysely instance or inside a transaction. Every statement that adds or removes live or dead
 * messages adjusts the topic counters in the same statement (queue_count in 0001_queue.sql), so
 * depth stays exact without counting rows.
 */
type Executor = Kysely<Database>;

/** Inserts messages whose id is new to the topic; returns the ids that were inserted. */
export async function insertMessages(
  db: Executor,
  topic: string,
  /** `[{"id": uuid, "payload": ...}, ...]`, already serialised: one parameter, parsed once by Postgres. */
  messagesJson: string,
): Promise<Set<string>> {
  const { rows } = await sql<{ msg_uuid: string }>`
    WITH input AS (
      SELECT (e ->> 'id')::uuid AS msg_uuid, e -> 'payload' AS payload
      FROM jsonb_array_elements(${messagesJson}::jsonb) AS e
    ),
    inserted AS (
      -- DO NOTHING also absorbs an id repeated within the batch: the first one wins.
      INSERT INTO queue_messages (topic, msg_uuid, payload)
      SELECT ${topic}, msg_uuid, payload FROM input
      ON CONFLICT (topic, msg_uuid) DO NOTHING
      RETURNING msg_uuid
    ),
    counted AS (SELECT queue_count(${topic}, count(*), 0) FROM inserted)
    SELECT msg_uuid FROM inserted LEFT JOIN counted ON true
  `.execute(db);
  return new Set(rows.map((row) => row.msg_uuid));
}

export async function ensureTopic(db: Executor, topic: string): Promise<void> {
  await sql`INSERT INTO queue_topics (topic) VALUES (${topic}) ON CONFLICT (topic) DO NOTHING`.execute(db);
}

export interface LeasedRow {
  id: string;
  msg_uuid: string;
  payload: string;
  attempts: number;
  published_at: Date;
  redelivered: boolean;
  dead: boolean;
}

/** See queue_lease() in 0001_queue.sql: SKIP LOCKED, a pinned index-ordered plan, dead on exhaustion. */
export async function leaseMessages(
  db: Executor,
  args: { topic: string; max: number; visibilitySeconds: number; leaseId: string; consumer: string; defaultMaxAttempts: number },
): Promise<LeasedRow[]> {
  const { rows } = await sql<LeasedRow>`
    SELECT * FROM queue_lease(
      ${args.topic}, ${args.max}, make_interval(secs => ${args.visibilitySeconds}), ${args.leaseId}::uuid,
      ${args.consumer}, ${args.defaultMaxAttempts}
    )
  `.execute(db);
  // RETURNING order is not guaranteed; deliver in the order the lease walked (publish order).
  return rows.sort((a, b) => a.id.length - b.id.length || (a.id < b.id ? -1 : 1));
}

/** Milliseconds until the next delayed or leased message of the topic becomes ready, if any. */
export async function nextVisibleIn(db: Executor, topic: string): Promise<number | null> {
  const { rows } = await sql<{ ms: number | null }>`
    SELECT (extract(epoch FROM min(visible_at) - now()) * 1000)::float8 AS ms
    FROM queue_messages WHERE topic = ${topic} AND dead_at IS NULL AND visible_at > now()
  `.execute(db);
  return rows[0]?.ms ?? null;
}

export interface Settlement {
  /** Ids the lease held among those named (all held ids when none were named). */
  held: string[];
  changed: number;
  dead: number;
}

/**
 * Deletes acked messages. With `ids`, all of them must still be held by the lease, or nothing
 * changes: a consumer never half-acks on a lease it lost.
 */
export async function ackMessages(
  db: Executor,
  args: { topic: string; leaseId: string; ids?: string[] },
): Promise<Settlement> {
  const ids = args.ids ?? null;
  const { rows } = await sql<{ held: string[]; changed: string }>`
    WITH held AS (
      SELECT id, msg_uuid FROM queue_messages
      WHERE lease_id = ${args.leaseId}::uuid AND topic = ${args.topic} AND dead_at IS NULL
        AND (${ids}::uuid[] IS NULL OR msg_uuid = ANY(${ids}::uuid[]))
      FOR UPDATE
    ),
    verdict AS (
      SELECT ${ids}::uuid[] IS NULL OR count(*) = cardinality(${ids}::uuid[]) AS complete FROM held
    ),
    gone AS (
      DELETE FROM queue_messages m USING held, verdict
      WHERE m.id = held.id AND verdict.complete
      RETURNING m.msg_uuid
    ),
    counted AS (SELECT queue_count(${args.topic}, -count(*), 0) FROM gone)
    SELECT
      (SELECT coalesce(array_agg(msg_uuid::text), '{}') FROM held) AS held,
      (SELECT count(*) FROM gone) AS changed
    FROM counted
  `.execute(db);
  const row = rows[0];
  return { held: row?.held ?? [], changed: Number(row?.changed ?? 0), dead: 0 };
}

/**
 * Returns messages to the queue after `delaySeconds`, or to the dead letters when they used up
 * their attempts. Same all-or-nothing rule as ack.
 */
export async function nackMessages(
  db: Executor,
  args: {
    topic: string;
    leaseId: string;
    ids?: string[];
    delaySeconds: number;
    reason: string;
    defaultMaxAttempts: number;
  },
): Promise<Settlement> {
  const ids = args.ids ?? null;
  const { rows } = await sql<{ held: string[]; changed: string; dead: string }>`
    WITH held AS (
      SELECT id, msg_uuid FROM queue_messages
      WHERE lease_id = ${args.leaseId}::uuid AND topic = ${args.topic} AND dead_at IS NULL
        AND (${ids}::uuid[] IS NULL OR msg_uuid = ANY(${ids}::uuid[]))
      FOR UPDATE
    ),
    verdict AS (
      SELECT ${ids}::uuid[] IS NULL OR count(*) = cardinality(${ids}::uuid[]) AS complete FROM held
    ),
    settings AS (
      SELECT coalesce(
        (SELECT max_attempts FROM queue_topics WHERE topic = ${args.topic}), ${args.defaultMaxAttempts}::int
      ) AS max_attempts
    ),
    changed AS (
      UPDATE queue_messages m SET
        lease_id = NULL,
        leased_by = NULL,
        visible_at = now() + make_interval(secs => ${args.delaySeconds}),
        last_error = ${args.reason},
        dead_at = CASE WHEN m.attempts >= s.max_attempts THEN now() END
      FROM held, verdict, settings s
      WHERE m.id = held.id AND verdict.complete
      RETURNING m.msg_uuid, m.dead_at IS NOT NULL AS dead
    ),
    counted AS (
      SELECT queue_count(${args.topic}, -count(*) FILTER (WHERE dead), count(*) FILTER (WHERE dead)) FROM changed
    )
    SELECT
      (SELECT coalesce(array_agg(msg_uuid::text), '{}') FROM held) AS held,
      (SELECT count(*) FROM changed) AS changed,
      (SELECT count(*) FROM changed WHERE dead) AS dead
    FROM counted
  `.execute(db);
  const row = rows[0];
  return { held: row?.held ?? [], changed: Number(row?.changed ?? 0), dead: Number(row?.dead ?? 0) };
}

/** Heartbeat: pushes the lease's deadline out again. Returns the new deadline, or null if not held. */
export async function extendLease(
  db: Executor,
  args: { topic: string; leaseId: string; visibilitySeconds: number },
): Promise<{ extended: number; leaseUntil: Date | null }> {
  const { rows } = await sql<{ visible_at: Date }>`
    UPDATE queue_messages SET visible_at = now() + make_interval(secs => ${args.visibilitySeconds})
    WHERE lease_id = ${args.leaseId}::uuid AND topic = ${args.topic} AND dead_at IS NULL
    RETURNING visible_at
  `.execute(db);
  return { extended: rows.length, leaseUntil: rows[0]?.visible_at ?? null };
}

/** Gives a lease back untouched (its delivery did not happen): ready now, the attempt not counted. */
export async function releaseLease(db: Executor, args: { topic: string; leaseId: string }): Promise<number> {
  const result = await sql`
    UPDATE queue_messages
    SET visible_at = now(), lease_id = NULL, leased_by = NULL, attempts = greatest(attempts - 1, 0)
    WHERE lease_id = ${args.leaseId}::uuid AND topic = ${args.topic} AND dead_at IS NULL
  `.execute(db);
  return Number(result.numAffectedRows ?? 0);
}

export interface DeadRow {
  id: string;
  msg_uuid: string;
  payload: string;
  attempts: number;
  published_at: Date;
  dead_at: Date;
  last_error: string | null;
}

export async function listDeadLetters(
  db: Executor,
  args: { topic: string; limit: number; after?: string },
): Promise<DeadRow[]> {
  const { rows } = await sql<DeadRow>`
    SELECT id, msg_uuid, payload::text AS payload, attempts, published_at, dead_at, last_error
    FROM queue_messages
    WHERE topic = ${args.topic} AND dead_at IS NOT NULL AND id > ${args.after ?? '0'}::bigint
    ORDER BY id
    LIMIT ${args.limit}
  `.execute(db);
  return rows;
}

/** Dead letters back to ready, attempts reset; all of the topic's, or the named ones. */
export async function redriveDeadLetters(db: Executor, args: { topic: string; ids?: string[] }): Promise<number> {
  const ids = args.ids ?? null;
  const { rows } = await sql<{ moved: string }>`
    WITH moved AS (
      UPDATE queue_messages
      SET dead_at = NULL, attempts = 0, visible_at = now(), lease_id = NULL, leased_by = NULL
      WHERE topic = ${args.topic} AND dead_at IS NOT NULL
        AND (${ids}::uuid[] IS NULL OR msg_uuid = ANY(${ids}::uuid[]))
      RETURNING 1
    ),
    counted AS (SELECT queue_count(${args.topic}, count(*), -count(*)) FROM moved)
    SELECT (SELECT count(*) FROM moved) AS moved FROM counted
  `.execute(db);
  return Number(rows[0]?.moved ?? 0);
}

export async function purgeDeadLetters(db: Executor, args: { topic: string; ids?: string[] }): Promise<number> {
  const ids = args.ids ?? null;
  const { rows } = await sql<{ deleted: string }>`
    WITH gone AS (
      DELETE FROM queue_messages
      WHERE topic = ${args.topic} AND dead_at IS NOT NULL
        AND (${ids}::uuid[] IS NULL OR msg_uuid = ANY(${ids}::uuid[]))
      RETURNING 1
    ),
    counted AS (SELECT queue_count(${args.topic}, 0, -count(*)) FROM gone)
    SELECT (SELECT count(*) FROM gone) AS deleted FROM counted
  `.execute(db);
  return Number(rows[0]?.deleted ?? 0);
}

export interface TopicRow {
  topic: string;
  max_attempts: number | null;
  live: string;
  dead: string;
  in_flight: string;
  not_visible: string;
  oldest_ready_age: number | null;
}

/**
 * Depth of one topic or all, from the counters plus the (small) set of rows not yet visible;
 * never a count over the backlog.
 */
export async function topicStats(db: Executor, topic?: string): Promise<TopicRow[]> {
  const { rows } = await sql<TopicRow>`
    SELECT
      t.topic,
      t.max_attempts,
      coalesce((SELECT sum(c.live) FROM queue_topic_counters c WHERE c.topic = t.topic), 0) AS live,
      coalesce((SELECT sum(c.dead) FROM queue_topic_counters c WHERE c.topic = t.topic), 0) AS dead,
      (SELECT count(*) FROM queue_messages m
        WHERE m.topic = t.topic AND m.dead_at IS NULL AND m.visible_at > now() AND m.lease_id IS NOT NULL) AS in_flight,
      (SELECT count(*) FROM queue_messages m
        WHERE m.topic = t.topic AND m.dead_at IS NULL AND m.visible_at > now()) AS not_visible,
      (SELECT extract(epoch FROM now() - m.published_at)::float8 FROM queue_messages m
        WHERE m.topic = t.topic AND m.dead_at IS NULL AND m.visible_at <= now()
        ORDER BY m.visible_at, m.id LIMIT 1) AS oldest_ready_age
    FROM queue_topics t
    WHERE ${topic ?? null}::text IS NULL OR t.topic = ${topic ?? null}::text
    ORDER BY t.topic
  `.execute(db);
  return rows;
}

export async function upsertTopicSettings(
  db: Executor,
  args: { topic: string; maxAttempts: number | null },
): Promise<void> {
  await sql`
    INSERT INTO queue_topics (topic, max_attempts) VALUES (${args.topic}, ${args.maxAttempts})
    ON CONFLICT (topic) DO UPDATE SET max_attempts = excluded.max_attempts
  `.execute(db);
}
