import { type Operation, shapeOf } from '@gpu-telemetry/service-kit';
import { z } from 'zod';
import type { TargetsService, TargetView } from '../targets/targets.service';
import { addBody, idParams } from './targets.routes';

const time = z.iso.datetime({ offset: true });
const target = shapeOf<TargetView>()(
  z.object({
    id: z.string().nullable(),
    url: z.string(),
    source: z.enum(['static', 'dns', 'api']),
    owner: z.number().int().describe('The replica ordinal that scrapes it'),
    up: z.boolean().nullable(),
    lastScrapeAt: time.nullable(),
    lastSuccessAt: time.nullable(),
    lastError: z.string().nullable(),
    lastDurationMs: z.number().nullable(),
    lastSamples: z.number().int().nullable(),
    consecutiveFailures: z.number().int(),
  }),
);
const added = shapeOf<Awaited<ReturnType<TargetsService['add']>>>()(
  z.object({ id: z.string(), url: z.string(), source: z.literal('api'), createdAt: time }),
);

const tags = ['targets'];

/** The targets API, from the schemas its routes validate with and answer in. */
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
    responses: { 201: { description: 'Added', schema: added } },
    problems: {
      400: 'The url is missing, not an absolute http(s) URL, carries credentials, or points at a refused address',
      409: 'The URL is already a target (static, DNS or API)',
    },
  },
  {
    method: 'delete',
    path: '/v1/targets/{id}',
    summary: 'Remove a target added through the API',
    tags,
    params: idParams,
    responses: { 204: { description: 'Removed' } },
    problems: { 400: 'The id is not a UUID', 404: 'No target with this id was added through the API' },
  },
];
