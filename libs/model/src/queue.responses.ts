import { z } from 'zod';
import { LOWER_UUID } from './queue.schemas';

/** What the queue answers: the schemas its OpenAPI document lists, and the types clients read. */

const messageId = z.string().regex(LOWER_UUID);
const time = z.iso.datetime({ offset: true });

export const publishResult = z.object({
  accepted: z.number().int(),
  duplicates: z.number().int(),
  /** In request order; a duplicate's id is the stored message's. */
  ids: z.array(messageId),
});
export type PublishResult = z.infer<typeof publishResult>;

export const leasedMessage = z.object({
  id: messageId,
  payload: z.unknown(),
  attempts: z.number().int(),
  publishedAt: time,
  /** The W3C trace context of the publish that stored the message, where it was traced. */
  traceparent: z.string().optional(),
});
export type LeasedMessage<T = unknown> = Omit<z.infer<typeof leasedMessage>, 'payload'> & { payload: T };

export const lease = z.object({
  /** Null, like leaseUntil, when no message was ready within waitSeconds. */
  leaseId: messageId.nullable(),
  leaseUntil: time.nullable(),
  messages: z.array(leasedMessage),
});
export type Lease<T = unknown> = Omit<z.infer<typeof lease>, 'messages'> & { messages: LeasedMessage<T>[] };

export const topicStats = z.object({
  topic: z.string(),
  ready: z.number().int(),
  inFlight: z.number().int(),
  delayed: z.number().int(),
  dead: z.number().int(),
  oldestReadyAgeSeconds: z.number().nullable(),
  maxAttempts: z.number().int(),
});
export type TopicStats = z.infer<typeof topicStats>;

export const deadLetter = leasedMessage.extend({ deadAt: time, lastError: z.string().nullable() });
export type DeadLetter = z.infer<typeof deadLetter>;
