import { uuid } from '@gpu-telemetry/model';
import { apiRouter, validate } from '@gpu-telemetry/service-kit';
import type { Request, Router } from 'express';
import { z } from 'zod';
import { MAX_TARGET_URL } from '../targets/target-url';
import type { TargetsService } from '../targets/targets.service';

export const addBody = z.strictObject({
  url: z
    .string()
    .min(1, 'must not be empty')
    .max(MAX_TARGET_URL, `must be at most ${MAX_TARGET_URL} characters`),
});
export const idParams = z.object({ id: uuid });

/**
 * Where a new target is found: under the path the caller asked for. Behind the gateway that is
 * /api/v1/targets, which it names in X-Forwarded-Uri (believed here, past the service credential);
 * called directly, /v1/targets.
 */
function targetLocation(req: Request, id: string): string {
  const forwarded = req.headers['x-forwarded-uri'];
  const asked = typeof forwarded === 'string' ? (forwarded.split('?')[0] ?? '').replace(/\/+$/, '') : '';
  const base = asked.startsWith('/') && asked.endsWith('/targets') ? asked : '/v1/targets';
  return `${base}/${id}`;
}

/** HTTP in and out for scrape targets; the behaviour is in TargetsService. */
export function targetsRoutes(targets: TargetsService): Router {
  const router = apiRouter();

  router.get('/v1/targets', async (_req, res) => {
    res.json({ targets: await targets.list() });
  });

  router.post('/v1/targets', async (req, res) => {
    const { url } = validate(addBody, req.body);
    const created = await targets.add(url);
    res.status(201).location(targetLocation(req, created.id)).json(created);
  });

  router.delete('/v1/targets/:id', async (req, res) => {
    const { id } = validate(idParams, req.params);
    await targets.remove(id);
    res.status(204).end();
  });

  return router;
}
