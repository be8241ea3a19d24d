import type { LeasedMessage } from '@gpu-telemetry/model';
import type { QueueClient } from './queue-client';

export interface ConsumerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** What a handler reports: messages it could not process, each with why. The rest are acked. */
export interface HandleResult {
  /** `deadLetter`: retrying cannot help (the content is invalid), so skip the remaining attempts. */
  failed?: { id: string; reason: string; deadLetter?: boolean }[];
}

export interface ConsumerOptions<T> {
  client: QueueClient;
  topic: string;
  /** Name shown in leases, e.g. the pod name. */
  consumer: string;
  /** Parallel lease loops. */
  concurrency: number;
  /** Messages per lease. */
  batch: number;
  visibilitySeconds: number;
  /**
   * How long a batch's handler may keep its lease alive: past this, heartbeats stop and the lease
   * runs out, instead of a hung handler holding its messages for good, and the loop leases on (up
   * to `concurrency` such batches at a time; past that it waits for one to end). Offered to this
   * consumer again, those messages are dead-lettered unhandled, so a batch that hangs every time
   * cannot take every loop; another consumer handles them as usual. The handler's signal aborts
   * then: a handler that stops on it (cancels what it waits on, and throws) has its messages
   * dead-lettered at once, naming the limit; one that finishes anyway has its batch settled as
   * usual (or found gone). Default: 10 × visibilitySeconds; Infinity: no limit.
   */
  maxHandleSeconds?: number;
  /** Called when a batch passes maxHandleSeconds and its lease is left to run out (for a counter). */
  onOverrun?(messages: number): void;
  waitSeconds: number;
  /** Seconds before a failed message is offered again. */
  retryDelaySeconds?: number;
  /**
   * Whether a handler's error is its dependency's (a database down or restarting), not the
   * messages': such a batch is given back untouched (released: no attempt counted, never
   * dead-lettered for it) and the loop backs off before it leases again. Other errors nack the
   * batch, which counts toward its messages' attempts.
   */
  isTransient?(error: unknown): boolean;
  /** Handles a batch; `signal` aborts when the batch passes maxHandleSeconds. */
  handle(messages: LeasedMessage<T>[], signal: AbortSignal): Promise<HandleResult | void>;
  logger: ConsumerLogger;
}

export interface Consumer {
  start(): void;
  /** Stops leasing, finishes the batches in hand (ack or nack), then resolves. */
  stop(): Promise<void>;
}

/** The longest delay a timer takes (2^31 - 1 ms); Node fires a longer one at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** The most ids of overrun batches' messages remembered (each dead-lettered if seen again). */
const MAX_SUSPECTS = 10_000;

type BatchOutcome = 'ok' | 'failed' | 'released';

/** The pause after an empty lease that came back early. */
const EMPTY_PAUSE_MS = 250;
/** The first and the longest pause after a batch failed for its dependency's sake. */
const TRANSIENT_PAUSE_MS = 500;
const TRANSIENT_PAUSE_MAX_MS = 30_000;

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * Lease loops over one topic. Each batch: lease, extend the lease on a heartbeat while the handler
 * runs, ack what succeeded and nack what failed (with the handler's reason), and only then lease
 * again. When the queue is down it backs off; it never drops a batch it holds.
 */
export function createConsumer<T>(options: ConsumerOptions<T>): Consumer {
  const { client, topic, logger } = options;
  const maxHandleSeconds =
    options.maxHandleSeconds !== undefined && options.maxHandleSeconds > 0
      ? options.maxHandleSeconds
      : 10 * options.visibilitySeconds;
  // Past what a timer takes (~24.8 days), or Infinity: no limit.
  const maxHandleMs = maxHandleSeconds * 1000 <= MAX_TIMER_MS ? maxHandleSeconds * 1000 : Infinity;
  const stopping = new AbortController();
  const loops: Promise<void>[] = [];
  /** Batches past maxHandleSeconds that a loop stopped waiting for, until they end. */
  const overran = new Set<Promise<BatchOutcome>>();
  /** Ids of messages whose batch overran, oldest first: dead-lettered when delivered again. */
  const suspects = new Set<string>();

  async function settle(
    leaseId: string,
    messages: LeasedMessage<T>[],
    result: HandleResult | void,
  ): Promise<void> {
    const failed = result?.failed ?? [];
    const failedIds = new Set(failed.map((f) => f.id));
    // One nack per distinct reason, each naming its messages.
    const groups = new Map<string, { reason: string; deadLetter: boolean; ids: string[] }>();
    for (const { id, reason, deadLetter = false } of failed) {
      const key = `${deadLetter}\n${reason}`;
      const group = groups.get(key) ?? { reason, deadLetter, ids: [] };
      group.ids.push(id);
      groups.set(key, group);
    }
    for (const { reason, deadLetter, ids } of groups.values()) {
      await persist(() =>
        client.nack(topic, leaseId, {
          ids,
          reason,
          deadLetter,
          delaySeconds: options.retryDelaySeconds ?? 5,
        }),
      );
    }
    const ok = messages.filter((m) => !failedIds.has(m.id)).map((m) => m.id);
    if (ok.length === 0) return;
    await persist(() => client.ack(topic, leaseId, failed.length === 0 ? undefined : ok));
  }

  /** Settling must not be lost to a blip: retry until it lands, or the lease is gone (409). */
  async function persist(operation: () => Promise<unknown>): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await operation();
        return;
      } catch (error) {
        const status = (error as { status?: number }).status;
        if (status === 409 || status === 404) {
          logger.warn(
            { err: error, topic },
            'lease was lost before it was settled; the queue will redeliver',
          );
          return;
        }
        if (status !== undefined && status < 500 && status !== 429) {
          // Refused as sent: retrying the same call cannot help.
          logger.error({ err: error, topic }, 'the queue refused to settle a lease; it will be redelivered');
          return;
        }
        if (attempt >= 8) {
          logger.error(
            { err: error, topic },
            'giving up settling a lease; it will be redelivered after it expires',
          );
          return;
        }
        await sleep(Math.min(200 * 2 ** attempt, 5_000));
      }
    }
  }

  async function loop(index: number): Promise<void> {
    let backoff = 100;
    let transientPause = TRANSIENT_PAUSE_MS;
    while (!stopping.signal.aborted) {
      let lease;
      const asked = performance.now();
      try {
        lease = await client.lease<T>(
          topic,
          {
            consumer: `${options.consumer}/${index}`,
            max: options.batch,
            visibilitySeconds: options.visibilitySeconds,
            waitSeconds: options.waitSeconds,
          },
          stopping.signal,
        );
        backoff = 100;
      } catch (error) {
        if (stopping.signal.aborted) return;
        logger.warn({ err: error, topic, retryInMs: backoff }, 'lease failed; backing off');
        await sleep(backoff, stopping.signal);
        backoff = Math.min(backoff * 2, 10_000);
        continue;
      }
      if (!lease.leaseId || lease.messages.length === 0) {
        // An empty answer well before the wait was up (no long-poll asked for, or a queue that is
        // shutting down answers at once) must not make the loop a busy one.
        if (options.waitSeconds === 0 || performance.now() - asked < (options.waitSeconds * 1000) / 2)
          await sleep(EMPTY_PAUSE_MS, stopping.signal);
        continue;
      }
      const leaseId = lease.leaseId;
      const messages = lease.messages;
      const heartbeat = setInterval(
        () =>
          void client.extend(topic, leaseId, options.visibilitySeconds).catch((error: unknown) => {
            logger.warn({ err: error, topic, leaseId }, 'lease heartbeat failed');
          }),
        (options.visibilitySeconds * 1000) / 3,
      );
      const stopHeartbeat = () => clearInterval(heartbeat);
      // The limit is on the handler alone: settling after it (retried through a queue blip) keeps
      // the lease alive as long as it takes.
      let overrun: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        if (maxHandleMs !== Infinity) overrun = setTimeout(() => resolve('late'), maxHandleMs);
      });
      let handled!: () => void;
      const handling = new Promise<'handled'>((resolve) => (handled = () => resolve('handled')));
      const limit = new AbortController();
      const batch = runBatch(leaseId, messages, stopHeartbeat, handled, limit.signal)
        .catch((error: unknown): BatchOutcome => {
          // Not expected (settling catches what it meets): the lease runs out and is redelivered.
          logger.error({ err: error, topic, leaseId }, 'batch failed unsettled; the queue will redeliver it');
          return 'failed';
        })
        .finally(stopHeartbeat);
      const first = await Promise.race([handling, batch, late]);
      clearTimeout(overrun);
      if (first === 'late') {
        // Hung, or far slower than it should be: stop keeping its lease alive, so the queue offers
        // the messages again; this consumer dead-letters them then (they may hang again), and
        // leases on, up to `concurrency` such batches at a time (each holds its messages and what
        // its handler took).
        stopHeartbeat();
        limit.abort(new Error(`handling ran past ${maxHandleSeconds}s`));
        options.onOverrun?.(messages.length);
        for (const m of messages) {
          suspects.add(m.id);
          if (suspects.size > MAX_SUSPECTS) suspects.delete(suspects.values().next().value as string);
        }
        const leaseOn = overran.size < options.concurrency;
        logger.error(
          { topic, leaseId, messages: messages.length, maxHandleSeconds, leaseOn },
          'batch still running past its limit; its lease is left to run out, and its messages will be dead-lettered when offered again',
        );
        // One that ends well was slow, not hung: its messages, if offered again, are handled.
        void batch.then((outcome) => {
          if (outcome === 'ok') for (const m of messages) suspects.delete(m.id);
        });
        if (leaseOn) {
          overran.add(batch);
          void batch.finally(() => overran.delete(batch));
          continue;
        }
      }
      const outcome = await batch;
      if (outcome === 'released') {
        await sleep(transientPause, stopping.signal);
        transientPause = Math.min(transientPause * 2, TRANSIENT_PAUSE_MAX_MS);
      } else if (outcome === 'ok') transientPause = TRANSIENT_PAUSE_MS;
    }
  }

  /**
   * Handles one leased batch and settles it: ack what succeeded and nack what failed, or, when
   * the handler failed for its dependency's sake, release the whole lease untouched. Messages
   * whose batch overran before are dead-lettered without being handled, and so are those of a
   * handler that failed once `limit` aborted (stopped at the limit). Calls `handled` once the
   * handler is done, before settling.
   */
  async function runBatch(
    leaseId: string,
    messages: LeasedMessage<T>[],
    stopHeartbeat: () => void,
    handled: () => void,
    limit: AbortSignal,
  ): Promise<BatchOutcome> {
    const suspect = messages.filter((m) => suspects.has(m.id));
    const fresh = suspect.length === 0 ? messages : messages.filter((m) => !suspects.has(m.id));
    const refused = suspect.map((m) => ({
      id: m.id,
      reason: `its handling ran past ${maxHandleSeconds}s on an earlier delivery; dead-lettered so that it cannot hang again (redrive it once the cause is found)`,
      deadLetter: true,
    }));
    let result: HandleResult | void = undefined;
    let outcome: BatchOutcome = 'ok';
    try {
      if (fresh.length > 0) result = await options.handle(fresh, limit);
    } catch (error) {
      if (limit.aborted) {
        logger.error({ err: error, topic, leaseId }, 'batch stopped past its limit; dead-lettering it');
        result = {
          failed: fresh.map((m) => ({
            id: m.id,
            reason: `its handling ran past ${maxHandleSeconds}s and was stopped; dead-lettered so that it cannot hang again (redrive it once the cause is found)`,
            deadLetter: true,
          })),
        };
      } else if (options.isTransient?.(error) && suspect.length === 0) {
        handled();
        // Not the messages' fault: hand them back as they came and wait for the dependency.
        logger.warn(
          { err: error, topic, leaseId },
          'batch failed for a dependency; releasing it untouched and backing off',
        );
        stopHeartbeat();
        await persist(() => client.release(topic, leaseId));
        return 'released';
      } else {
        const reason = error instanceof Error ? error.message : String(error);
        logger.error({ err: error, topic, leaseId }, 'batch failed; nacking it');
        result = { failed: fresh.map((m) => ({ id: m.id, reason })) };
      }
      outcome = 'failed';
    }
    handled();
    for (const m of suspect) suspects.delete(m.id);
    if (suspect.length > 0)
      logger.error(
        { topic, leaseId, messages: suspect.length },
        'dead-lettering messages whose batch overran',
      );
    await settle(leaseId, messages, { failed: [...refused, ...(result?.failed ?? [])] });
    return outcome;
  }

  return {
    start() {
      for (let i = 0; i < options.concurrency; i++) loops.push(loop(i));
    },
    async stop() {
      stopping.abort();
      // Batches given up on past maxHandleSeconds are not waited for: their leases ran out.
      await Promise.all(loops);
    },
  };
}
