import { apiRouter, validateQuery } from '@gpu-telemetry/service-kit';
import type { Router } from 'express';
import { z } from 'zod';
import type { StorageService } from '../services/storage.service';

export const storageQuery = z.strictObject({});

/** GET /v1/storage: what the stored telemetry costs, tier by tier. */
export function storageRoutes(storage: StorageService): Router {
  const router = apiRouter();
  router.get('/v1/storage', async (req, res) => {
    validateQuery(storageQuery, req.query);
    res.json(await storage.report());
  });
  return router;
}
