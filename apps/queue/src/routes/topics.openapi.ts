import {
  ackBody,
  deadLetter,
  deadLettersQuery,
  extendBody,
  lease,
  leaseBody,
  messageInput,
  nackBody,
  publishBatchBody,
  publishResult,
  redriveBody,
  topicName,
  topicSettingsBody,
  topicStats,
  uuid,
} from '@gpu-telemetry/model';
import {
  type Operation,
  openApiDocument,
  SERVICE_CREDENTIAL_PROBLEMS,
  SERVICE_CREDENTIAL_SECURITY,
} from '@gpu-telemetry/service-kit';
import { z } from 'zod';
import { MAX_NESTING } from '../services/publish-body';

const topic = z.object({ topic: topicName });
const leaseParams = z.object({ topic: topicName, leaseId: uuid });
const tags = ['queue'];
const badInput = 'A path parameter or a field is invalid (the problem names it)';
const noTopic = 'Nothing was ever published to the topic';
const tooManyTopics = 'A new topic, and the queue holds QUEUE_MAX_TOPICS already (the problem names `topic`)';
const leaseLost =
  'The lease no longer holds the messages (settled, or re-leased after it expired); nothing changed';

/** The queue's API, from the schemas its routes validate with and answer in. */
export const topicsOperations: Operation[] = [
  {
    method: 'get',
    path: '/v1/topics',
    summary: 'List topics with depth by state',
    tags,
    responses: { 200: { description: 'Topics', schema: z.object({ topics: z.array(topicStats) }) } },
  },
  {
    method: 'get',
    path: '/v1/topics/{topic}',
    summary: 'Depth, oldest ready age and settings of a topic',
    tags,
    params: topic,
    responses: { 200: { description: 'Topic', schema: topicStats } },
    problems: { 400: badInput, 404: noTopic },
  },
  {
    method: 'put',
    path: '/v1/topics/{topic}',
    summary: 'Set per-topic maxAttempts (null: the service default)',
    tags,
    params: topic,
    body: topicSettingsBody,
    responses: { 200: { description: 'Topic', schema: topicStats } },
    problems: { 400: badInput, 409: tooManyTopics },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/messages',
    summary: `Publish one message or a batch of up to 1000 (answered after commit; id is the dedup key). A body over QUEUE_BODY_LIMIT or a payload over QUEUE_MAX_PAYLOAD is a 413; more than 1000 messages, or values nested over ${MAX_NESTING} deep, a 400`,
    tags,
    params: topic,
    body: z.union([publishBatchBody, messageInput]),
    responses: { 201: { description: 'Stored', schema: publishResult } },
    problems: {
      400: badInput,
      408: 'The body did not arrive whole within QUEUE_BODY_TIMEOUT (the problem names `body`; the connection is closed)',
      409: tooManyTopics,
      413: 'The body is over QUEUE_BODY_LIMIT, or a payload over QUEUE_MAX_PAYLOAD',
      415: 'The body is not JSON in UTF-8, or is compressed',
      503: 'Publishes in flight already hold QUEUE_PUBLISH_MEMORY of bodies, counted as they arrive (the problem names `body`); retry after Retry-After',
    },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/leases',
    summary:
      'Lease up to max ready messages, oldest first, long-polling up to waitSeconds; no more than QUEUE_RESPONSE_LIMIT of payloads (but always one message): the rest stay ready for the next lease',
    tags,
    params: topic,
    body: leaseBody,
    responses: { 200: { description: 'Lease (leaseId null when empty)', schema: lease } },
    problems: { 400: badInput },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/acks',
    summary: "Ack the lease's messages (or the named ids, all or nothing); 409 when the lease was lost",
    tags,
    params: topic,
    body: ackBody,
    responses: { 200: { description: 'Acked', schema: z.object({ acked: z.number().int() }) } },
    problems: { 400: badInput, 409: leaseLost },
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
    problems: { 400: badInput, 409: leaseLost },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/leases/{leaseId}/extend',
    summary: 'Heartbeat: push leaseUntil',
    tags,
    params: leaseParams,
    body: extendBody,
    responses: {
      200: {
        description: 'Extended',
        schema: z.object({
          leaseId: z.string(),
          leaseUntil: z.iso.datetime({ offset: true }),
          extended: z.number().int(),
        }),
      },
    },
    problems: { 400: badInput, 409: leaseLost },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/leases/{leaseId}/release',
    summary: 'Give a lease back untouched',
    tags,
    params: leaseParams,
    responses: { 200: { description: 'Released', schema: z.object({ released: z.number().int() }) } },
    problems: { 400: badInput },
  },
  {
    method: 'get',
    path: '/v1/topics/{topic}/dead',
    summary:
      'Dead letters, oldest first: up to limit, and no more than QUEUE_RESPONSE_LIMIT of payloads (but always one)',
    tags,
    params: topic,
    query: deadLettersQuery,
    responses: {
      200: {
        description:
          'A page of dead letters; nextCursor is the cursor of the next page (also when the page was cut short by QUEUE_RESPONSE_LIMIT), null on the last',
        schema: z.object({ messages: z.array(deadLetter), nextCursor: z.string().nullable() }),
      },
    },
    problems: { 400: badInput, 404: noTopic },
  },
  {
    method: 'post',
    path: '/v1/topics/{topic}/dead/redrive',
    summary: 'Dead letters back to ready (all, or the named ids)',
    tags,
    params: topic,
    body: redriveBody,
    responses: { 200: { description: 'Redriven', schema: z.object({ redriven: z.number().int() }) } },
    problems: { 400: badInput, 404: noTopic },
  },
  {
    method: 'delete',
    path: '/v1/topics/{topic}/dead',
    summary: 'Purge dead letters (all, or the named ids)',
    tags,
    params: topic,
    body: redriveBody,
    responses: { 200: { description: 'Deleted', schema: z.object({ deleted: z.number().int() }) } },
    problems: { 400: badInput, 404: noTopic },
  },
];

/** Served as GET /openapi.json; tests hold every answer to it. */
export const queueApi = openApiDocument(
  { title: 'gpu-telemetry queue', version: '0.1.0' },
  topicsOperations,
  {
    problems: SERVICE_CREDENTIAL_PROBLEMS,
    ...SERVICE_CREDENTIAL_SECURITY,
  },
);
