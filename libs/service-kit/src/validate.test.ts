import { ValidationError } from '@gpu-telemetry/model';
import { z } from 'zod';
import { fieldErrors } from './problem';
import { validate, validateQuery } from './validate';

/** The field errors validate() throws for `input`, as `[field, message]` pairs. */
function refusal(schema: z.ZodType, input: unknown, parse = validate): [string, string][] {
  try {
    parse(schema, input);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).errors!.map((e) => [e.field, e.message]);
  }
  throw new Error('expected a ValidationError');
}

describe("zod's default messages, in the API's words", () => {
  it.each([
    ['a missing field', z.object({ consumer: z.string() }), {}, 'consumer', 'is required'],
    ['a string', z.object({ name: z.string() }), { name: 1 }, 'name', 'must be a string'],
    ['a null string', z.object({ name: z.string() }), { name: null }, 'name', 'must be a string'],
    ['a number', z.object({ size: z.number() }), { size: '1' }, 'size', 'must be a number'],
    ['an integer', z.object({ size: z.number().int() }), { size: 1.5 }, 'size', 'must be an integer'],
    ['an integer (z.int)', z.object({ size: z.int() }), { size: 'x' }, 'size', 'must be a number'],
    ['a boolean', z.object({ on: z.boolean() }), { on: 'yes' }, 'on', 'must be a boolean'],
    ['an array', z.object({ ids: z.array(z.string()) }), { ids: 'a' }, 'ids', 'must be an array'],
    ['an object', z.object({ labels: z.object({}) }), { labels: [] }, 'labels', 'must be an object'],
    [
      'a record',
      z.object({ labels: z.record(z.string(), z.string()) }),
      { labels: 1 },
      'labels',
      'must be an object',
    ],
    ['an item', z.object({ ids: z.array(z.string()) }), { ids: ['a', 2] }, 'ids[1]', 'must be a string'],
    ['a whole body', z.object({ a: z.string() }), 'text', 'body', 'must be an object'],
  ])('words %s', (_, schema, input, field, message) => {
    expect(refusal(schema, input)).toEqual([[field, message]]);
  });

  it('says a query value that is not a number must be a number, not that it received NaN', () => {
    const query = z.object({
      limit: z.coerce.number().int(),
      after: z.coerce.number(),
      consumer: z.string(),
    });
    expect(refusal(query, { limit: 'ten', after: 'Infinity' }, validateQuery)).toEqual([
      ['limit', 'must be a number'],
      ['after', 'must be a finite number'],
      ['consumer', 'is required'],
    ]);
    expect(refusal(query, { limit: '2.5', after: '0', consumer: 'c' }, validateQuery)).toEqual([
      ['limit', 'must be an integer'],
    ]);
    // A value given twice still says so.
    expect(refusal(query, { limit: ['1', '2'], after: '0', consumer: 'c' }, validateQuery)).toEqual([
      ['limit', 'must be given once, not 2 times'],
    ]);
  });

  it.each([
    ['an empty string', z.string().min(1), '', 'must not be empty'],
    ['a short string', z.string().min(3), 'ab', 'must be at least 3 characters'],
    ['a long string', z.string().max(2), 'abc', 'must be at most 2 characters'],
    ['an empty list', z.array(z.string()).min(1), [], 'must not be empty'],
    ['a long list', z.array(z.string()).max(1), ['a', 'b'], 'must have at most 1 item'],
    ['a small number', z.number().min(1), 0, 'must be at least 1'],
    ['a number not positive', z.number().positive(), 0, 'must be greater than 0'],
    ['a big number', z.number().max(100), 101, 'must be at most 100'],
    ['a number below', z.number().lt(10), 10, 'must be less than 10'],
    ['an unsafe integer', z.int(), 2 ** 60, 'must be an integer from -9007199254740991 to 9007199254740991'],
    ['an option', z.enum(['a', 'b']), 'c', 'must be one of "a", "b"'],
    ['a literal', z.literal('a'), 'b', 'must be "a"'],
    ['a UUID', z.uuid(), 'x', 'must be a UUID'],
    ['a URL', z.url(), 'x', 'must be a URL'],
    ['a date-time', z.iso.datetime(), 'x', 'must be an RFC 3339 date-time'],
    ['a pattern', z.string().regex(/^[a-z]+$/), 'A', 'must match /^[a-z]+$/'],
    ['a multiple', z.number().multipleOf(5), 7, 'must be a multiple of 5'],
    [
      'a union of types',
      z.union([z.number(), z.enum(['NaN', '+Inf'])]),
      true,
      'must be a number or one of "NaN", "+Inf"',
    ],
    [
      'a union of shapes',
      z.union([z.object({ a: z.string() }), z.object({ b: z.string() })]),
      {},
      'does not match any allowed form',
    ],
    ['a refinement', z.string().refine(() => false), 'x', 'is not valid'],
  ])('words %s', (_, schema, value, message) => {
    expect(refusal(z.object({ v: schema }), { v: value })).toEqual([['v', message]]);
  });

  it("words a record's key by what the key schema says of it", () => {
    const labels = z.object({ labels: z.record(z.string().regex(/^[a-z]+$/), z.string()) });
    expect(refusal(labels, { labels: { Bad: 'v' } })).toEqual([
      ['labels.Bad', 'is not a valid key: must match /^[a-z]+$/'],
    ]);
  });

  it('names the discriminator a union of kinds is told apart by', () => {
    const kinds = z.discriminatedUnion('kind', [
      z.object({ kind: z.literal('counter') }),
      z.object({ kind: z.literal('gauge') }),
    ]);
    expect(refusal(kinds, { kind: 'histogram' })).toEqual([['kind', 'must be one of "counter", "gauge"']]);
  });

  it('keeps the messages a schema sets itself, whichever way it sets them', () => {
    const schema = z.object({
      a: z.string({ error: 'must be a node name' }),
      b: z.string().min(1, 'must name a topic'),
      c: z.number({ message: 'must be the size in bytes' }),
      d: z.enum(['x', 'y'], { message: 'must be x or y' }),
      e: z.string().refine(() => false, 'must be a valid metric name'),
      f: z.string({ error: (issue) => (issue.input === undefined ? 'is needed here' : undefined) }),
    });
    expect(refusal(schema, { a: 1, b: '', c: 'big', d: 'z', e: 'x' })).toEqual([
      ['a', 'must be a node name'],
      ['b', 'must name a topic'],
      ['c', 'must be the size in bytes'],
      ['d', 'must be x or y'],
      ['e', 'must be a valid metric name'],
      ['f', 'is needed here'],
    ]);
  });

  it('words the parses a service runs itself the same way, for fieldErrors to list', () => {
    const sample = z.object({ gpu: z.string(), value: z.number() });
    const result = sample.safeParse({ value: 'hot' });
    expect(result.success).toBe(false);
    expect(fieldErrors(result.error!, ['samples', 0])).toEqual([
      { field: 'samples[0].gpu', message: 'is required' },
      { field: 'samples[0].value', message: 'must be a number' },
    ]);
  });
});
