import { fastPublishBatch, MAX_BATCH, publishBatchBody } from './index';

const ID = '0190a1b2-c3d4-7e5f-8a6b-0c1d2e3f4a5b';

// Message shapes the schema accepts or refuses: the fast path must never accept one it refuses,
// and what it accepts must be what the schema would return.
const messages: unknown[] = [
  { payload: 1 },
  { payload: null },
  { payload: { nested: [1, 'two'] } },
  { id: ID, payload: 'x' },
  { id: ID.toUpperCase(), payload: 'x' },
  { id: 'not-a-uuid', payload: 'x' },
  { id: 42, payload: 'x' },
  { id: null, payload: 'x' },
  { id: ID },
  {},
  { payload: 1, extra: true },
  { payload: undefined },
  [{ payload: 1 }],
  'payload',
  null,
  7,
];

const bodies: unknown[] = [
  ...messages.map((message) => ({ messages: [message] })),
  ...messages.map((message) => ({ messages: [{ payload: 'first' }, message] })),
  { messages: [] },
  { messages: Array.from({ length: MAX_BATCH }, (_, i) => ({ payload: i })) },
  { messages: Array.from({ length: MAX_BATCH + 1 }, (_, i) => ({ payload: i })) },
  { messages: [{ payload: 1 }], extra: 1 },
  { messages: { 0: { payload: 1 } } },
  { messages: null },
  {},
  [],
  null,
  'messages',
];

describe('fastPublishBatch (the publish fast path)', () => {
  it.each(bodies.map((body) => [JSON.stringify(body)?.slice(0, 80), body]))(
    'never accepts what the schema refuses, and returns what it would: %s',
    (_name, body) => {
      const schema = publishBatchBody.safeParse(body);
      const fast = fastPublishBatch(body);
      if (fast) {
        expect(schema.success).toBe(true);
        expect(fast).toEqual(schema.data?.messages);
      }
    },
  );

  it('takes the batches clients send, so the schema is only asked about bad ones', () => {
    const batch = JSON.parse(
      JSON.stringify({
        messages: [{ payload: { gpu: 0 } }, { id: ID, payload: [1, 2] }, { payload: 'text' }],
      }),
    );
    expect(fastPublishBatch(batch)).toEqual(publishBatchBody.parse(batch).messages);
  });

  it('agrees with the schema on random batches', () => {
    let seed = 11;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    let fast = 0;
    for (let n = 0; n < 1_000; n++) {
      const batch = {
        messages: Array.from({ length: 1 + Math.floor(random() * 4) }, () =>
          random() < 0.8 ? { payload: n } : messages[Math.floor(random() * messages.length)],
        ),
      };
      const accepted = fastPublishBatch(batch);
      const schema = publishBatchBody.safeParse(batch);
      if (accepted) {
        fast++;
        expect(schema.success).toBe(true);
        expect(accepted).toEqual(schema.data?.messages);
      }
    }
    expect(fast).toBeGreaterThan(200);
  });
});
