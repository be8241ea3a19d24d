import { z } from 'zod';

/** One answer of an operation: a JSON body of `schema`, or no body when there is none. */
export interface OperationResponse {
  description: string;
  schema?: z.ZodType;
  /** Other media types the answer may come in, as the request asked (application/x-protobuf). */
  alsoAs?: string[];
}

/** Problem answers by status, each saying when the operation gives it. */
export type Problems = Record<number, string>;

/** One HTTP operation, described with the same zod schemas the route validates with. */
export interface Operation {
  method: 'get' | 'post' | 'put' | 'delete';
  /** OpenAPI path template: /v1/topics/{topic}/messages */
  path: string;
  summary: string;
  tags: string[];
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** The body's media type: application/json unless said (application/x-www-form-urlencoded). */
  bodyMediaType?: string;
  /** The answers that are not problems, by status. */
  responses: Record<number, OperationResponse>;
  /** The problems (application/problem+json) the route itself answers; the frame's are added. */
  problems?: Problems;
}

/** What the service frame answers on any operation: an unexpected error, Postgres unavailable. */
export const FRAME_PROBLEMS: Problems = {
  500: 'An unexpected error; it is logged with the request id',
  503: 'The database (or another dependency) is unavailable; retry after Retry-After',
};

/**
 * What the frame's body parser answers to a request that brings a body: listed on every operation
 * but a GET, since it answers so whether or not the operation reads one.
 */
export const BODY_PROBLEMS: Problems = {
  400: 'The body is not valid JSON',
  413: 'The body is larger than the limit',
  415: 'The body is not application/json (or not UTF-8, or compressed)',
};

/** What a backend answers without the service credential (every route but the probes). */
export const SERVICE_CREDENTIAL_PROBLEMS: Problems = {
  401: 'No service credential, or a wrong one (Authorization: Bearer <SERVICE_TOKEN>)',
};

/**
 * The service credential as an OpenAPI security scheme, as requireServiceToken reads it: the
 * `Authorization` header, `Bearer` and the token (SERVICE_TOKEN, or SERVICE_TOKEN_PREVIOUS while a
 * rotation rolls out).
 */
export const SERVICE_TOKEN_SCHEME = {
  type: 'http',
  scheme: 'bearer',
  description:
    'The service token the system’s services share: Authorization: Bearer <SERVICE_TOKEN> ' +
    '(SERVICE_TOKEN_PREVIOUS is taken too while a rotation rolls out). /healthz, /readyz and ' +
    '/metrics need none.',
} as const;

/**
 * What a backend's document declares of the service credential: the scheme, and that every
 * operation it lists needs it. Pass it to openApiDocument with SERVICE_CREDENTIAL_PROBLEMS.
 */
export const SERVICE_CREDENTIAL_SECURITY = {
  securitySchemes: { serviceToken: SERVICE_TOKEN_SCHEME },
  security: [{ serviceToken: [] }],
};

type SameShape<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/**
 * Pins a documented schema to the type a service answers with: `shapeOf<GpuView>()(z.object(...))`
 * returns the schema unchanged, and compiles only when its output is exactly that type.
 */
export function shapeOf<T>() {
  return <S extends z.ZodType>(
    schema: S & (SameShape<z.output<S>, T> extends true ? unknown : { 'does not answer in the shape of': T }),
  ): S => schema;
}

export const PROBLEM_MEDIA_TYPE = 'application/problem+json';

/** RFC 9457 problem details whose status is the answer's own; extension members are allowed. */
export function problemSchema(status: number) {
  return z
    .looseObject({
      type: z.string(),
      title: z.string(),
      status: z.literal(status),
      detail: z.string(),
      instance: z.string().optional(),
      requestId: z.string().optional(),
      errors: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    })
    .describe('Problem details (RFC 9457)');
}

/**
 * Requests are described as clients may write them (defaults optional), answers as they are sent.
 * Named definitions (a recursive schema needs one: `.meta({ id: 'SpanNode' })`) move to
 * `components` under that name, where the document's $refs can reach them.
 */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output', components: Record<string, unknown>) {
  const { $defs, ...converted } = z.toJSONSchema(schema, {
    io,
    unrepresentable: 'any',
    target: 'draft-2020-12',
  }) as Record<string, unknown> & { $defs?: Record<string, unknown> };
  for (const [name, definition] of Object.entries($defs ?? {})) {
    if (name.startsWith('__')) throw new Error(`Name the recursive schema ${name} with .meta({ id })`);
    components[name] = toComponentRefs(definition);
  }
  return toComponentRefs(converted) as Record<string, unknown>;
}

const toComponentRefs = (schema: unknown): unknown =>
  JSON.parse(JSON.stringify(schema).replaceAll('"#/$defs/', '"#/components/schemas/'));

/** The OpenAPI response object of a problem answer. */
export function problemResponse(status: number, description: string) {
  return {
    description,
    content: { [PROBLEM_MEDIA_TYPE]: { schema: jsonSchema(problemSchema(status), 'output', {}) } },
  };
}

function parameters(
  schema: z.ZodObject | undefined,
  where: 'path' | 'query',
  components: Record<string, unknown>,
) {
  if (!schema) return [];
  const shape = jsonSchema(schema, 'input', components) as {
    properties?: Record<string, unknown>;
    required?: string[];
  };
  return Object.entries(shape.properties ?? {}).map(([name, property]) => ({
    name,
    in: where,
    required: where === 'path' || (shape.required ?? []).includes(name),
    schema: property,
  }));
}

/** Each status's descriptions, joined: the route's own first, then the frame's. */
function mergeProblems(...sources: (Problems | undefined)[]): Map<number, string> {
  const merged = new Map<number, string[]>();
  for (const source of sources) {
    for (const [status, description] of Object.entries(source ?? {})) {
      const list = merged.get(Number(status)) ?? [];
      if (!list.includes(description)) list.push(description);
      merged.set(Number(status), list);
    }
  }
  return new Map([...merged].map(([status, list]) => [status, list.join('; or ')]));
}

/**
 * A status the operation answers in its own shape and the frame as a problem too (a Prometheus
 * API error and the frame's 500, say) lists both media types.
 */
function withProblem(
  own: unknown,
  problem: ReturnType<typeof problemResponse>,
): ReturnType<typeof problemResponse> {
  const documented = own as { description?: string; content?: Record<string, unknown> } | undefined;
  if (!documented?.content) return problem;
  return {
    description: `${documented.description}; or ${problem.description}`,
    content: { ...documented.content, ...problem.content },
  };
}

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, unknown>>;
  components?: { schemas?: Record<string, unknown>; [key: string]: unknown };
  [key: string]: unknown;
}

/**
 * An OpenAPI 3.1 document for a service, generated from its operations' zod schemas: every status
 * an operation answers is listed with its body's schema, problems included, so that a test can
 * hold every answer to it (see `documentedResponses` in ./testing).
 */
export function openApiDocument(
  info: { title: string; version: string; description?: string },
  operations: Operation[],
  options: {
    /** Problems every operation of the service answers (the service credential's 401). */
    problems?: Problems;
    /** Credential schemes the document's `security` names (components.securitySchemes). */
    securitySchemes?: Record<string, object>;
    /** What every operation needs unless it says otherwise: `[{ serviceToken: [] }]`. */
    security?: Record<string, string[]>[];
  } = {},
): OpenApiDocument {
  const paths: Record<string, Record<string, unknown>> = {};
  const schemas: Record<string, unknown> = {};
  for (const op of operations) {
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(op.responses)) {
      responses[status] = response.schema
        ? {
            description: response.description,
            content: {
              'application/json': { schema: jsonSchema(response.schema, 'output', schemas) },
              ...Object.fromEntries((response.alsoAs ?? []).map((type) => [type, {}])),
            },
          }
        : { description: response.description };
    }
    const problems = mergeProblems(
      op.problems,
      op.method === 'get' ? undefined : BODY_PROBLEMS,
      options.problems,
      FRAME_PROBLEMS,
    );
    for (const [status, description] of [...problems].sort(([a], [b]) => a - b)) {
      responses[status] = withProblem(responses[status], problemResponse(status, description));
    }
    (paths[op.path] ??= {})[op.method] = {
      summary: op.summary,
      tags: op.tags,
      parameters: [...parameters(op.params, 'path', schemas), ...parameters(op.query, 'query', schemas)],
      ...(op.body
        ? {
            requestBody: {
              required: true,
              content: {
                [op.bodyMediaType ?? 'application/json']: { schema: jsonSchema(op.body, 'input', schemas) },
              },
            },
          }
        : {}),
      responses,
    };
  }
  const components = {
    ...(Object.keys(schemas).length ? { schemas } : {}),
    ...(options.securitySchemes ? { securitySchemes: options.securitySchemes } : {}),
  };
  return {
    openapi: '3.1.0',
    info,
    paths,
    ...(Object.keys(components).length ? { components } : {}),
    ...(options.security ? { security: options.security } : {}),
  };
}
