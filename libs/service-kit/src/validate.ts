import { ValidationError } from '@gpu-telemetry/model';
import type { z } from 'zod';
import { fieldErrors } from './problem';

/**
 * Parses request input with a zod schema; on failure throws a 400 that names every bad field.
 * Routes call this on body, query and params before anything else.
 */
export function validate<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input ?? {});
  if (!result.success) throw new ValidationError(fieldErrors(result.error));
  return result.data;
}
