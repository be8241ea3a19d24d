import { z } from 'zod';

type RawIssue = z.core.$ZodRawIssue;
type FinalIssue = z.core.$ZodIssue;

/** What a value of each type zod names is called in a message: `must be ${noun}`. */
const TYPE_NOUNS: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  bigint: 'an integer',
  boolean: 'a boolean',
  array: 'an array',
  tuple: 'an array',
  object: 'an object',
  record: 'an object',
  date: 'a date',
  null: 'null',
};

/** What a string of each format zod checks is called in a message: `must be ${noun}`. */
const FORMAT_NOUNS: Readonly<Record<string, string>> = {
  uuid: 'a UUID',
  uuidv4: 'a UUID',
  uuidv6: 'a UUID',
  uuidv7: 'a UUID',
  guid: 'a UUID',
  url: 'a URL',
  email: 'an email address',
  datetime: 'an RFC 3339 date-time',
  date: 'a date (YYYY-MM-DD)',
  time: 'a time (HH:MM:SS)',
  duration: 'an ISO 8601 duration',
  ipv4: 'an IPv4 address',
  ipv6: 'an IPv6 address',
  cidrv4: 'an IPv4 range',
  cidrv6: 'an IPv6 range',
  base64: 'base64',
  base64url: 'base64url',
  json_string: 'a JSON string',
  jwt: 'a JWT',
};

function shown(value: unknown): string {
  return typeof value === 'bigint' ? value.toString() : (JSON.stringify(value) ?? String(value));
}

function oneOf(values: readonly unknown[]): string {
  return values.length === 1 ? shown(values[0]) : `one of ${values.map(shown).join(', ')}`;
}

/** What a size limit counts, by what zod says is sized: one, and more than one. */
const SIZE_UNITS: Readonly<Record<string, readonly [string, string]>> = {
  string: ['character', 'characters'],
  array: ['item', 'items'],
  set: ['item', 'items'],
  map: ['entry', 'entries'],
  file: ['byte', 'bytes'],
};

/** What a union branch wanted, when it failed on the value itself: `a number`, `one of "NaN", "+Inf"`. */
function branchNoun(issues: readonly FinalIssue[]): string | undefined {
  const [issue] = issues;
  if (issues.length !== 1 || !issue || issue.path.length > 0) return undefined;
  if (issue.code === 'invalid_type') return TYPE_NOUNS[issue.expected];
  if (issue.code === 'invalid_value') return oneOf(issue.values);
  return undefined;
}

function sizeMessage(
  bound: 'least' | 'most',
  issue: { origin: string; inclusive?: boolean; exact?: boolean },
  limit: number | bigint,
): string | undefined {
  const unit = SIZE_UNITS[issue.origin];
  if (unit) {
    if (bound === 'least' && issue.inclusive && !issue.exact && (limit === 1 || limit === 1n))
      return 'must not be empty';
    const verb = issue.origin === 'string' || issue.origin === 'file' ? 'be' : 'have';
    const count = `${limit.toString()} ${limit === 1 || limit === 1n ? unit[0] : unit[1]}`;
    return `must ${verb} ${issue.exact ? 'exactly' : `at ${bound}`} ${count}`;
  }
  if (issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint') {
    if (issue.exact) return `must be ${limit.toString()}`;
    if (issue.inclusive) return `must be at ${bound} ${limit.toString()}`;
    return `must be ${bound === 'least' ? 'greater' : 'less'} than ${limit.toString()}`;
  }
  return undefined;
}

/**
 * Zod's default messages, worded as the rest of the API words a bad field: `is required`,
 * `must be a string`, `must be at most 100`. Only defaults: a message a schema sets itself
 * (`z.string({ error })`, `.min(1, 'must not be empty')`, a refine's) outranks this map.
 * Answers undefined for what it has no better words for, leaving zod's own.
 */
export const apiErrorMessage: z.core.$ZodErrorMap = (issue: RawIssue) => {
  switch (issue.code) {
    case 'invalid_type': {
      if (issue.input === undefined) return 'is required';
      if (issue.expected === 'number' && typeof issue.input === 'number') {
        return Number.isNaN(issue.input) ? 'must be a number' : 'must be a finite number';
      }
      const noun = TYPE_NOUNS[issue.expected];
      return noun ? `must be ${noun}` : undefined;
    }
    case 'invalid_value':
      if (issue.input === undefined) return 'is required';
      if (issue.expected === 'stringbool') return 'must be a boolean';
      return `must be ${oneOf(issue.values)}`;
    case 'too_small':
      return sizeMessage('least', issue, issue.minimum);
    case 'too_big':
      if (issue.origin === 'int' && issue.maximum === Number.MAX_SAFE_INTEGER && !issue.exact)
        return `must be an integer from ${Number.MIN_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER}`;
      return sizeMessage('most', issue, issue.maximum);
    case 'invalid_format':
      switch (issue.format) {
        case 'regex':
          return issue.pattern ? `must match ${issue.pattern}` : undefined;
        case 'starts_with':
          return `must start with ${shown((issue as { prefix?: string }).prefix)}`;
        case 'ends_with':
          return `must end with ${shown((issue as { suffix?: string }).suffix)}`;
        case 'includes':
          return `must contain ${shown((issue as { includes?: string }).includes)}`;
        default: {
          const noun = FORMAT_NOUNS[issue.format];
          return noun ? `must be ${noun}` : `must be a valid ${issue.format}`;
        }
      }
    case 'not_multiple_of':
      return `must be a multiple of ${issue.divisor.toString()}`;
    case 'invalid_union': {
      if (issue.inclusive === false) return 'matches more than one allowed form';
      const options = (issue as { options?: unknown[] }).options;
      if (Array.isArray(options) && options.length > 0) return `must be ${oneOf(options)}`;
      if (issue.input === undefined) return 'is required';
      const nouns = issue.errors.map(branchNoun);
      if (nouns.length > 0 && nouns.every((noun) => noun !== undefined))
        return `must be ${[...new Set(nouns)].join(' or ')}`;
      return 'does not match any allowed form';
    }
    case 'invalid_key': {
      const why = issue.issues[0]?.message;
      return why ? `is not a valid key: ${why}` : 'is not a valid key';
    }
    case 'custom':
      return 'is not valid';
    default:
      return undefined;
  }
};

// Every zod parse in a service words its defaults this way, the ones validate() runs and the
// ones a service runs itself (a message body, a scraped sample). A schema's own messages and a
// parse's own error map still outrank it.
z.config({ customError: apiErrorMessage });
