import { bigintCursor, dateTime, FIRST_TIME_MS, ValidationError } from '@gpu-telemetry/model';
import { apiRouter, validateQuery } from '@gpu-telemetry/service-kit';
import type { Router } from 'express';
import { z } from 'zod';
import { type Edge, requireScope } from '../auth/require-scope';
import { ROUTE_NAMES } from '../proxy/routes';
import type { AnalyticsService } from '../records/analytics.service';

const time = dateTime('must be an RFC 3339 date-time');
const route = z.enum(ROUTE_NAMES, { message: `must be one of ${ROUTE_NAMES.join(', ')}` });

export const latencyQuery = z.strictObject({
  route: route.optional(),
  from: time.optional(),
  to: time.optional(),
});
export const requestsQuery = z.strictObject({
  route: route.optional(),
  status: z.coerce.number().int().min(100).max(599).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: bigintCursor.optional(),
});

/** Latency analytics and recent requests, from the gateway's request records. Needs `read`. */
export function analyticsRoutes(analytics: AnalyticsService, edge: Edge): Router {
  const router = apiRouter();
  const read = requireScope(edge, 'read');

  router.get('/api/v1/analytics/latency', read, async (req, res) => {
    const query = validateQuery(latencyQuery, req.query);
    const to = query.to ? new Date(query.to) : new Date();
    // An hour before `to`, but not before the year 1.
    const from = query.from
      ? new Date(query.from)
      : new Date(Math.max(to.getTime() - 3_600_000, FIRST_TIME_MS));
    if (from >= to) throw new ValidationError([{ field: 'from', message: 'must be before to' }]);
    res.json({
      from: from.toISOString(),
      to: to.toISOString(),
      routes: await analytics.latency({ route: query.route, from, to }),
    });
  });

  router.get('/api/v1/requests', read, async (req, res) => {
    res.json(await analytics.requests(validateQuery(requestsQuery, req.query)));
  });

  return router;
}
