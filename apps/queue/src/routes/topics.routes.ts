import {
  ackBody,
  deadLettersQuery,
  extendBody,
  leaseBody,
  nackBody,
  redriveBody,
  topicName,
  topicSettingsBody,
  uuid,
} from '@gpu-telemetry/model';
import { apiRouter, validate, validateQuery } from '@gpu-telemetry/service-kit';
import { type Response, type Router } from 'express';
import { z } from 'zod';
import type { QueueService, RawLease } from '../services/queue.service';

const topicParams = z.object({ topic: topicName });
const leaseParams = z.object({ topic: topicName, leaseId: uuid });
/** A release says nothing but its path: a body may be empty or `{}`. */
const releaseBody = z.strictObject({});

/**
 * Largest body of every topics call but a publish (which reads its own, see publish.routes.ts):
 * the longest is an ack, nack or redrive listing 1000 ids (about 39 KB), so a request here
 * cannot make the JSON parser build much.
 */
export const TOPICS_BODY_LIMIT = 64 * 1024;

/** HTTP in and out for topics, but for publish (publish.routes.ts); the behaviour is in QueueService. */
export function topicsRoutes(queue: QueueService): Router {
  const router = apiRouter();

  router.get('/v1/topics', async (_req, res) => {
    res.json({ topics: await queue.stats() });
  });

  router.get('/v1/topics/:topic', async (req, res) => {
    const { topic } = validate(topicParams, req.params);
    res.json(await queue.topic(topic));
  });

  router.put('/v1/topics/:topic', async (req, res) => {
    const { topic } = validate(topicParams, req.params);
    const { maxAttempts } = validate(topicSettingsBody, req.body);
    res.json(await queue.configure(topic, maxAttempts));
  });

  router.post('/v1/topics/:topic/leases', async (req, res) => {
    const { topic } = validate(topicParams, req.params);
    const request = validate(leaseBody, req.body);
    // The caller may hang up during a long-poll: stop waiting, and give back what we leased for it.
    const gone = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) gone.abort();
    });
    const lease = await queue.lease(topic, request, gone.signal);
    if (gone.signal.aborted && lease.leaseId) {
      await queue.release(topic, lease.leaseId);
      return;
    }
    sendLease(res, lease);
  });

  router.post('/v1/topics/:topic/acks', async (req, res) => {
    const { topic } = validate(topicParams, req.params);
    const { leaseId, ids } = validate(ackBody, req.body);
    res.json(await queue.ack(topic, leaseId, ids));
  });

  router.post('/v1/topics/:topic/nacks', async (req, res) => {
    const { topic } = validate(topicParams, req.params);
    res.json(await queue.nack(topic, validate(nackBody, req.body)));
  });

  router.post('/v1/topics/:topic/leases/:leaseId/extend', async (req, res) => {
    const { topic, leaseId } = validate(leaseParams, req.params);
    const { visibilitySeconds } = validate(extendBody, req.body);
    res.json(await queue.extend(topic, leaseId, visibilitySeconds));
  });

  router.post('/v1/topics/:topic/leases/:leaseId/release', async (req, res) => {
    const { topic, leaseId } = validate(leaseParams, req.params);
    validate(releaseBody, req.body ?? {});
    res.json({ released: await queue.release(topic, leaseId) });
  });

  router.get('/v1/topics/:topic/dead', async (req, res) => {
    const { topic } = validate(topicParams, req.params);
    const { limit, cursor } = validateQuery(deadLettersQuery, req.query);
    const { rows, nextCursor } = await queue.deadLetters(topic, limit, cursor);
    const items = rows.map(
      (row) =>
        `{"id":"${row.msg_uuid}","payload":${row.payload},"attempts":${row.attempts},` +
        `"publishedAt":"${row.published_at.toISOString()}","deadAt":"${row.dead_at.toISOString()}",` +
        `"lastError":${JSON.stringify(row.last_error)}${traceparentField(row.traceparent)}}`,
    );
    res
      .type('application/json')
      .send(`{"messages":[${items.join(',')}],"nextCursor":${JSON.stringify(nextCursor)}}`);
  });

  router.post('/v1/topics/:topic/dead/redrive', async (req, res) => {
    const { topic } = validate(topicParams, req.params);
    const { ids } = validate(redriveBody, req.body);
    res.json(await queue.redrive(topic, ids));
  });

  router.delete('/v1/topics/:topic/dead', async (req, res) => {
    const { topic } = validate(topicParams, req.params);
    const { ids } = validate(redriveBody, req.body);
    res.json(await queue.purge(topic, ids));
  });

  return router;
}

/** Payloads are spliced in as the JSON text Postgres returned: no parse and re-stringify per message. */
function sendLease(res: Response, lease: RawLease): void {
  const messages = lease.messages.map(
    (m) =>
      `{"id":"${m.id}","payload":${m.payloadJson},"attempts":${m.attempts},"publishedAt":"${m.publishedAt}"` +
      `${traceparentField(m.traceparent)}}`,
  );
  res
    .type('application/json')
    .send(
      `{"leaseId":${JSON.stringify(lease.leaseId)},"leaseUntil":${JSON.stringify(lease.leaseUntil)},` +
        `"messages":[${messages.join(',')}]}`,
    );
}

/** A message's `traceparent` member, spliced after its others; none where it has none. */
function traceparentField(traceparent: string | null | undefined): string {
  return traceparent ? `,"traceparent":${JSON.stringify(traceparent)}` : '';
}
