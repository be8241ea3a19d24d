import { bytes, duration, int, loadConfig, serviceEnv } from '@gpu-telemetry/config';
import { z } from 'zod';

export const queueEnv = z.object({
  ...serviceEnv(8081),
  DATABASE_POOL_SIZE: int(20, 1, 200),
  /** Deliveries before a message goes to the dead letters, unless its topic says otherwise. */
  QUEUE_MAX_ATTEMPTS: int(5, 1, 1000),
  /** Largest payload of one message, as JSON. */
  QUEUE_MAX_PAYLOAD: bytes('256kb'),
  /** Largest request body: a batch of up to 1000 messages. */
  QUEUE_BODY_LIMIT: bytes('32mb'),
  /**
   * Most publish body bytes held at once, all requests together (each costs two to three times its
   * body in memory while it is stored); past it, a publish is a 503 with Retry-After. Never taken
   * as less than QUEUE_BODY_LIMIT, so one publish of the largest size always fits.
   */
  QUEUE_PUBLISH_MEMORY: bytes('64mb').refine((n) => n >= 1024 * 1024, 'must be at least 1mb'),
  /** Most payload bytes one lease or dead-letter page carries (always one message, at least). */
  QUEUE_RESPONSE_LIMIT: bytes('4mb'),
  /**
   * How long a publish body has to arrive whole (408 past it): a body that trickles in holds its
   * bytes of QUEUE_PUBLISH_MEMORY and a connection.
   */
  QUEUE_BODY_TIMEOUT: duration('30s', { min: '100ms', max: '5m' }),
  /**
   * Most topics the queue holds. Publishing creates a topic and topics are kept for good (each
   * costs a little memory and a few metric series on every replica), so a key that may publish to
   * `jobs.*` cannot create them without end: past it, publishing to a new topic is a 409.
   */
  QUEUE_MAX_TOPICS: int(10_000, 1, 1_000_000),
  /** A waiting lease looks again at least this often, even without a wake-up. */
  QUEUE_FALLBACK_POLL: duration('5s', { min: '10ms', max: '1m' }),
});

export type QueueConfig = z.output<typeof queueEnv>;

export function loadQueueConfig(env: Record<string, string | undefined> = process.env): QueueConfig {
  return loadConfig(queueEnv, env);
}
