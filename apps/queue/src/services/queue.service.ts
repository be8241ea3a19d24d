import { isPgError, withTransaction } from '@gpu-telemetry/db';
import {
  AppError,
  ConflictError,
  type FieldError,
  NotFoundError,
  PayloadTooLargeError,
  type PublishResult,
  type TopicStats,
} from '@gpu-telemetry/model';
import { getTracer, type Logger, traceparentOf, withSpan } from '@gpu-telemetry/service-kit';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Pool } from 'pg';
import type { LeaseWaiters } from './lease-waiters';
import type { PublishBatch } from './publish-body';
import type { PublishNotifier } from './publish-notifier';
import * as q from './queue.queries';
import type { QueueMetrics } from './queue.metrics';
import { uuidv7 } from './uuid-v7';

export interface QueueSettings {
  defaultMaxAttempts: number;
  maxPayloadBytes: number;
  /** Longest a waiting lease sleeps before looking again without a wake-up (missed NOTIFY, clock). */
  fallbackPollMs: number;
  /**
   * Most payload bytes (JSON text) a lease or a dead-letter page carries, but always one message:
   * the service builds each answer a few times over in memory.
   */
  maxResponseBytes: number;
  /** Most topics there may be (QUEUE_MAX_TOPICS): a new one past it is refused. */
  maxTopics: number;
}

export interface QueueServiceDeps {
  /** The pool itself: statements are prepared per connection, and settle transactions taken from it. */
  db: Pool;
  logger: Logger;
  waiters: LeaseWaiters;
  notifier: Pick<PublishNotifier, 'published'>;
  metrics: QueueMetrics;
  settings: QueueSettings;
}

/** A leased message whose payload is still the JSON text Postgres stored: passed through, not parsed. */
export interface RawLeasedMessage {
  id: string;
  payloadJson: string;
  attempts: number;
  /** ISO 8601. */
  publishedAt: string;
  /** The trace context of the publish that stored it (W3C traceparent), where it had one. */
  traceparent?: string;
}

export interface RawLease {
  leaseId: string | null;
  /** ISO 8601, as the lease row holds it. */
  leaseUntil: string | null;
  messages: RawLeasedMessage[];
}

const tracer = getTracer('queue');

export class QueueService {
  /** Topics known to exist. Topics are never deleted, so it holds at most every topic there is. */
  private readonly knownTopics = new Set<string>();

  constructor(private readonly deps: QueueServiceDeps) {}

  /**
   * Stores the batch in one statement and answers only after it committed. Payloads are UTF-8
   * JSON as the client wrote them, stored byte for byte.
   */
  async publish(topic: string, batch: PublishBatch): Promise<PublishResult> {
    const { db, metrics, settings } = this.deps;
    const { payloads } = batch;
    return withSpan(tracer, 'queue.publish', attrs(topic, payloads.length), async (span) => {
      const tooLarge: FieldError[] = [];
      payloads.forEach((text, index) => {
        if (text.length > settings.maxPayloadBytes) {
          tooLarge.push({
            field: `messages[${index}].payload`,
            message: `must be at most ${settings.maxPayloadBytes} bytes of JSON`,
          });
        }
      });
      if (tooLarge.length > 0)
        throw new PayloadTooLargeError(`${tooLarge[0]?.field} ${tooLarge[0]?.message}.`, tooLarge);
      await this.ensureTopic(topic);
      const ids = batch.ids.map((id) => id ?? uuidv7());
      const idsAreNew = batch.ids.every((id) => id === undefined);
      // Each message keeps this publish's trace context, for its consumer's span to link to.
      const traceparent = traceparentOf(span) ?? null;
      const { accepted, path } = await q.insertMessages(db, topic, ids, payloads, traceparent, idsAreNew);
      const result = { accepted, duplicates: ids.length - accepted, ids };
      metrics.insertPaths.inc({ topic, path });
      if (path === 'new_then_dedup')
        this.deps.logger.warn(
          { topic },
          'a generated message id collided with a stored one; batch stored with dedup',
        );
      metrics.published.inc({ topic }, result.accepted);
      if (result.duplicates > 0) metrics.duplicates.inc({ topic }, result.duplicates);
      span.setAttributes({
        'queue.accepted': result.accepted,
        'queue.duplicates': result.duplicates,
        'queue.insert_path': path,
      });
      if (result.accepted > 0) this.deps.notifier.published(topic);
      return result;
    });
  }

  /**
   * Leases up to `max` messages, and no more than `maxResponseBytes` of payloads, waiting up to
   * `waitSeconds` for some to arrive. Wakes on a publish to the topic (this replica or another),
   * or when the next delayed or expired message becomes visible; returns an empty lease when the
   * wait runs out, the caller goes away, or the service shuts down.
   */
  async lease(
    topic: string,
    request: { consumer: string; max: number; visibilitySeconds: number; waitSeconds: number },
    signal?: AbortSignal,
  ): Promise<RawLease> {
    const { db, metrics, settings, waiters } = this.deps;
    return withSpan(
      tracer,
      'queue.lease',
      { ...attrs(topic), 'queue.max': request.max, 'queue.consumer': request.consumer },
      async (span) => {
        const started = Date.now();
        const deadline = started + request.waitSeconds * 1000;
        const leaseId = uuidv7();
        let messages: RawLeasedMessage[] = [];
        let leaseUntil: string | null = null;
        for (;;) {
          const seen = waiters.version(topic);
          const rows = await q.leaseMessages(db, {
            topic,
            max: request.max,
            maxBytes: settings.maxResponseBytes,
            visibilitySeconds: request.visibilitySeconds,
            leaseId,
            consumer: request.consumer,
            defaultMaxAttempts: settings.defaultMaxAttempts,
          });
          const dead = rows.filter((row) => row.dead).length;
          if (dead > 0) metrics.dead.inc({ topic }, dead);
          messages = rows
            .filter((row) => !row.dead)
            .map((row) => ({
              id: row.msg_uuid,
              payloadJson: row.payload,
              attempts: row.attempts,
              publishedAt: row.published_at,
              ...(row.traceparent ? { traceparent: row.traceparent } : {}),
            }));
          if (messages.length > 0) {
            leaseUntil = rows.find((row) => !row.dead)?.lease_until ?? null;
            metrics.leased.inc({ topic }, messages.length);
            const redelivered = rows.filter((row) => row.redelivered && !row.dead).length;
            if (redelivered > 0) metrics.redelivered.inc({ topic }, redelivered);
            break;
          }
          if (rows.length > 0) continue; // all of them were exhausted and went dead: look again
          const remaining = deadline - Date.now();
          if (remaining <= 0 || waiters.isClosed || signal?.aborted) break;
          // Sleep until a publish, or until the next message becomes visible (at least a few ms, so
          // a row another consumer is taking right now does not make us spin).
          const nextVisible = await q.nextVisibleIn(db, topic);
          const sleep = Math.min(remaining, Math.max(nextVisible ?? Infinity, 5), settings.fallbackPollMs);
          await waiters.wait(topic, seen, sleep, signal);
        }
        const waited = (Date.now() - started) / 1000;
        if (messages.length > 0 || (await this.exists(topic)))
          metrics.leaseWait.observe({ topic, outcome: messages.length > 0 ? 'messages' : 'empty' }, waited);
        span.setAttribute('queue.leased', messages.length);
        if (messages.length === 0) return { leaseId: null, leaseUntil: null, messages };
        return { leaseId, leaseUntil, messages };
      },
    );
  }

  async ack(topic: string, leaseId: string, ids?: string[]): Promise<{ acked: number }> {
    return withSpan(
      tracer,
      'queue.ack',
      { ...attrs(topic, ids?.length), 'queue.lease_id': leaseId },
      async () => {
        const result = await this.settle('ack', topic, leaseId, ids, (db) =>
          q.ackMessages(db, { topic, leaseId, ids }),
        );
        this.deps.metrics.acked.inc({ topic }, result.settled.length);
        return { acked: result.settled.length };
      },
    );
  }

  async nack(
    topic: string,
    request: { leaseId: string; ids?: string[]; delaySeconds: number; reason?: string; deadLetter?: boolean },
  ): Promise<{ nacked: number; dead: number }> {
    const { metrics, settings } = this.deps;
    const { leaseId, ids } = request;
    return withSpan(
      tracer,
      'queue.nack',
      { ...attrs(topic, ids?.length), 'queue.lease_id': leaseId },
      async () => {
        const result = await this.settle('nack', topic, leaseId, ids, (db) =>
          q.nackMessages(db, {
            topic,
            leaseId,
            ids,
            delaySeconds: request.delaySeconds,
            reason: request.reason ?? 'nacked without a reason',
            defaultMaxAttempts: settings.defaultMaxAttempts,
            deadLetter: request.deadLetter ?? false,
          }),
        );
        const nacked = result.settled.length;
        metrics.nacked.inc({ topic }, nacked);
        if (result.dead > 0) metrics.dead.inc({ topic }, result.dead);
        // Waiters wake to take what is ready now; for delayed messages they wake to look again, and
        // then sleep until the earliest is due rather than until a later one or the fallback poll.
        if (nacked > result.dead) this.deps.notifier.published(topic);
        return { nacked, dead: result.dead };
      },
    );
  }

  async extend(
    topic: string,
    leaseId: string,
    visibilitySeconds: number,
  ): Promise<{ leaseId: string; leaseUntil: Date; extended: number }> {
    return withSpan(tracer, 'queue.extend', { ...attrs(topic), 'queue.lease_id': leaseId }, async () => {
      const { extended, leaseUntil } = await this.retryOnce('extend', () =>
        q.extendLease(this.deps.db, { topic, leaseId, visibilitySeconds }),
      );
      if (extended === 0 || !leaseUntil) {
        await this.countConflict(topic, 'extend');
        throw new ConflictError(
          `Lease ${leaseId} is no longer held: its messages were acked, or re-leased after it expired.`,
        );
      }
      return { leaseId, leaseUntil, extended };
    });
  }

  /** The caller went away before receiving its lease: give the messages back at once. */
  async release(topic: string, leaseId: string): Promise<number> {
    return withSpan(tracer, 'queue.release', { ...attrs(topic), 'queue.lease_id': leaseId }, async (span) => {
      const released = await this.retryOnce('release', () =>
        q.releaseLease(this.deps.db, { topic, leaseId }),
      );
      span.setAttribute('queue.released', released);
      if (released > 0) {
        // Messages were released, so the topic exists: a made-up name adds no series.
        this.deps.metrics.released.inc({ topic }, released);
        this.deps.notifier.published(topic);
      }
      return released;
    });
  }

  async stats(topic?: string): Promise<TopicStats[]> {
    const rows = await q.topicStats(this.deps.db, topic);
    return rows.map((row) => {
      const notVisible = Number(row.not_visible);
      const inFlight = Number(row.in_flight);
      return {
        topic: row.topic,
        ready: Math.max(0, Number(row.live) - notVisible),
        inFlight,
        delayed: notVisible - inFlight,
        dead: Number(row.dead),
        oldestReadyAgeSeconds:
          row.oldest_ready_age === null ? null : Math.max(0, Math.round(row.oldest_ready_age * 1000) / 1000),
        maxAttempts: row.max_attempts ?? this.deps.settings.defaultMaxAttempts,
      };
    });
  }

  async topic(topic: string): Promise<TopicStats> {
    const [stats] = await this.stats(topic);
    if (!stats) throw new NotFoundError(`Topic ${topic} does not exist: nothing was ever published to it.`);
    return stats;
  }

  async configure(topic: string, maxAttempts: number | null): Promise<TopicStats> {
    await this.ensureTopic(topic);
    await q.upsertTopicSettings(this.deps.db, { topic, maxAttempts });
    return this.topic(topic);
  }

  /** Creates the topic where new, unless QUEUE_MAX_TOPICS are there already (409 naming it). */
  private async ensureTopic(topic: string): Promise<void> {
    if (this.knownTopics.has(topic)) return;
    const { maxTopics } = this.deps.settings;
    if (!(await q.ensureTopic(this.deps.db, topic, maxTopics))) {
      this.deps.logger.warn({ topic, maxTopics }, 'refused a new topic: QUEUE_MAX_TOPICS reached');
      throw new AppError(
        409,
        `The queue holds ${maxTopics} topics (QUEUE_MAX_TOPICS): ${topic} cannot be created.`,
        {
          errors: [
            { field: 'topic', message: `must be an existing topic: the queue holds its ${maxTopics} topics` },
          ],
        },
      );
    }
    this.knownTopics.add(topic);
  }

  /** Up to `limit` dead letters, fewer where their payloads would pass `maxResponseBytes`. */
  async deadLetters(topic: string, limit: number, cursor?: string) {
    await this.topic(topic);
    const rows = await q.listDeadLetters(this.deps.db, {
      topic,
      limit: limit + 1,
      maxBytes: this.deps.settings.maxResponseBytes,
      after: cursor,
    });
    const page = rows.filter(withPayload).slice(0, limit);
    return { rows: page, nextCursor: rows.length > page.length ? (page.at(-1)?.seq ?? null) : null };
  }

  async redrive(topic: string, ids?: string[]): Promise<{ redriven: number }> {
    return withSpan(tracer, 'queue.redrive', attrs(topic, ids?.length), async () => {
      await this.topic(topic);
      const redriven = await q.redriveDeadLetters(this.deps.db, { topic, ids });
      this.deps.metrics.redriven.inc({ topic }, redriven);
      if (redriven > 0) this.deps.notifier.published(topic);
      return { redriven };
    });
  }

  async purge(topic: string, ids?: string[]): Promise<{ deleted: number }> {
    return withSpan(tracer, 'queue.purge', attrs(topic, ids?.length), async (span) => {
      await this.topic(topic);
      const deleted = await q.purgeDeadLetters(this.deps.db, { topic, ids });
      span.setAttribute('queue.deleted', deleted);
      this.deps.metrics.purged.inc({ topic }, deleted);
      this.deps.logger.info({ topic, deleted, named: ids?.length ?? null }, 'dead letters purged');
      return { deleted };
    });
  }

  /**
   * Runs an ack or nack statement. Named ids are all or nothing: in a transaction that rolls back
   * when the lease no longer holds every one. A lease that holds none (or not all) of the messages
   * is a 409 that changed nothing. A deadlock victim runs once more (retryOnce).
   */
  private async settle(
    operation: 'ack' | 'nack',
    topic: string,
    leaseId: string,
    ids: string[] | undefined,
    run: (db: q.Queryable) => Promise<q.Settlement>,
  ): Promise<q.Settlement> {
    const result = await this.retryOnce(
      operation,
      () =>
        ids
          ? withTransaction(this.deps.db, async (tx) => {
              const result = await run(tx);
              if (result.settled.length < ids.length) {
                const held = new Set(result.settled);
                const notHeld = ids.filter((id) => !held.has(id));
                throw new ConflictError(
                  `Lease ${leaseId} no longer holds ${notHeld.length} of the ${ids.length} messages named; nothing was ${operation}ed.`,
                  { notHeld },
                );
              }
              return result;
            })
          : run(this.deps.db), // the whole lease: one statement, atomic on its own
    ).catch(async (error: unknown) => {
      if (error instanceof ConflictError) await this.countConflict(topic, operation);
      throw error;
    });
    if (result.settled.length === 0) {
      await this.countConflict(topic, operation);
      throw new ConflictError(
        `Lease ${leaseId} holds no messages: they were already settled, or re-leased after the lease expired.`,
      );
    }
    return result;
  }

  /**
   * Runs a statement (or transaction) once more when Postgres aborted it as a deadlock victim or
   * a serialization failure, which left nothing behind. Aborted twice, it is a 503 to retry.
   * The second run waits 10-50 ms first: run at once, it can take the first lock back before the
   * transaction that won the deadlock has taken it, and meet that transaction again.
   */
  private async retryOnce<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (!isRetryable(error)) throw error;
      this.deps.logger.warn({ err: error, operation }, 'Postgres aborted the statement; running it again');
    }
    await sleep(10 + Math.random() * 40);
    try {
      return await run();
    } catch (error) {
      if (!isRetryable(error)) throw error;
      throw new AppError(503, `Postgres aborted the ${operation} twice (${error.code}); retry it.`, {
        headers: { 'Retry-After': '1' },
      });
    }
  }

  /** Conflicts are counted by topic only for topics that exist, so made-up names add no series. */
  private async countConflict(topic: string, operation: 'ack' | 'nack' | 'extend'): Promise<void> {
    if (await this.exists(topic)) this.deps.metrics.conflicts.inc({ topic, operation });
  }

  /**
   * Whether the topic was ever published to or configured, asked of Postgres until it is. For
   * metric labels only: when Postgres cannot say, no, rather than fail the request.
   */
  private async exists(topic: string): Promise<boolean> {
    if (this.knownTopics.has(topic)) return true;
    if (!(await q.topicExists(this.deps.db, topic).catch(() => false))) return false;
    this.knownTopics.add(topic);
    return true;
  }

  /** Forgets leases that ended long ago (housekeeping; message visibility never depends on it). */
  forgetEndedLeases(graceSeconds: number): Promise<number> {
    return q.forgetEndedLeases(this.deps.db, graceSeconds);
  }
}

/** A deadlock victim or a serialization failure: Postgres undid the statement, and it may run again. */
function isRetryable(error: unknown): error is Error & { code: string } {
  return isPgError(error, '40P01') || isPgError(error, '40001');
}

function withPayload(row: q.DeadRow): row is q.DeadRow & { payload: string } {
  return row.fits && row.payload !== null;
}

function attrs(topic: string, count?: number) {
  return {
    'messaging.system': 'gpu-telemetry-queue',
    'messaging.destination.name': topic,
    ...(count === undefined ? {} : { 'messaging.batch.message_count': count }),
  };
}
