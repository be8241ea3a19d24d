import { STATUS_CODES } from 'node:http';
import type { Response } from 'express';
import { type FieldError, type Problem, PROBLEM_CONTENT_TYPE } from '@gpu-telemetry/model';
import type { ZodError } from 'zod';

/** Sends an RFC 9457 problem: `{type, title, status, detail, errors?, requestId}`. */
export function sendProblem(
  res: Response,
  status: number,
  detail: string,
  extra: {
    errors?: FieldError[];
    headers?: Record<string, string>;
    extensions?: Record<string, unknown>;
  } = {},
): void {
  const problem: Problem = {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    ...extra.extensions,
    ...(extra.errors ? { errors: extra.errors } : {}),
    requestId: res.locals['requestId'] as string | undefined,
  };
  for (const [name, value] of Object.entries(extra.headers ?? {})) res.setHeader(name, value);
  res.status(status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
}

/** Zod issues as the fields a client wrote: `messages[3].id`, `limit`. */
export function fieldErrors(error: ZodError, prefix: (string | number)[] = []): FieldError[] {
  return error.issues.flatMap((issue) => {
    const path = [...prefix, ...issue.path] as (string | number)[];
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ field: fieldName([...path, key]), message: 'is not a known field' }));
    }
    return [{ field: fieldName(path) || 'body', message: issue.message }];
  });
}

export function fieldName(path: readonly (string | number | symbol)[]): string {
  return path.reduce<string>((name, part) => {
    if (typeof part === 'number') return `${name}[${part}]`;
    return name ? `${name}.${String(part)}` : String(part);
  }, '');
}
