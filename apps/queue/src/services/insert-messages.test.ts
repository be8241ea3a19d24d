import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { QueueDatabase } from '../queue.tables';
import { insertMessages } from './queue.queries';
import { uuidv7 } from './uuid-v7';

let database: TestDatabase<QueueDatabase>;

beforeAll(async () => {
  database = await createTestDatabase<QueueDatabase>();
});

afterAll(async () => {
  await database.drop();
});

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

async function stored(topic: string) {
  const { rows } = await database.pool.query<{ id: string; payload: unknown }>(
    'SELECT msg_uuid::text AS id, payload FROM queue_messages WHERE topic = $1 ORDER BY seq',
    [topic],
  );
  const [{ live }] = (
    await database.pool.query<{ live: string }>(
      'SELECT coalesce(sum(live), 0) AS live FROM queue_topic_counters WHERE topic = $1',
      [topic],
    )
  ).rows as [{ live: string }];
  return { rows, live: Number(live) };
}

describe('insertMessages', () => {
  it('stores a batch of ids it made up, in order, and counts it', async () => {
    const topic = `t-${randomUUID().slice(0, 8)}`;
    const ids = [uuidv7(), uuidv7(), uuidv7()];
    expect(
      await insertMessages(database.pool, topic, ids, [json('a'), json('b'), json('c')], null, true),
    ).toEqual({
      accepted: 3,
      path: 'new',
    });
    expect(await stored(topic)).toEqual({
      rows: ids.map((id, i) => ({ id, payload: ['a', 'b', 'c'][i] })),
      live: 3,
    });
  });

  it('falls back to de-duplicating when an id said to be new is already stored: nothing twice', async () => {
    const topic = `t-${randomUUID().slice(0, 8)}`;
    const taken = uuidv7();
    expect((await insertMessages(database.pool, topic, [taken], [json('first')], null, true)).accepted).toBe(
      1,
    );
    const fresh = uuidv7();
    expect(
      await insertMessages(database.pool, topic, [fresh, taken], [json('new'), json('again')], null, true),
    ).toEqual({ accepted: 1, path: 'new_then_dedup' });
    expect(await stored(topic)).toEqual({
      rows: [
        { id: taken, payload: 'first' },
        { id: fresh, payload: 'new' },
      ],
      live: 2,
    });
  });

  it('de-duplicates client ids, within the batch too, keeping the first', async () => {
    const topic = `t-${randomUUID().slice(0, 8)}`;
    const id = randomUUID();
    expect(await insertMessages(database.pool, topic, [id, id], [json(1), json(2)], null)).toEqual({
      accepted: 1,
      path: 'dedup',
    });
    expect((await insertMessages(database.pool, topic, [id], [json(3)], null)).accepted).toBe(0);
    expect(await stored(topic)).toEqual({ rows: [{ id, payload: 1 }], live: 1 });
  });
});

describe('payload storage', () => {
  it('compresses payloads with lz4 where the server has it, and keeps them byte for byte', async () => {
    const { rows } = await database.pool.query<{ lz4: boolean; compression: string }>(
      `SELECT 'lz4' = ANY ((SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression')::text[]) AS lz4,
              (SELECT attcompression::text FROM pg_attribute
               WHERE attrelid = 'queue_messages'::regclass AND attname = 'payload') AS compression`,
    );
    const [{ lz4, compression }] = rows as [{ lz4: boolean; compression: string }];
    expect(compression).toBe(lz4 ? 'l' : ''); // '' is the server's default (pglz)
    // A frame big enough to be compressed comes back as it went in.
    const topic = `t-${randomUUID().slice(0, 8)}`;
    const frame = { samples: Array.from({ length: 2_000 }, (_, i) => [i % 8, i % 40, 0, i * 0.5]) };
    await insertMessages(database.pool, topic, [uuidv7()], [json(frame)], null, true);
    const { rows: sizes } = await database.pool.query<{ stored: number; raw: number }>(
      `SELECT pg_column_size(payload) AS stored, octet_length(payload::text) AS raw FROM queue_messages WHERE topic = $1`,
      [topic],
    );
    expect(sizes[0]?.stored).toBeLessThan((sizes[0]?.raw ?? 0) / 2);
    expect((await stored(topic)).rows.map((r) => r.payload)).toEqual([frame]);
  });
});
