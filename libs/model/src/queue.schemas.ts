import { z } from 'zod';

export const TOPIC_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
export const MAX_BATCH = 1000;

export const topicName = z
  .string()
  .regex(
    TOPIC_PATTERN,
    'must be 1-63 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit',
  );

/** Any 8-4-4-4-12 hex id, normalised to lower case the way Postgres prints it. */
export const uuid = z
  .string()
  .regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'must be a UUID')
  .transform((value) => value.toLowerCase());

const uuidList = z
  .array(uuid)
  .min(1, 'must list at least one id')
  .max(MAX_BATCH, `must list at most ${MAX_BATCH} ids`)
  .transform((ids) => [...new Set(ids)]);

export const messageInput = z.strictObject({
  id: uuid.optional(),
  payload: z.unknown().refine((value) => value !== undefined, 'is required'),
});

export const publishBatchBody = z.strictObject({
  messages: z
    .array(messageInput)
    .min(1, 'must contain at least one message')
    .max(MAX_BATCH, `must contain at most ${MAX_BATCH} messages`),
});

export const LOWER_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// What Postgres would refuse after the fact (and the error mapper could then name only as `body`)
// is refused here, naming the field: a NUL character in text, a cursor past bigint.
export const noNul = (text: z.ZodString) =>
  text.refine((value) => !value.includes('\u0000'), 'must not contain the NUL character (\\u0000)');

/** Largest seq Postgres holds (bigint). */
const MAX_CURSOR = 9_223_372_036_854_775_807n;

/** A keyset cursor over a bigint id, as a previous page returned it: digits, at most bigint. */
export const bigintCursor = z
  .string()
  .regex(/^\d{1,19}$/, 'must be a cursor returned by a previous page')
  // Refinements run after a failed regex too: only digits are compared.
  .refine(
    (cursor) => !/^\d+$/.test(cursor) || BigInt(cursor) <= MAX_CURSOR,
    'must be a cursor returned by a previous page',
  );

export const leaseBody = z.strictObject({
  consumer: noNul(z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters')),
  max: z.number().int('must be a whole number').min(1).max(MAX_BATCH).default(10),
  visibilitySeconds: z.number().int('must be a whole number').min(1).max(43_200).default(30),
  waitSeconds: z.number().min(0).max(60).default(0),
});

export const ackBody = z.strictObject({ leaseId: uuid, ids: uuidList.optional() });

export const nackBody = z.strictObject({
  leaseId: uuid,
  ids: uuidList.optional(),
  delaySeconds: z.number().min(0).max(86_400).default(0),
  reason: noNul(z.string().max(2_000, 'must be at most 2000 characters')).optional(),
  /** Straight to the dead letters, whatever the attempts: retrying cannot help (e.g. invalid content). */
  deadLetter: z.boolean().default(false),
});

export const extendBody = z.strictObject({
  visibilitySeconds: z.number().int('must be a whole number').min(1).max(43_200).default(30),
});

export const redriveBody = z.strictObject({ ids: uuidList.optional() });

export const topicSettingsBody = z.strictObject({
  maxAttempts: z.number().int('must be a whole number').min(1).max(1_000).nullable(),
});

export const deadLettersQuery = z.strictObject({
  limit: z.coerce.number().int('must be a whole number').min(1).max(1_000).default(100),
  cursor: bigintCursor.optional(),
});

export type MessageInput = z.infer<typeof messageInput>;
export type LeaseRequest = z.input<typeof leaseBody>;
