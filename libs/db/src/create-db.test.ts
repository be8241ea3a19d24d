import { createTestDatabase, type TestDatabase } from './testing';

/**
 * A connection that reports an error (Postgres restarting, a network cut) while it is checked out
 * and running nothing that could take it, as a COPY being detached can leave it, is told to the
 * logger instead of crashing the process; the pool goes on.
 */
let database: TestDatabase;
const warnings: { details: object; message: string }[] = [];

beforeAll(async () => {
  database = await createTestDatabase({
    max: 2,
    logger: { warn: (details, message) => warnings.push({ details, message }) },
  });
});

afterAll(async () => {
  await database.drop();
});

describe('createDb', () => {
  it('tells of an error on a checked-out connection instead of crashing, and goes on', async () => {
    const client = await database.pool.connect();
    const error = Object.assign(new Error('terminating connection due to administrator command'), {
      code: '57P01',
    });
    // An 'error' event with no listener throws: this is what used to end the streamer.
    expect(() => client.emit('error', error)).not.toThrow();
    client.release(true);
    expect(warnings).toEqual([
      {
        details: { error: 'terminating connection due to administrator command', code: '57P01' },
        message: 'database connection lost',
      },
    ]);
    const { rows } = await database.pool.query<{ one: number }>('SELECT 1 AS one');
    expect(rows[0]!.one).toBe(1);
  });
});
