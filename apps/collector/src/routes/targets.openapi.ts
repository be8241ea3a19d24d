import type { Operation } from '@gpu-telemetry/service-kit';
import { z } from 'zod';
import { addBody, idParams } from './targets.routes';

const time = z.string().describe('RFC 3339 date-time');
const target = z.object({
  id: z.string().nullable(),
  url: z.string(),
  source: z.enum(['static', 'dns', 'api']),
  owner: z.number().int(),
  up: z.boolean().nullable(),
  lastScrapeAt: time.nullable(),
  lastSuccessAt: time.nullable(),
  lastError: z.string().nullable(),
  lastDurationMs: z.number().nullable(),
  lastSamples: z.number().int().nullable(),
  consecutiveFailures: z.number().int(),
});
const tags = ['targets'];

/** The targets API, from the schemas its routes validate with. */
export const targetsOperations: Operation[] = [
  {
    method: 'get',
    path: '/v1/targets',
    summary: 'Every scrape target and its last scrape',
    tags,
    responses: { 200: { description: 'Targets', schema: z.object({ targets: z.array(target) }) } },
  },
  {
    method: 'post',
    path: '/v1/targets',
    summary: 'Add a scrape target (http/https; metadata and link-local addresses refused)',
    tags,
    body: addBody,
    responses: {
      201: {
        description: 'Added',
        schema: z.object({ id: z.string(), url: z.string(), source: z.literal('api'), createdAt: time }),
      },
    },
  },
  {
    method: 'delete',
    path: '/v1/targets/{id}',
    summary: 'Remove a target added through the API',
    tags,
    params: idParams,
    responses: { 204: { description: 'Removed' } },
  },
];
