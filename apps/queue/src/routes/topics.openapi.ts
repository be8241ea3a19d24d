import {
  ackBody,
  deadLettersQuery,
  extendBody,
  leaseBody,
  messageInput,
  nackBody,
  publishBatchBody,
  redriveBody,
  topicName,
  topicSettingsBody,
  uuid,
} from '@gpu-telemetry/model';
import type { Operation } from '@gpu-telemetry/service-kit';
import { z } from 'zod';
import { MAX_NESTING } from '../services/publish-body';

const topic = z.object({ topic: topicName });
const lease = z.object({ topic: topicName, leaseId: uuid });
const time = z.string().describe('RFC 3339 date-time');
const stats = z.object({
  topic: z.string(),
  ready: z.number().int(),
  inFlight: z.number().int(),
  delayed: z.number().int(),
  dead: z.number().int(),
  oldestReadyAgeSeconds: z.number().nullable(),
  maxAttempts: z.number().int(),
});
const leased = z.object({
  leaseId: z.string().nullable(),
  leaseUntil: time.nullable(),
  messages: z.array(
    z.object({ id: z.string(), payload: z.unknown(), attempts: z.number().int(), publishedAt: time }),
  ),
});
const tags = ['queue'];

/** The queue's API, from the schemas its routes validate with. */
export const topicsOperations: Operation[] = [
  {
    method: 'get',
    path: '/v1/topics',
    summary: 'List topics with depth by state',
    tags,
    responses: { 200: { description: 'Topics', schema: z.object({ topics: z.array(stats) }) } },
  },
  {
    method: 'get',
    path: '/v1/topics/{topic}',
    summary: 'Depth, oldest ready age and settings of a topic',
    tags,
    params: topic,
    responses: { 200: { description: 'Topic', schema: stats } },
  },
  {
    method: 'put',
    path: '/v1/topics/{topic}',
    summary: 'Set per-topic maxAttempts (null: the service default)',
    tags,
    params: topic,
    body: topicSettingsBody,
    responses: { 200: { description: 'Topic', schema: stats } },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/messages',
    summary: `Publish one message or a batch of up to 1000 (answered after commit; id is the dedup key). A body over QUEUE_BODY_LIMIT or a payload over QUEUE_MAX_PAYLOAD is a 413; more than 1000 messages, or values nested over ${MAX_NESTING} deep, a 400`,
    tags,
    params: topic,
    body: z.union([publishBatchBody, messageInput]),
    responses: {
      201: {
        description: 'Stored',
        schema: z.object({
          accepted: z.number().int(),
          duplicates: z.number().int(),
          ids: z.array(z.string()),
        }),
      },
    },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/leases',
    summary: 'Lease up to max ready messages, long-polling up to waitSeconds',
    tags,
    params: topic,
    body: leaseBody,
    responses: { 200: { description: 'Lease (leaseId null when empty)', schema: leased } },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/acks',
    summary: "Ack the lease's messages (or the named ids, all or nothing); 409 when the lease was lost",
    tags,
    params: topic,
    body: ackBody,
    responses: { 200: { description: 'Acked', schema: z.object({ acked: z.number().int() }) } },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/nacks',
    summary: 'Return messages after a delay, or to the dead letters',
    tags,
    params: topic,
    body: nackBody,
    responses: {
      200: { description: 'Nacked', schema: z.object({ nacked: z.number().int(), dead: z.number().int() }) },
    },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/leases/{leaseId}/extend',
    summary: 'Heartbeat: push leaseUntil',
    tags,
    params: lease,
    body: extendBody,
    responses: {
      200: {
        description: 'Extended',
        schema: z.object({ leaseId: z.string(), leaseUntil: time, extended: z.number().int() }),
      },
    },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/leases/{leaseId}/release',
    summary: 'Give a lease back untouched',
    tags,
    params: lease,
    responses: { 200: { description: 'Released', schema: z.object({ released: z.number().int() }) } },
  },
  {
    method: 'get',
    path: '/v1/topics/{topic}/dead',
    summary: 'Dead letters, oldest first',
    tags,
    params: topic,
    query: deadLettersQuery,
    responses: { 200: { description: 'A page of dead letters' } },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/dead/redrive',
    summary: 'Dead letters back to ready (all, or the named ids)',
    tags,
    params: topic,
    body: redriveBody,
    responses: { 200: { description: 'Redriven', schema: z.object({ redriven: z.number().int() }) } },
  },
  {
    method: 'delete',
    path: '/v1/topics/{topic}/dead',
    summary: 'Purge dead letters (all, or the named ids)',
    tags,
    params: topic,
    body: redriveBody,
    responses: { 200: { description: 'Deleted', schema: z.object({ deleted: z.number().int() }) } },
  },
];
