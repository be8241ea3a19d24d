import { apiRouter, validate } from '@gpu-telemetry/service-kit';
import type { Router } from 'express';
import { z } from 'zod';
import { admittedAsAdmin, type Edge, requireScope } from '../auth/require-scope';
import type { TracesService } from '../traces/traces.service';

const params = z.object({
  traceId: z.string().regex(/^[0-9a-f]{32}$/, 'must be 32 lower-case hex characters'),
});

export function tracesRoutes(traces: TracesService, edge: Edge): Router {
  const router = apiRouter();
  router.get('/api/v1/traces/:traceId', requireScope(edge, 'read'), async (req, res) => {
    // Where services and Postgres are reached is the operators' to see: a read key gets it redacted.
    const view = { addresses: admittedAsAdmin(res) };
    res.json(await traces.trace(validate(params, req.params).traceId, view));
  });
  return router;
}
