import { isPgError } from '@gpu-telemetry/db';
import {
  type CustomTypesConfig,
  types as pgTypes,
  type Pool,
  type PoolClient,
  type QueryResultRow,
} from 'pg';
import { binaryJsonArray, binaryUuidArray, JSON_OID } from './binary-arrays';

// All of the queue's SQL. The queue is its SQL, so it is written out rather than built with
// Kysely: each function runs one statement, atomic on its own, as a named prepared statement
// (parsed and planned once per connection, which the hot paths measurably gain from: see
// docs/performance.md). `$1` is the topic wherever there is one. Statements that add or remove
// live or dead messages adjust the topic's counters in the same statement, so depth stays exact
// without counting rows. A transaction, where one is needed, is the caller's (QueueService).

/** Where a statement runs: the pool, or a client holding a transaction. */
export type Queryable = Pick<Pool | PoolClient, 'query'>;

/** A named prepared statement; json columns come back as their text unless `types` says otherwise. */
function statement<R extends QueryResultRow>(
  name: string,
  text: string,
  types: CustomTypesConfig = RAW_JSON,
) {
  return async (db: Queryable, values: unknown[]): Promise<R[]> =>
    (await db.query<R>({ name: `queue_${name}`, text, values, types })).rows;
}

const TIMESTAMPTZ_OID = 1184;

function typeParsers(own: Record<number, (text: string) => unknown>): CustomTypesConfig {
  return {
    getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
      own[oid] ?? pgTypes.getTypeParser(oid, format)) as CustomTypesConfig['getTypeParser'],
  };
}

/** json columns arrive as their text: payloads are passed through to consumers, never parsed. */
const rawJson = { [JSON_OID]: (text: string) => text };
const RAW_JSON = typeParsers(rawJson);

/**
 * Leased rows, whose times go out as ISO 8601 text: each value is converted straight to that,
 * once per distinct value. The messages of one publish share their publish time (the insert's
 * transaction time), and every row of a lease its lease_until, so a lease of 100 typically
 * converts two, not 200 (a Date parse and a toISOString each).
 */
const LEASED = typeParsers({ ...rawJson, [TIMESTAMPTZ_OID]: isoTimeOnce() });

/** Remembers the last two values: a row's published_at and lease_until alternate. */
function isoTimeOnce(): (text: string) => string {
  const parse = pgTypes.getTypeParser(TIMESTAMPTZ_OID, 'text') as (text: string) => Date;
  let last = { text: '', iso: '' };
  let before = { text: '', iso: '' };
  return (text) => {
    if (text === last.text) return last.iso;
    if (text !== before.text) before = { text, iso: parse(text).toISOString() };
    [last, before] = [before, last];
    return last.iso;
  };
}

/** A CTE that adds (live, dead) to one of the topic's 16 counter slots, when either is non-zero. */
function counted(source: string, live: string, dead: string): string {
  return `counted AS (
    INSERT INTO queue_topic_counters AS c (topic, slot, live, dead)
    SELECT $1, pg_backend_pid() % 16, ${live}, ${dead} FROM ${source}
    HAVING (${live}) <> 0 OR (${dead}) <> 0
    ON CONFLICT (topic, slot) DO UPDATE SET live = c.live + excluded.live, dead = c.dead + excluded.dead
  )`;
}

/**
 * The ids of the messages a settle call is about: the named ones, or every message the lease took
 * (from its queue_leases row). Rows are then matched by key and by lease id, so a message re-leased
 * to someone else is never touched, and a dead one neither (going dead clears lease_id).
 *
 * Without ids, the sub-select locks the lease row (FOR UPDATE, in an InitPlan: before any message),
 * as extend and release lock it first too. Were it locked last (FORGET_LEASE deletes it), an ack
 * racing a heartbeat could hold messages the heartbeat waits for while it waits for the row the
 * heartbeat holds: a deadlock, which Postgres breaks by failing one of them. With ids, coalesce
 * never runs the sub-select, and the lease row is not touched.
 *
 * Settle, extend and release statements name rows by key only: no `dead_at IS NULL`, which would
 * let the planner pick the partial lease index and filter the topic's whole backlog when the
 * statistics are stale, e.g. minutes after a burst of publishes. By key, the primary key is the
 * only index that fits (lease-plan.test.ts holds it).
 */
const TARGET_IDS = `coalesce($3::uuid[], (
    SELECT l.msg_uuids FROM queue_leases l WHERE l.lease_id = $2 AND l.topic = $1 FOR UPDATE
  ))`;

/** Forgets the lease row once the whole lease is settled (no ids named). */
const FORGET_LEASE = `forgotten AS (DELETE FROM queue_leases WHERE lease_id = $2 AND topic = $1 AND $3::uuid[] IS NULL)`;

/** Inserts a batch in the order given and counts it; `dedup`: skip ids the topic already holds. */
function insertStatement(name: string, dedup: boolean) {
  return statement<{ accepted: number }>(
    name,
    `WITH inserted AS (
       INSERT INTO queue_messages (topic, msg_uuid, payload, traceparent)
       SELECT $1, msg_uuid, payload, $4::text
       FROM unnest($2::uuid[], $3::json[]) WITH ORDINALITY AS t(msg_uuid, payload, n)
       ORDER BY n
       ${dedup ? 'ON CONFLICT (topic, msg_uuid) DO NOTHING -- also absorbs an id repeated within the batch' : ''}
       RETURNING msg_uuid
     ),
     ${counted('inserted', 'count(*)', '0')}
     SELECT count(*)::int AS accepted FROM inserted`,
  );
}

const insertDedup = insertStatement('insert', true);
const insertNew = insertStatement('insert_new', false);

/**
 * Inserts the messages whose id is new to the topic, in the order given; returns how many were
 * new. Each payload is UTF-8 JSON text, sent as one binary `json[]` parameter: Postgres checks
 * each one once, as it receives it, and never re-serialises it. The ids go as a binary `uuid[]`.
 * Every message keeps `traceparent`, the publish's trace context (null: none).
 *
 * `idsAreNew`: every id was made up by the queue (time-ordered, unique: see uuid-v7.ts), so none
 * can already be stored, and the batch skips ON CONFLICT's speculative insertion, which costs
 * Postgres CPU per message. Should one collide all the same, the statement fails whole on the
 * unique key and the batch is inserted again the de-duplicating way (so `db` must not be in a
 * transaction: the pool, as the service calls it).
 */
export async function insertMessages(
  db: Queryable,
  topic: string,
  ids: string[],
  payloads: readonly Buffer[],
  traceparent: string | null,
  idsAreNew = false,
): Promise<{ accepted: number; path: InsertPath }> {
  const values = [topic, binaryUuidArray(ids), binaryJsonArray(payloads), traceparent];
  if (idsAreNew) {
    try {
      return { accepted: (await insertNew(db, values))[0]?.accepted ?? 0, path: 'new' };
    } catch (error) {
      if (!isPgError(error, '23505')) throw error; // unique_violation
    }
  }
  const accepted = (await insertDedup(db, values))[0]?.accepted ?? 0;
  return { accepted, path: idsAreNew ? 'new_then_dedup' : 'dedup' };
}

export type InsertPath = 'new' | 'dedup' | 'new_then_dedup';

// Counting the topics costs a scan of a table of at most QUEUE_MAX_TOPICS rows, once per topic
// and replica (then the topic is known). Creations racing each other may pass the cap by a few.
// A topic another publisher is creating at the same moment is waited for and then returned by the
// conflict's update: DO NOTHING would return nothing, and the EXISTS below reads the statement's
// snapshot, taken before that creation committed, so a first publish racing another got a 409.
const ensure = statement<{ ok: boolean }>(
  'ensure_topic',
  `WITH made AS (
     INSERT INTO queue_topics (topic) SELECT $1 WHERE (SELECT count(*) FROM queue_topics) < $2
     ON CONFLICT (topic) DO UPDATE SET topic = excluded.topic RETURNING 1
   )
   SELECT EXISTS (SELECT 1 FROM made) OR EXISTS (SELECT 1 FROM queue_topics WHERE topic = $1) AS ok`,
);

/** Creates the topic unless `maxTopics` exist already; whether it exists now. */
export async function ensureTopic(db: Queryable, topic: string, maxTopics: number): Promise<boolean> {
  const rows = await ensure(db, [topic, maxTopics]);
  return rows[0]?.ok === true;
}

export interface LeasedRow {
  msg_uuid: string;
  seq: string;
  payload: string;
  attempts: number;
  /** ISO 8601. */
  published_at: string;
  redelivered: boolean;
  dead: boolean;
  /** ISO 8601: the deadline the lease row holds, the same on every row. */
  lease_until: string;
  /** The W3C trace context of the publish that stored it; null where there was none. */
  traceparent: string | null;
}

const lease = statement<LeasedRow>(
  'lease',
  `SELECT msg_uuid::text, seq, payload, attempts, published_at, redelivered, dead, lease_until, traceparent
   FROM queue_lease($1, $2, make_interval(secs => $3), $4, $5, $6, $7)`,
  LEASED,
);

/**
 * See queue_lease() in migrations/0033_queue_message_trace.sql (its budget: 0024; why each part is there: 0001):
 * SKIP LOCKED, a pinned index-ordered plan, dead on exhaustion, and at most `maxBytes` of payloads
 * (but always one message).
 */
export async function leaseMessages(
  db: Queryable,
  args: {
    topic: string;
    max: number;
    maxBytes: number;
    visibilitySeconds: number;
    leaseId: string;
    consumer: string;
    defaultMaxAttempts: number;
  },
): Promise<LeasedRow[]> {
  const rows = await lease(db, [
    args.topic,
    args.max,
    args.visibilitySeconds,
    args.leaseId,
    args.consumer,
    args.defaultMaxAttempts,
    args.maxBytes,
  ]);
  // RETURNING order is not guaranteed; deliver in the order the lease walked (publish order).
  return rows.sort((a, b) => a.seq.length - b.seq.length || (a.seq < b.seq ? -1 : 1));
}

const nextVisible = statement<{ ms: number | null }>(
  'next_visible',
  `SELECT (extract(epoch FROM min(visible_at) - now()) * 1000)::float8 AS ms
   FROM queue_messages WHERE topic = $1 AND dead_at IS NULL`,
);

/**
 * Milliseconds until the topic's earliest live message is visible: negative when one already is
 * (it became visible since the lease looked, or another consumer is taking it), null when the
 * topic is empty. The first entry of the lease index, so O(1).
 */
export async function nextVisibleIn(db: Queryable, topic: string): Promise<number | null> {
  return (await nextVisible(db, [topic]))[0]?.ms ?? null;
}

export interface Settlement {
  /** Ids this call settled. */
  settled: string[];
  dead: number;
}

const ack = statement<{ settled: string[] }>(
  'ack',
  `WITH gone AS (
     DELETE FROM queue_messages m
     WHERE m.topic = $1 AND m.msg_uuid = ANY(${TARGET_IDS}) AND m.lease_id = $2
     RETURNING m.msg_uuid
   ),
   ${FORGET_LEASE},
   ${counted('gone', '-count(*)', '0')}
   SELECT coalesce(array_agg(msg_uuid::text), '{}') AS settled FROM gone`,
);

const nack = statement<{ settled: string[]; dead: number }>(
  'nack',
  `WITH settings AS MATERIALIZED (
     SELECT coalesce((SELECT max_attempts FROM queue_topics WHERE topic = $1), $6::int) AS max_attempts
   ),
   changed AS (
     UPDATE queue_messages m SET
       lease_id = NULL,
       visible_at = now() + make_interval(secs => $4),
       last_error = $5,
       dead_at = CASE WHEN $7 OR m.attempts >= s.max_attempts THEN now() END
     FROM settings s
     WHERE m.topic = $1 AND m.msg_uuid = ANY(${TARGET_IDS}) AND m.lease_id = $2
     RETURNING m.msg_uuid, m.dead_at IS NOT NULL AS dead
   ),
   ${FORGET_LEASE},
   ${counted('changed', '-count(*) FILTER (WHERE dead)', 'count(*) FILTER (WHERE dead)')}
   SELECT coalesce(array_agg(msg_uuid::text), '{}') AS settled, (count(*) FILTER (WHERE dead))::int AS dead FROM changed`,
);

/**
 * Deletes acked messages: the named ones the lease still holds, or (no ids) every one it still
 * holds. Reports which it deleted; it is for the caller to refuse a partial ack.
 */
export async function ackMessages(
  db: Queryable,
  args: { topic: string; leaseId: string; ids?: string[] },
): Promise<Settlement> {
  const [row] = await ack(db, [args.topic, args.leaseId, args.ids ?? null]);
  return { settled: row?.settled ?? [], dead: 0 };
}

/**
 * Returns messages to the queue after `delaySeconds`, or to the dead letters when they used up
 * their attempts (or `deadLetter`). Which messages: as for ack.
 */
export async function nackMessages(
  db: Queryable,
  args: {
    topic: string;
    leaseId: string;
    ids?: string[];
    delaySeconds: number;
    reason: string;
    defaultMaxAttempts: number;
    deadLetter: boolean;
  },
): Promise<Settlement> {
  const [row] = await nack(db, [
    args.topic,
    args.leaseId,
    args.ids ?? null,
    args.delaySeconds,
    args.reason,
    args.defaultMaxAttempts,
    args.deadLetter,
  ]);
  return { settled: row?.settled ?? [], dead: row?.dead ?? 0 };
}

const extend = statement<{ extended: number; lease_until: Date | null }>(
  'extend',
  `WITH lease AS (
     UPDATE queue_leases SET lease_until = now() + make_interval(secs => $3)
     WHERE lease_id = $2 AND topic = $1
     RETURNING msg_uuids, lease_until
   ),
   moved AS (
     UPDATE queue_messages m SET visible_at = lease.lease_until FROM lease
     WHERE m.topic = $1 AND m.msg_uuid = ANY(lease.msg_uuids) AND m.lease_id = $2
     RETURNING 1
   )
   SELECT (SELECT count(*)::int FROM moved) AS extended, (SELECT lease_until FROM lease) AS lease_until`,
);

/** Heartbeat: pushes the lease's deadline out again. */
export async function extendLease(
  db: Queryable,
  args: { topic: string; leaseId: string; visibilitySeconds: number },
): Promise<{ extended: number; leaseUntil: Date | null }> {
  const [row] = await extend(db, [args.topic, args.leaseId, args.visibilitySeconds]);
  return { extended: row?.extended ?? 0, leaseUntil: row?.lease_until ?? null };
}

const release = statement<{ n: number }>(
  'release',
  `WITH lease AS (
     DELETE FROM queue_leases WHERE lease_id = $2 AND topic = $1 RETURNING msg_uuids
   ),
   released AS (
     UPDATE queue_messages m
     SET visible_at = now(), lease_id = NULL, attempts = greatest(m.attempts - 1, 0)
     FROM lease
     WHERE m.topic = $1 AND m.msg_uuid = ANY(lease.msg_uuids) AND m.lease_id = $2
     RETURNING 1
   )
   SELECT count(*)::int AS n FROM released`,
);

/** Gives a lease back untouched (its delivery did not happen): ready now, the attempt not counted. */
export async function releaseLease(db: Queryable, args: { topic: string; leaseId: string }): Promise<number> {
  return (await release(db, [args.topic, args.leaseId]))[0]?.n ?? 0;
}

const forgetEnded = statement<{ n: number }>(
  'forget_ended',
  `WITH gone AS (DELETE FROM queue_leases WHERE lease_until < now() - make_interval(secs => $1) RETURNING 1)
   SELECT count(*)::int AS n FROM gone`,
);

/** Deletes lease rows that ended more than `graceSeconds` ago (a later ack of them is a 409). */
export async function forgetEndedLeases(db: Queryable, graceSeconds: number): Promise<number> {
  return (await forgetEnded(db, [graceSeconds]))[0]?.n ?? 0;
}

export interface DeadRow {
  seq: string;
  msg_uuid: string;
  /** Null past the byte budget (`fits` false). */
  payload: string | null;
  attempts: number;
  published_at: Date;
  dead_at: Date;
  last_error: string | null;
  traceparent: string | null;
  /** The payloads up to and including this one are within the budget (the first always is). */
  fits: boolean;
}

// The page is cut where the payloads pass the budget, in Postgres, so that a page of large ones is
// never sent to the service at all; the rows after the cut come without payload, to say there is more.
const dead = statement<DeadRow>(
  'dead',
  `SELECT seq, msg_uuid::text, CASE WHEN fits THEN payload END AS payload, attempts, published_at,
          dead_at, last_error, traceparent, fits
   FROM (
     SELECT d.*, row_number() OVER w = 1 OR sum(octet_length(d.payload::text)) OVER w <= $4 AS fits
     FROM (
       SELECT seq, msg_uuid, payload, attempts, published_at, dead_at, last_error, traceparent
       FROM queue_messages
       WHERE topic = $1 AND dead_at IS NOT NULL AND seq > $2::bigint
       ORDER BY seq
       LIMIT $3
     ) AS d
     WINDOW w AS (ORDER BY seq ROWS UNBOUNDED PRECEDING)
   ) AS page
   ORDER BY seq`,
);

/** Up to `limit` dead letters after `after`, oldest first, payloads within `maxBytes` marked `fits`. */
export async function listDeadLetters(
  db: Queryable,
  args: { topic: string; limit: number; maxBytes: number; after?: string },
): Promise<DeadRow[]> {
  return dead(db, [args.topic, args.after ?? '0', args.limit, args.maxBytes]);
}

const redrive = statement<{ n: number }>(
  'redrive',
  `WITH moved AS (
     UPDATE queue_messages
     SET dead_at = NULL, attempts = 0, visible_at = now(), lease_id = NULL
     WHERE topic = $1 AND dead_at IS NOT NULL AND ($2::uuid[] IS NULL OR msg_uuid = ANY($2::uuid[]))
     RETURNING 1
   ),
   ${counted('moved', 'count(*)', '-count(*)')}
   SELECT count(*)::int AS n FROM moved`,
);

/** Dead letters back to ready, attempts reset; all of the topic's, or the named ones. */
export async function redriveDeadLetters(
  db: Queryable,
  args: { topic: string; ids?: string[] },
): Promise<number> {
  return (await redrive(db, [args.topic, args.ids ?? null]))[0]?.n ?? 0;
}

const purge = statement<{ n: number }>(
  'purge',
  `WITH gone AS (
     DELETE FROM queue_messages
     WHERE topic = $1 AND dead_at IS NOT NULL AND ($2::uuid[] IS NULL OR msg_uuid = ANY($2::uuid[]))
     RETURNING 1
   ),
   ${counted('gone', '0', '-count(*)')}
   SELECT count(*)::int AS n FROM gone`,
);

export async function purgeDeadLetters(
  db: Queryable,
  args: { topic: string; ids?: string[] },
): Promise<number> {
  return (await purge(db, [args.topic, args.ids ?? null]))[0]?.n ?? 0;
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

const stats = statement<TopicRow>(
  'stats',
  `SELECT topic, max_attempts, live, dead, in_flight, not_visible, oldest_ready_age
   FROM queue_topic_stats($1::text)`,
);

/**
 * Depth of one topic or all, from the counters plus the (small) set of rows not yet visible;
 * never a count over the backlog. See queue_topic_stats() in migrations/0032_queue_topic_stats.sql
 * (why it is a function: a plan held to the lease index).
 */
export async function topicStats(db: Queryable, topic?: string): Promise<TopicRow[]> {
  return stats(db, [topic ?? null]);
}

const exists = statement<{ exists: boolean }>(
  'topic_exists',
  `SELECT EXISTS (SELECT 1 FROM queue_topics WHERE topic = $1) AS exists`,
);

/** Whether the topic was ever published to (or configured). */
export async function topicExists(db: Queryable, topic: string): Promise<boolean> {
  return (await exists(db, [topic]))[0]?.exists ?? false;
}

const upsertSettings = statement(
  'settings',
  `INSERT INTO queue_topics (topic, max_attempts) VALUES ($1, $2)
   ON CONFLICT (topic) DO UPDATE SET max_attempts = excluded.max_attempts`,
);

export async function upsertTopicSettings(
  db: Queryable,
  args: { topic: string; maxAttempts: number | null },
): Promise<void> {
  await upsertSettings(db, [args.topic, args.maxAttempts]);
}

/** Publishes wake long-polls on other replicas through this channel; a notice is `<sender>:<topic>`. */
const PUBLISHED_CHANNEL = 'queue_published';

const notify = statement(
  'notify',
  `SELECT pg_notify('${PUBLISHED_CHANNEL}', $1 || ':' || t) FROM unnest($2::text[]) AS t`,
);

/** Tells every replica listening (listenForPublishes) that `topics` have new messages. */
export async function notifyPublished(db: Queryable, sender: string, topics: string[]): Promise<void> {
  await notify(db, [sender, topics]);
}

/** Subscribes a dedicated connection to publish notices: they arrive as its `notification` events. */
export async function listenForPublishes(client: Queryable): Promise<void> {
  await client.query(`LISTEN ${PUBLISHED_CHANNEL}`);
}

/** Who sent a publish notice (notifyPublished's `sender`), and for which topic. */
export function readPublishNotice(payload: string): { sender: string; topic: string } {
  const separator = payload.indexOf(':');
  return { sender: payload.slice(0, separator), topic: payload.slice(separator + 1) };
}
