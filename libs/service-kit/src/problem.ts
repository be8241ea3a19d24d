import { STATUS_CODES } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { Response } from 'express';
import { type FieldError, type Problem, PROBLEM_CONTENT_TYPE } from '@gpu-telemetry/model';
import type { ZodError } from 'zod';
// Installs the API's wording of zod's default messages for every parse whose issues land here.
import './zod-messages';

export interface ProblemExtras {
  errors?: FieldError[];
  headers?: Record<string, string>;
  extensions?: Record<string, unknown>;
  requestId?: string;
}

/**
 * Writes an RFC 9457 problem, `{type, title, status, detail, errors?, requestId}`, on any node
 * response: the Express routes and the gateway's plain node:http paths share it.
 */
export function writeProblem(
  res: ServerResponse,
  status: number,
  detail: string,
  extra: ProblemExtras = {},
): void {
  const problem: Problem = {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    ...extra.extensions,
    ...(extra.errors ? { errors: extra.errors } : {}),
    requestId: extra.requestId,
  };
  for (const [name, value] of Object.entries(extra.headers ?? {})) res.setHeader(name, value);
  res.statusCode = status;
  res.setHeader('content-type', PROBLEM_CONTENT_TYPE);
  res.end(JSON.stringify(problem));
}

/** writeProblem for an Express response, with the request id the service frame assigned. */
export function sendProblem(
  res: Response,
  status: number,
  detail: string,
  extra: Omit<ProblemExtras, 'requestId'> = {},
): void {
  writeProblem(res, status, detail, { ...extra, requestId: res.locals['requestId'] as string | undefined });
}

/** Zod issues as the fields a client wrote: `messages[3].id`, `limit`. */
/** Field errors listed in one answer, as the queue's publish lists them: a body can hold millions. */
export const MAX_FIELD_ERRORS = 100;

export function fieldErrors(error: ZodError, prefix: (string | number)[] = []): FieldError[] {
  const errors: FieldError[] = [];
  for (const issue of error.issues) {
    const path = [...prefix, ...issue.path] as (string | number)[];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        if (errors.length === MAX_FIELD_ERRORS) return errors;
        errors.push({ field: fieldName([...path, key]), message: 'is not a known field' });
      }
    } else {
      if (errors.length === MAX_FIELD_ERRORS) return errors;
      errors.push({ field: fieldName(path) || 'body', message: issue.message });
    }
  }
  return errors;
}

export function fieldName(path: readonly (string | number | symbol)[]): string {
  return path.reduce<string>((name, part) => {
    if (typeof part === 'number') return `${name}[${part}]`;
    return name ? `${name}.${String(part)}` : String(part);
  }, '');
}
