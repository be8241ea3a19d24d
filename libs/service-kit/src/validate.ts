import { ValidationError } from '@gpu-telemetry/model';
import type { z } from 'zod';
import { fieldErrors } from './problem';
import { apiErrorMessage } from './zod-messages';

/**
 * Parses request input with a zod schema; on failure throws a 400 that names every bad field,
 * in the API's words (`is required`, `must be a number`) unless the schema words it itself.
 * Routes call this on body, query and params before anything else.
 */
export function validate<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input ?? {}, { error: apiErrorMessage });
  if (!result.success) throw new ValidationError(fieldErrors(result.error));
  return result.data;
}

/**
 * validate() for a query string. A parameter given more than once arrives as a list; where the
 * schema wants one value, the 400 says so rather than what the list fails to be.
 */
export function validateQuery<S extends z.ZodType>(schema: S, query: unknown): z.output<S> {
  const result = schema.safeParse(query ?? {}, { error: apiErrorMessage });
  if (result.success) return result.data;
  const given = (query ?? {}) as Record<string, unknown>;
  throw new ValidationError(
    fieldErrors(result.error).map((e) => {
      const value = Object.hasOwn(given, e.field) ? given[e.field] : undefined;
      return Array.isArray(value) ? { ...e, message: `must be given once, not ${value.length} times` } : e;
    }),
  );
}
