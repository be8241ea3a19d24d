import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export type QueueMetrics = ReturnType<typeof createQueueMetrics>;

type Depth = { topic: string; state: string; count: number }[];

/**
 * `read`, run once for every caller that asks while it runs: scrapes that arrive together (several
 * Prometheus replicas, or anyone, since /metrics needs no credential) share one depth query
 * instead of each taking a database connection.
 */
export function sharedRead(read: () => Promise<Depth>): () => Promise<Depth> {
  let running: Promise<Depth> | undefined;
  return () =>
    (running ??= read().finally(() => {
      running = undefined;
    }));
}

export function createQueueMetrics(
  registry: Registry,
  readDepth: () => Promise<Depth>,
  listening: () => boolean = () => false,
  publishMemory?: { readonly inUse: number; readonly limit: number },
) {
  const depth = sharedRead(readDepth);
  const topic = ['topic'] as const;
  const registers = [registry];
  return {
    published: new Counter({
      name: 'queue_messages_published_total',
      help: 'Messages stored by publish.',
      labelNames: topic,
      registers,
    }),
    duplicates: new Counter({
      name: 'queue_messages_duplicate_total',
      help: 'Published messages whose id the topic already held.',
      labelNames: topic,
      registers,
    }),
    leased: new Counter({
      name: 'queue_messages_leased_total',
      help: 'Deliveries to consumers.',
      labelNames: topic,
      registers,
    }),
    redelivered: new Counter({
      name: 'queue_messages_redelivered_total',
      help: 'Deliveries of messages whose previous lease expired without ack.',
      labelNames: topic,
      registers,
    }),
    acked: new Counter({
      name: 'queue_messages_acked_total',
      help: 'Messages acked (and deleted).',
      labelNames: topic,
      registers,
    }),
    nacked: new Counter({
      name: 'queue_messages_nacked_total',
      help: 'Messages nacked back to the queue or to the dead letters.',
      labelNames: topic,
      registers,
    }),
    dead: new Counter({
      name: 'queue_messages_dead_total',
      help: 'Messages moved to the dead letters after their last attempt.',
      labelNames: topic,
      registers,
    }),
    redriven: new Counter({
      name: 'queue_messages_redriven_total',
      help: 'Dead letters returned to the queue.',
      labelNames: topic,
      registers,
    }),
    purged: new Counter({
      name: 'queue_messages_purged_total',
      help: 'Dead letters deleted for good (DELETE .../dead).',
      labelNames: topic,
      registers,
    }),
    released: new Counter({
      name: 'queue_messages_released_total',
      help: 'Leased messages given back untouched (release: a consumer gone before its lease was answered, or one whose dependency failed).',
      labelNames: topic,
      registers,
    }),
    housekeepingFailures: new Counter({
      name: 'queue_housekeeping_failures_total',
      help: 'Rounds of forgetting ended leases that failed (bookkeeping only: message visibility never depends on it).',
      registers,
    }),
    insertPaths: new Counter({
      name: 'queue_publish_insert_paths_total',
      help: 'Published batches by how they were stored: new (ids the queue made up, no dedup needed), dedup (client ids), or new_then_dedup (a made-up id collided; retried with dedup).',
      labelNames: ['topic', 'path'] as const,
      registers,
    }),
    publishRefused: new Counter({
      name: 'queue_publish_refused_total',
      help: 'Publishes refused, nothing stored, by reason: body_too_large, too_many_messages, payload_too_large, too_deep, invalid_json, invalid_message, invalid_topic, unsupported_media_type, unreadable_body (the client stopped sending), unstorable_value (Postgres refused a payload), memory_full (publishes in flight held QUEUE_PUBLISH_MEMORY of bodies), slow_body (not whole within QUEUE_BODY_TIMEOUT: 408).',
      labelNames: ['reason'] as const,
      registers,
    }),
    conflicts: new Counter({
      name: 'queue_lease_conflicts_total',
      help: 'Acks, nacks and extends refused because the lease was no longer held.',
      labelNames: ['topic', 'operation'] as const,
      registers,
    }),
    leaseWait: new Histogram({
      name: 'queue_lease_wait_seconds',
      help: 'Time a lease request waited (long-poll) before it returned.',
      labelNames: ['topic', 'outcome'] as const,
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 20, 30, 60],
      registers,
    }),
    notifyFailures: new Counter({
      name: 'queue_notify_failures_total',
      help: "NOTIFYs of a publish that failed: other replicas' long-polls on its topic wake on QUEUE_FALLBACK_POLL instead.",
      registers,
    }),
    publishMemory: new Gauge({
      name: 'queue_publish_memory_bytes',
      help: 'Publish body bytes held now, all requests together (reserved by Content-Length before reading, or as they arrive).',
      registers,
      collect() {
        this.set(publishMemory?.inUse ?? 0);
      },
    }),
    publishMemoryLimit: new Gauge({
      name: 'queue_publish_memory_limit_bytes',
      help: 'The most publish body bytes held at once (QUEUE_PUBLISH_MEMORY, never below QUEUE_BODY_LIMIT); past it a publish is a 503.',
      registers,
      collect() {
        this.set(publishMemory?.limit ?? 0);
      },
    }),
    listening: new Gauge({
      name: 'queue_listening',
      help: "1 while the LISTEN connection is up that wakes this replica's long-polls on other replicas' publishes.",
      registers,
      collect() {
        this.set(listening() ? 1 : 0);
      },
    }),
    depth: new Gauge({
      name: 'queue_depth',
      help: 'Messages by topic and state (ready, delayed, in_flight, dead), read when scraped.',
      labelNames: ['topic', 'state'] as const,
      registers,
      async collect() {
        this.reset();
        for (const { topic, state, count } of await depth().catch(() => []))
          this.set({ topic, state }, count);
      },
    }),
  };
}
