import * as model from '@gpu-telemetry/model';
import { z } from 'zod';

// The shared request schemas, with what Postgres would otherwise refuse after the fact (and the
// error mapper could then name only as `body`): a NUL character in text, a cursor past bigint.

const noNul = (text: z.ZodString) =>
  text.refine((value) => !value.includes('\u0000'), 'must not contain the NUL character (\\u0000)');

/** Largest seq Postgres holds (bigint). */
const MAX_CURSOR = 9_223_372_036_854_775_807n;

export const leaseBody = model.leaseBody.extend({ consumer: noNul(model.leaseBody.shape.consumer) });

export const nackBody = model.nackBody.extend({
  reason: noNul(model.nackBody.shape.reason.unwrap()).optional(),
});

export const deadLettersQuery = model.deadLettersQuery.extend({
  cursor: model.deadLettersQuery.shape.cursor
    .unwrap()
    // Refinements run after a failed regex too: only digits are compared.
    .refine(
      (cursor) => !/^\d+$/.test(cursor) || BigInt(cursor) <= MAX_CURSOR,
      'must be a cursor returned by a previous page',
    )
    .optional(),
});
