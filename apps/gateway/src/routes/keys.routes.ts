import { noNul, uuid } from '@gpu-telemetry/model';
import { apiRouter, validate } from '@gpu-telemetry/service-kit';
import type { Router } from 'express';
import { z } from 'zod';
import { type ApiKeysService, SCOPES } from '../auth/api-keys.service';
import { type Edge, requireScope } from '../auth/require-scope';
import { TOPIC_PATTERN } from '../auth/topic-patterns';

export const createBody = z
  .strictObject({
    name: noNul(z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters')),
    scopes: z
      .array(z.enum(SCOPES, { message: 'must be read, publish, consume, admin or traces' }))
      .min(1, 'must list at least one scope')
      .max(SCOPES.length, `must list at most ${SCOPES.length} scopes`),
    topics: z
      .array(
        z.string().regex(TOPIC_PATTERN, 'must be a topic name, or a name prefix ending in * (e.g. jobs.*)'),
      )
      .min(1, 'must list at least one topic; leave it out for every topic')
      .max(100, 'must list at most 100 topics')
      .optional()
      .describe(
        'Limits the key to these queue topics (names, or prefixes ending in *); such a key reaches only /api/v1/topics/{topic} for them, and POST /api/v1/write when telemetry is among them. Absent: every topic and route the scopes allow.',
      ),
  })
  .superRefine((body, ctx) => {
    // An admin key could create an unlimited one; a span-export key never reaches the queue.
    const unlimited = body.scopes.filter((scope) => scope === 'admin' || scope === 'traces');
    if (body.topics && unlimited.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['topics'],
        message: `cannot limit a key with the ${unlimited.join(' or ')} scope`,
      });
    }
  });

/** Admin API for keys: create (the key is shown once), list, revoke. Needs an admin key. */
export function keysRoutes(keys: ApiKeysService, edge: Edge): Router {
  const router = apiRouter();
  const admin = requireScope(edge, 'admin');

  router.post('/api/v1/keys', admin, async (req, res) => {
    const { name, scopes, topics } = validate(createBody, req.body);
    res.status(201).json(await keys.create(name, scopes, topics ?? null));
  });

  router.get('/api/v1/keys', admin, async (_req, res) => {
    res.json({ keys: await keys.list() });
  });

  router.delete('/api/v1/keys/:id', admin, async (req, res) => {
    const { id } = validate(z.object({ id: uuid }), req.params);
    res.json(await keys.revoke(id));
  });

  return router;
}
