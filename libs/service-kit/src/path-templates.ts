/** Answered by every service's frame (GET, and HEAD with it), outside its own API document. */
export const FRAME_ROUTES: ReadonlySet<string> = new Set([
  '/healthz',
  '/readyz',
  '/metrics',
  '/openapi.json',
]);

/** An OpenAPI path template (`/v1/topics/{topic}`) with what it takes to match a request path. */
export interface PathTemplate<Operation> {
  template: string;
  pattern: RegExp;
  params: number;
  /** By lower-case method. */
  operations: Record<string, Operation>;
}

/**
 * The path templates of an OpenAPI document, literal ones first: a request path is the first
 * template it matches (/v1/topics/dead before /v1/topics/{topic}), as the routes are.
 */
export function pathTemplates<Operation>(paths: Record<string, Record<string, unknown>> = {}) {
  return Object.entries(paths)
    .map(([template, operations]): PathTemplate<Operation> => ({
      template,
      pattern: new RegExp(
        `^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}/]+\}/g, '[^/]+')}/?$`,
      ),
      params: (template.match(/\{/g) ?? []).length,
      operations: operations as Record<string, Operation>,
    }))
    .sort((a, b) => a.params - b.params);
}

/** The methods an OpenAPI path item may hold, in the order an Allow header lists them. */
const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options', 'trace'];

/**
 * The methods a path answers, as an Allow header lists them (HEAD with GET), or undefined when no
 * template of the document, nor the frame, has the path.
 */
export function allowedMethods(
  templates: readonly PathTemplate<unknown>[],
  path: string,
): string[] | undefined {
  let methods: string[];
  if (FRAME_ROUTES.has(path)) methods = ['get'];
  else {
    const found = templates.find((t) => t.pattern.test(path));
    if (!found) return undefined;
    methods = Object.keys(found.operations);
  }
  if (methods.includes('get')) methods.push('head');
  return METHODS.filter((m) => methods.includes(m)).map((m) => m.toUpperCase());
}

/**
 * A path segment that the router could not percent-decode (`%ZZ`, `%ff`: not UTF-8), from the
 * error it throws for it, or undefined for any other error.
 */
export function undecodableSegment(error: unknown): string | undefined {
  if (!(error instanceof URIError) || (error as { status?: unknown }).status !== 400) return undefined;
  return /^Failed to decode param '(.*)'$/s.exec(error.message)?.[1] ?? '';
}

/**
 * The name of the parameter a request path holds `segment` as ({topic} of /v1/topics/{topic}:
 * `topic`), or `path` when no template of the document says.
 */
export function paramNamed(
  templates: readonly PathTemplate<unknown>[],
  path: string,
  segment: string,
): string {
  const found = templates.find((t) => t.pattern.test(path));
  if (found) {
    const names = found.template.split('/');
    const index = path.split('/').indexOf(segment);
    const name = /^\{([^}/]+)\}$/.exec(names[index] ?? '')?.[1];
    if (name) return name;
  }
  return 'path';
}
