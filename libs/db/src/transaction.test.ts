import { createTestDatabase, type TestDatabase } from './testing';
import { withTransaction } from './transaction';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase({ max: 2 });
  await database.pool.query('CREATE TABLE tx_test (n int NOT NULL)');
});

afterAll(async () => {
  await database.drop();
});

async function rows(): Promise<number[]> {
  const { rows } = await database.pool.query<{ n: number }>('SELECT n FROM tx_test ORDER BY n');
  return rows.map((row) => row.n);
}

describe('withTransaction', () => {
  beforeEach(() => database.pool.query('TRUNCATE tx_test'));

  it('commits what the callback wrote and returns its result', async () => {
    const result = await withTransaction(database.pool, async (client) => {
      await client.query('INSERT INTO tx_test VALUES (1), (2)');
      return 'done';
    });
    expect(result).toBe('done');
    expect(await rows()).toEqual([1, 2]);
  });

  it('rolls back everything the callback wrote when it throws, and rethrows its error', async () => {
    const refusal = new Error('not all of them');
    await expect(
      withTransaction(database.pool, async (client) => {
        await client.query('INSERT INTO tx_test VALUES (1)');
        throw refusal;
      }),
    ).rejects.toBe(refusal);
    expect(await rows()).toEqual([]);
  });

  it('rolls back on a failing statement and leaves the connection usable', async () => {
    await expect(
      withTransaction(database.pool, async (client) => {
        await client.query('INSERT INTO tx_test VALUES (1)');
        await client.query('INSERT INTO tx_test VALUES (NULL)');
      }),
    ).rejects.toMatchObject({ code: '23502' });
    // Every pooled connection is back, idle and outside any transaction.
    const [a, b] = await Promise.all([database.pool.connect(), database.pool.connect()]);
    try {
      for (const client of [a, b]) {
        const { rows: state } = await client.query<{ in_tx: boolean }>(
          `SELECT now() <> statement_timestamp() AS in_tx`,
        );
        expect(state[0]?.in_tx).toBe(false);
      }
    } finally {
      a.release();
      b.release();
    }
    expect(await rows()).toEqual([]);
  });
});
