import { z } from 'zod';

// A lone UTF-16 surrogate is valid in JSON (as an escape) but Postgres refuses it in json and jsonb.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/** `text` as Postgres can store it: each NUL and lone surrogate becomes U+FFFD. */
export const toStorable = (text: string): string =>
  text.replaceAll('\u0000', '\ufffd').replace(LONE_SURROGATES, '\ufffd');

/** True when Postgres can store `value` as text and in jsonb: no NUL, no lone surrogate. */
export const isStorable = (value: string): boolean =>
  !value.includes('\u0000') && !LONE_SURROGATE.test(value);

/** Text Postgres can store in a text column and in jsonb: bounded, no NUL, no lone surrogate. */
export const storableText = (max: number) =>
  z
    .string()
    .max(max, `must be at most ${max} characters`)
    .refine((value) => !value.includes('\u0000'), 'must not contain NUL characters')
    .refine((value) => !LONE_SURROGATE.test(value), 'must be valid Unicode');
