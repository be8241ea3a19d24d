import { uuid } from '@gpu-telemetry/model';
import { validate } from '@gpu-telemetry/service-kit';
import { Router } from 'express';
import { z } from 'zod';
import { type ApiKeysService, SCOPES } from '../auth/api-keys.service';
import { requireScope } from '../auth/require-scope';

export const createBody = z.strictObject({
  name: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
  scopes: z
    .array(z.enum(SCOPES, { message: 'must be read, publish, admin or traces' }))
    .min(1, 'must list at least one scope')
    .max(SCOPES.length, `must list at most ${SCOPES.length} scopes`),
});

/** Admin API for keys: create (the key is shown once), list, revoke. Needs an admin key. */
export function keysRoutes(keys: ApiKeysService, auth: boolean): Router {
  const router = Router();
  const admin = requireScope(keys, auth, 'admin');

  router.post('/api/v1/keys', admin, async (req, res) => {
    const { name, scopes } = validate(createBody, req.body);
    res.status(201).json(await keys.create(name, scopes));
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
