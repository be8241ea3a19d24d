import { FORM_MEDIA_TYPE, type Operation, type OperationResponse } from '@gpu-telemetry/service-kit';
import { z } from 'zod';
import { PROMETHEUS_API } from './prometheus.routes';

/** A sample as the API writes it: [unix seconds, value as a string ("NaN", "+Inf" included)]. */
const point = z.tuple([z.number(), z.string()]);
const metric = z.record(z.string(), z.string()).describe("The series' labels, __name__ included where kept");
const queryData = z.discriminatedUnion('resultType', [
  z.object({ resultType: z.literal('vector'), result: z.array(z.object({ metric, value: point })) }),
  z.object({
    resultType: z.literal('matrix'),
    result: z.array(z.object({ metric, values: z.array(point) })),
  }),
  z.object({ resultType: z.literal('scalar'), result: point }),
  z.object({ resultType: z.literal('string'), result: point }),
]);

const success = (data: z.ZodType) =>
  z.object({
    status: z.literal('success'),
    data,
    warnings: z.array(z.string()).optional(),
  });
const failure = z
  .object({
    status: z.literal('error'),
    errorType: z.enum(['bad_data', 'execution', 'timeout', 'canceled', 'internal', 'unavailable']),
    error: z.string(),
  })
  .describe("Prometheus' error envelope");

const fail = (description: string): OperationResponse => ({ description, schema: failure });
const BAD_DATA = fail(
  'bad_data: a parameter is missing or invalid, or the query does not parse (the error names it)',
);
const INTERNAL = fail('internal: an unexpected error, logged with the request id');
const UNAVAILABLE = fail(
  'timeout: the query ran past its timeout (PROMQL_TIMEOUT, or `timeout`), queue wait included; or unavailable: the database is down',
);
const TOO_LARGE = fail('bad_data: the form body is larger than 1 MiB');
const NOT_A_FORM = fail('bad_data: a POST body that is not application/x-www-form-urlencoded UTF-8');
const TOO_MANY_SERIES = fail(
  'execution: the match[] selectors would touch more than PROMQL_MAX_SERIES series',
);

const time = z.string().describe('Unix seconds (a decimal) or RFC 3339');
const duration = z.string().describe('Seconds (a decimal) or a duration such as 15s, 1m30s, 2h');
const instantParams = z.object({
  query: z.string().describe('PromQL'),
  time: time.optional().describe('Evaluation time; default now'),
  timeout: duration.optional().describe('Shortens PROMQL_TIMEOUT'),
  lookback_delta: duration
    .optional()
    .describe('How far back instant selectors look, instead of PROMQL_LOOKBACK_DELTA'),
});
const rangeParams = z.object({
  query: z.string().describe('PromQL'),
  start: time,
  end: time,
  step: duration.describe('Resolution: at most 11,000 points per series'),
  timeout: duration.optional().describe('Shortens PROMQL_TIMEOUT'),
  lookback_delta: duration
    .optional()
    .describe('How far back instant selectors look, instead of PROMQL_LOOKBACK_DELTA'),
});
const matchParams = z.object({
  'match[]': z.array(z.string()).describe('Series selectors, repeated; a series matching any is included'),
  start: time.optional(),
  end: time.optional(),
  limit: z.string().optional().describe('At most this many results (0: all); a warning says when cut'),
  timeout: duration.optional().describe('Shortens PROMQL_TIMEOUT'),
});
const optionalMatch = matchParams.partial({ 'match[]': true });

const tags = ['prometheus'];
const path = (p: string) => `${PROMETHEUS_API}${p}`;

/** The GET operation and its form-encoded POST twin, as Prometheus serves both. */
function getAndPost(
  p: string,
  summary: string,
  params: z.ZodObject,
  responses: Record<number, OperationResponse>,
): Operation[] {
  return [
    { method: 'get', path: path(p), summary, tags, query: params, responses },
    {
      method: 'post',
      path: path(p),
      summary: `${summary} (parameters as a form body)`,
      tags,
      body: params,
      bodyMediaType: FORM_MEDIA_TYPE,
      responses: { ...responses, 413: TOO_LARGE, 415: NOT_A_FORM },
    },
  ];
}

const queryResponses = (what: string): Record<number, OperationResponse> => ({
  200: {
    description: `${what}. Past TELEMETRY_RETENTION, series are read from their rollups, one sample per minute (or hour), and \`warnings\` says from when`,
    schema: success(queryData),
  },
  400: BAD_DATA,
  422: fail(
    "execution: evaluation failed, the samples budget (PROMQL_MAX_SAMPLES) or a selector's series cap (PROMQL_MAX_SERIES) was exceeded",
  ),
  500: INTERNAL,
  503: UNAVAILABLE,
});

const listResponses = (what: string, item: z.ZodType): Record<number, OperationResponse> => ({
  200: { description: what, schema: success(z.array(item)) },
  400: BAD_DATA,
  422: TOO_MANY_SERIES,
  500: INTERNAL,
  503: UNAVAILABLE,
});

/** The Prometheus HTTP API (v1): what Grafana's Prometheus data source, promtool and scripts call. */
export const prometheusOperations: Operation[] = [
  ...getAndPost(
    '/query',
    'PromQL instant query',
    instantParams,
    queryResponses('The value of the expression at `time`'),
  ),
  ...getAndPost(
    '/query_range',
    'PromQL range query',
    rangeParams,
    queryResponses('The values from start to end every step'),
  ),
  ...getAndPost(
    '/series',
    'Series matching any match[] selector (with data in start..end when given)',
    matchParams,
    listResponses('Label sets', metric),
  ),
  ...getAndPost(
    '/labels',
    'Label names (of the series matching match[] when given)',
    optionalMatch,
    listResponses('Label names', z.string()),
  ),
  {
    method: 'get',
    path: path('/label/{name}/values'),
    summary: 'Values of one label (__name__: metric names), of the series matching match[] when given',
    tags,
    params: z.object({ name: z.string() }),
    query: optionalMatch,
    responses: listResponses('Label values', z.string()),
  },
  {
    method: 'get',
    path: path('/metadata'),
    summary:
      'Metric metadata: type, help and unit as exporters last said them (scrapes and remote writes), one entry per metric; `limit` counts metrics',
    tags,
    query: z.object({
      metric: z.string().optional(),
      limit: z.string().optional(),
      limit_per_metric: z.string().optional().describe('Accepted and ignored: one entry per metric is kept'),
    }),
    responses: {
      200: {
        description: 'Metadata by metric name',
        schema: success(
          z.record(z.string(), z.array(z.object({ type: z.string(), help: z.string(), unit: z.string() }))),
        ),
      },
      400: BAD_DATA,
    },
  },
  ...getAndPost(
    '/query_exemplars',
    'Exemplars of the series a query selects: none are kept, so always an empty list (Grafana asks when its exemplars toggle is on)',
    z.object({ query: z.string().describe('PromQL'), start: time.optional(), end: time.optional() }),
    {
      200: { description: 'An empty list', schema: success(z.array(z.never())) },
      400: BAD_DATA,
    },
  ),
  {
    method: 'get',
    path: path('/rules'),
    summary:
      "Alerting and recording rules: none are evaluated here, so no groups (Grafana's Alerting pages ask every Prometheus data source)",
    tags,
    query: z.object({ type: z.enum(['alert', 'record']).optional().describe('Case-insensitive') }),
    responses: {
      200: { description: 'No rule groups', schema: success(z.object({ groups: z.array(z.never()) })) },
      400: BAD_DATA,
    },
  },
  {
    method: 'get',
    path: path('/alerts'),
    summary: 'Active alerts: no rules are evaluated here, so none',
    tags,
    responses: {
      200: { description: 'No alerts', schema: success(z.object({ alerts: z.array(z.never()) })) },
    },
  },
  {
    method: 'get',
    path: path('/status/buildinfo'),
    summary: 'Build information: the Prometheus version whose PromQL semantics are served',
    tags,
    responses: {
      200: {
        description: 'Build information',
        schema: success(
          z.object({
            version: z.string(),
            revision: z.string(),
            branch: z.string(),
            buildUser: z.string(),
            buildDate: z.string(),
            goVersion: z.string(),
          }),
        ),
      },
    },
  },
];
