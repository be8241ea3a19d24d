import { messageInput, publishBatchBody } from '@gpu-telemetry/model';
import { fieldErrors } from '@gpu-telemetry/service-kit';
import fc from 'fast-check';
import { MAX_NESTING, PublishRefused, readPublishBody } from './publish-body';

const limits = { maxMessages: 1000, maxPayloadBytes: 256 * 1024 };

type Outcome =
  | { ok: true; ids: (string | undefined)[]; payloads: unknown[] }
  | { ok: false; status: number; fields: string[] };

/** What the queue answered before it read bodies itself: JSON.parse, then the model's schema. */
function reference(text: string): Outcome {
  let body: unknown;
  try {
    body = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch {
    return { ok: false, status: 400, fields: ['body'] };
  }
  const batch = typeof body === 'object' && body !== null && 'messages' in body;
  const result = batch ? publishBatchBody.safeParse(body) : messageInput.safeParse(body);
  if (!result.success)
    return { ok: false, status: 400, fields: fieldErrors(result.error).map((e) => e.field) };
  const messages = 'messages' in result.data ? result.data.messages : [result.data];
  return { ok: true, ids: messages.map((m) => m.id), payloads: messages.map((m) => m.payload) };
}

function read(text: string, options = limits): Outcome & { texts?: string[] } {
  try {
    const { ids, payloads } = readPublishBody(Buffer.from(text), options);
    const texts = payloads.map((p) => p.toString('utf8'));
    return { ok: true, ids, payloads: texts.map((t) => JSON.parse(t)), texts };
  } catch (error) {
    if (!(error instanceof PublishRefused)) throw error;
    return { ok: false, status: error.status, fields: (error.errors ?? []).map((e) => e.field) };
  }
}

function refusal(text: string | Buffer, options = limits): PublishRefused {
  try {
    readPublishBody(Buffer.from(text), options);
  } catch (error) {
    if (error instanceof PublishRefused) return error;
    throw error;
  }
  throw new Error(`accepted ${text.slice(0, 80)}`);
}

/** JSON text of `value`, spaced and escaped the many ways a hand-written client might. */
function write(value: unknown, random: () => number): string {
  const space = () => ['', '', '', ' ', '\n  ', '\t', '\r\n'][Math.floor(random() * 7)] as string;
  // Sometimes escape an ordinary letter or digit: "pay\u006coad", "\u0030190a...".
  const text = (s: string) =>
    random() < 0.15
      ? JSON.stringify(s).replace(/[a-z0-9]/, (c) => `\\u00${c.charCodeAt(0).toString(16)}`)
      : JSON.stringify(s);
  if (Array.isArray(value))
    return `[${value.map((v) => space() + write(v, random) + space()).join(',') || space()}]`;
  if (typeof value === 'object' && value !== null) {
    const members = Object.entries(value).map(
      ([k, v]) => `${space()}${text(k)}${space()}:${space()}${write(v, random)}${space()}`,
    );
    return `{${members.join(',') || space()}}`;
  }
  if (typeof value === 'string') return text(value);
  return JSON.stringify(value);
}

const id = fc.oneof(
  { weight: 8, arbitrary: fc.uuid() },
  { weight: 4, arbitrary: fc.uuid().map((u) => u.toUpperCase()) },
  fc.constantFrom('42', '', 'not-a-uuid', '00000000-0000-4000-8000-00000000000g'),
  fc.integer(),
  fc.constant(null),
);
const message = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ id, payload: fc.jsonValue({ maxDepth: 3 }) }, { requiredKeys: ['payload'] }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ id, payload: fc.jsonValue(), extra: fc.jsonValue() }, { requiredKeys: [] }),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);
const body = fc.oneof(
  { weight: 5, arbitrary: fc.record({ messages: fc.array(message, { maxLength: 5 }) }) },
  { weight: 2, arbitrary: message },
  {
    weight: 1,
    arbitrary: fc.record(
      { messages: fc.jsonValue({ maxDepth: 2 }), extra: fc.jsonValue(), payload: fc.jsonValue(), id },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);
/** Sometimes break the text: drop, add or repeat a few characters. */
const mutation = fc.oneof(
  { weight: 2, arbitrary: fc.constant(null) },
  fc.tuple(
    fc.nat(),
    fc.constantFrom('', ',', '{', '}', '[', ']', ':', '"', '\\', ' ', '0', '-', 'e', '.', 'x', '\u0001'),
  ),
);

describe('readPublishBody (held to JSON.parse and the schema)', () => {
  it('accepts exactly what JSON.parse and the schema accept, with the same ids and payloads', () => {
    const seen = { accepted: 0, notJson: 0, wrongShape: 0 };
    fc.assert(
      fc.property(body, fc.integer(), mutation, (value, seed, change) => {
        let state = seed >>> 0;
        const random = () => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
        let text = (random() < 0.1 ? '\uFEFF' : '') + write(value, random);
        if (change) {
          const [at, insert] = change;
          const i = at % (text.length + 1);
          text = text.slice(0, i) + insert + text.slice(i + (random() < 0.5 ? 1 : 0));
        }
        text = Buffer.from(text).toString('utf8'); // as it travels: lone surrogates become U+FFFD
        const expected = reference(text);
        const actual = read(text);
        if (expected.ok) seen.accepted++;
        else if (expected.fields[0] === 'body' && expected.fields.length === 1) seen.notJson++;
        else seen.wrongShape++;
        expect(actual.ok).toBe(expected.ok);
        if (actual.ok && expected.ok) {
          expect(actual.ids).toEqual(expected.ids);
          expect(actual.payloads).toEqual(expected.payloads);
        } else if (!actual.ok && !expected.ok) {
          expect(actual.status).toBe(400);
          expect(expected.fields).toContain(actual.fields[0]);
        }
      }),
      { numRuns: 3_000 },
    );
    // Each kind of answer is well represented.
    expect(Math.min(seen.accepted, seen.notJson, seen.wrongShape)).toBeGreaterThan(300);
  });

  it('finds every payload exactly as written, through spacing, escapes and repeated keys', () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue({ maxDepth: 4 }), { minLength: 1, maxLength: 5 }),
        fc.integer(),
        (values, seed) => {
          let state = seed >>> 0;
          const random = () => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
          const payloads = values.map((v) => write(v, random));
          const messages = payloads.map((payload) => {
            const members = [`"payload" :${payload}`];
            if (random() < 0.5) members.unshift('"id":"0a1b2c3d-0000-4000-8000-000000000000"');
            // A key that JSON.parse reads as "payload" too, before the real one: the last one wins.
            if (random() < 0.3) members.unshift(`"pay\\u006coad":${write(values[0], random)}`);
            return `{ ${members.join(' , ')} }`;
          });
          const { texts } = read(`{"messages": [${messages.join(',')}]}`);
          expect(texts).toEqual(payloads);
        },
      ),
    );
  });

  it('finds the payload of a single message, wherever its key is', () => {
    expect(read('{ "id" : "0A1B2C3D-0000-4000-8000-000000000000", "payload" : { "a" : [1, "}"] } }')).toEqual(
      {
        ok: true,
        ids: ['0a1b2c3d-0000-4000-8000-000000000000'],
        payloads: [{ a: [1, '}'] }],
        texts: ['{ "a" : [1, "}"] }'],
      },
    );
  });

  it('refuses the 1001st message without reading it or anything after it', () => {
    const body = `{"messages":[${'{"payload":0},'.repeat(1000)}{"payload": this is never read`;
    const error = refusal(body);
    expect(error).toMatchObject({ status: 400, reason: 'too_many_messages' });
    expect(error.errors).toEqual([{ field: 'messages', message: 'must contain at most 1000 messages' }]);
    expect(read(`{"messages":[${Array(1000).fill('{"payload":0}').join(',')}]}`).ok).toBe(true);
  });

  it(`refuses a value nested more than ${MAX_NESTING} deep, naming it, without recursing`, () => {
    const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
    expect(read(`{"messages":[{"payload":${nested(MAX_NESTING)}}]}`).ok).toBe(true);
    expect(refusal(`{"messages":[{"payload":1},{"payload":${nested(MAX_NESTING + 1)}}]}`)).toMatchObject({
      status: 400,
      reason: 'too_deep',
      errors: [
        { field: 'messages[1].payload', message: `must not nest more than ${MAX_NESTING} levels deep` },
      ],
    });
    expect(refusal(`{"payload":1,"extra":${nested(MAX_NESTING + 1)}}`).errors?.[0]?.field).toBe('extra');
    // Ten million open brackets: no stack to overflow.
    expect(refusal(`{"payload":${'['.repeat(10_000_000)}`).reason).toBe('too_deep');
  });

  it('answers 413 naming each payload over the limit, after any 400', () => {
    const options = { maxMessages: 1000, maxPayloadBytes: 10 };
    const error = refusal(
      '{"messages":[{"payload":"0123456789"},{"payload":1},{"payload":[1,2,3,4,5]}]}',
      options,
    );
    expect(error).toMatchObject({ status: 413, reason: 'payload_too_large' });
    expect(error.errors?.map((e) => e.field)).toEqual(['messages[0].payload', 'messages[2].payload']);
    expect(refusal('{"payload":"0123456789"}', options).errors?.[0]?.field).toBe('payload');
    expect(refusal('{"messages":[{"payload":"0123456789"},{}]}', options).status).toBe(400);
    expect(read('{"payload":"01234567"}', options).ok).toBe(true);
  });

  it('lists at most 100 mistakes, and cuts long field names short', () => {
    const keys = Array.from({ length: 100_000 }, (_, i) => `"k${i}":0`).join(',');
    const error = refusal(`{"messages":[{"payload":1,${keys}}]}`);
    expect(error.errors).toHaveLength(100);
    expect(error.errors?.[0]).toEqual({ field: 'messages[0].k0', message: 'is not a known field' });
    const long = refusal(`{"payload":1,"${'x'.repeat(1_000_000)}":0}`);
    expect(long.errors?.[0]?.field).toBe(`${'x'.repeat(64)}…`);
  });

  it('refuses what is not UTF-8, not JSON, or not an object, naming the body', () => {
    expect(refusal(Buffer.from([0x7b, 0x22, 0x70, 0xff, 0x22, 0x3a, 0x31, 0x7d]))).toMatchObject({
      status: 400,
      reason: 'invalid_json',
      errors: [{ field: 'body', message: 'is not UTF-8 text' }],
    });
    for (const text of [
      '',
      ' ',
      '{"payload":1',
      '{"payload":1}}',
      '{"payload":01}',
      '{"payload":"a\tb"}',
      "{'payload':1}",
    ])
      expect(refusal(text)).toMatchObject({
        status: 400,
        reason: 'invalid_json',
        errors: [{ field: 'body' }],
      });
    expect(refusal('[{"payload":1}]')).toMatchObject({
      status: 400,
      reason: 'invalid_message',
      errors: [{ field: 'body' }],
    });
  });

  it('takes the last "messages" key, as JSON.parse does', () => {
    expect(read('{"messages":[{"bad":1}],"messages":[{"payload":2}]}')).toMatchObject({
      ok: true,
      payloads: [2],
    });
    expect(read('{"messages":[{"payload":2}],"messages":{}}')).toMatchObject({
      ok: false,
      fields: ['messages'],
    });
  });
});
