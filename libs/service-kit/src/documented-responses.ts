import { type OutputUnit, type Schema, Validator } from '@cfworker/json-schema';
import { FRAME_ROUTES, pathTemplates } from './path-templates';
import type { ResponseCheck, SentResponse } from './response-check';

interface DocumentedResponse {
  content?: Record<string, { schema?: Schema }>;
}

export interface DocumentedResponses {
  /** For createServiceApp's `checkResponse`, or `checkResponses` around a node handler. */
  check: ResponseCheck;
  /** The mismatches not yet reported by assertNone, oldest first. */
  readonly violations: readonly string[];
  /**
   * Throws, listing them, when any answer did not match since the last call; test apps call it
   * after each test, so the test that caused a mismatch is the one that fails.
   */
  assertNone(): void;
}

/**
 * Holds answers to an OpenAPI 3.1 document, the one the service serves: the answering operation
 * (method and path template) must be documented, its status listed, its media type the listed
 * one, and its body valid against the listed JSON Schema (undocumented fields included, since the
 * generated schemas forbid them).
 */
export function documentedResponses(
  document: {
    paths?: Record<string, Record<string, unknown>>;
    components?: { schemas?: Record<string, unknown> };
  },
  options: {
    /** Express routes that are not part of the API (beyond /healthz, /readyz, /metrics, /openapi.json). */
    undocumentedRoutes?: string[];
  } = {},
): DocumentedResponses {
  const templates = pathTemplates<{ responses?: Record<string, DocumentedResponse> }>(document.paths);
  const undocumented = new Set([...FRAME_ROUTES, ...(options.undocumentedRoutes ?? [])]);
  const validators = new Map<Schema, Validator>();
  const violations: string[] = [];

  const problem = (response: SentResponse): string | undefined => {
    const found = templates.find((t) => t.pattern.test(response.path));
    const method = response.method.toLowerCase();
    const operation = found?.operations[method];
    if (!found || !operation) {
      // Not in the document: fine for what no route answered (a 404), and for the frame's routes.
      if (response.route === undefined || undocumented.has(response.route)) return undefined;
      return `${response.method} ${response.route} is routed but not documented`;
    }
    const name = `${response.method} ${found.template} ${response.status}`;
    const documented = operation.responses?.[String(response.status)];
    if (!documented) {
      const listed = Object.keys(operation.responses ?? {}).join(', ');
      return `${name}: the status is not documented (documented: ${listed})`;
    }
    const mediaType = response.contentType?.split(';')[0]?.trim().toLowerCase();
    const content = documented.content;
    if (!content) {
      return response.body?.length
        ? `${name}: has a ${mediaType ?? 'untyped'} body; none is documented`
        : undefined;
    }
    const entry = mediaType ? content[mediaType] : undefined;
    if (!entry) {
      return `${name}: answered ${mediaType ?? 'without a content type'}, documented ${Object.keys(content).join(', ')}`;
    }
    if (response.body === undefined || !entry.schema) return undefined;
    let body: unknown;
    try {
      body = JSON.parse(response.body.toString('utf8'));
    } catch {
      return `${name}: the body is not JSON`;
    }
    let validator = validators.get(entry.schema);
    if (!validator) {
      validator = new Validator(withComponents(entry.schema, document.components?.schemas), '2020-12', false);
      validators.set(entry.schema, validator);
    }
    const result = validator.validate(body);
    return result.valid ? undefined : `${name}: ${describe(result.errors)}`;
  };

  return {
    check: (response) => {
      const violation = problem(response);
      if (violation) violations.push(violation);
      return violation;
    },
    violations,
    assertNone: () => {
      if (violations.length === 0) return;
      const seen = violations.splice(0);
      throw new Error(`${seen.length} answer(s) did not match the OpenAPI document:\n${seen.join('\n')}`);
    },
  };
}

/** `schema` on its own, with the document's components as its $defs (refs rewritten to match). */
function withComponents(schema: Schema, components: Record<string, unknown> | undefined): Schema {
  if (!components) return schema;
  const local = (value: unknown) =>
    JSON.parse(JSON.stringify(value).replaceAll('"#/components/schemas/', '"#/$defs/')) as Schema;
  return { ...local(schema), $defs: local(components) };
}

/** The failing leaves, by where in the body: wrappers (properties, items, anyOf branches) left out. */
function describe(errors: OutputUnit[]): string {
  const leaves = errors.filter(
    (e) =>
      !['properties', 'items', 'prefixItems', 'allOf', '$ref', 'false'].includes(e.keyword) &&
      !/\/(anyOf|oneOf)\/\d+\//.test(e.keywordLocation),
  );
  const shown = (leaves.length ? leaves : errors).slice(0, 5).map((e) => {
    const at = e.instanceLocation.replace(/^#/, '') || '/';
    return `${at} ${e.error}`;
  });
  return shown.join('; ') + (leaves.length > 5 ? ` (and ${leaves.length - 5} more)` : '');
}
