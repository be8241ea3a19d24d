import net from 'node:net';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { cancelOnAbort, cancelStatement } from './cancel';
import { isPgError } from './create-db';
import { createTestDatabase, type TestDatabase } from './testing';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase({ max: 2 });
  await database.pool.query('CREATE TABLE cancel_test (n int)');
});

afterAll(async () => {
  await database.drop();
});

/** How a statement ended: its result, or the SQLSTATE it failed with, and after how long. */
async function outcome(statement: Promise<unknown>): Promise<{ code: string; ms: number }> {
  const started = Date.now();
  const code = await statement.then(
    () => 'completed',
    (error: unknown) => (isPgError(error) ? error.code : String(error)),
  );
  return { code, ms: Date.now() - started };
}

describe('cancelStatement', () => {
  it('stops a running statement at once, and the backend answers again after', async () => {
    const client = await database.pool.connect();
    try {
      const sleeping = outcome(client.query('SELECT pg_sleep(60)'));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await cancelStatement(client)).toBe(true);
      const { code, ms } = await sleeping;
      expect(code).toBe('57014'); // query_canceled
      expect(ms).toBeLessThan(5_000);
      expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      client.release(true);
    }
  });

  it('stops a statement waiting on a lock while every pooled connection is in use', async () => {
    const holder = await database.pool.connect();
    const waiter = await database.pool.connect(); // the pool's second and last
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE cancel_test IN ACCESS EXCLUSIVE MODE');
      const waiting = outcome(waiter.query('INSERT INTO cancel_test VALUES (1)'));
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(database.pool.idleCount).toBe(0);
      expect(await cancelStatement(waiter)).toBe(true);
      expect((await waiting).code).toBe('57014');
      await holder.query('ROLLBACK');
      expect((await holder.query('SELECT count(*)::int AS n FROM cancel_test')).rows).toEqual([{ n: 0 }]);
    } finally {
      holder.release();
      waiter.release(true);
    }
  });

  it('resolves false, without throwing, when the server cannot be reached', async () => {
    const closed = await new Promise<number>((resolve) => {
      const server = net.createServer();
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as net.AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const unreachable = {
      processID: 1,
      secretKey: 2,
      host: '127.0.0.1',
      port: closed,
    } as unknown as PoolClient;
    expect(await cancelStatement(unreachable)).toBe(false);
    const keyless = {
      processID: null,
      secretKey: null,
      host: '127.0.0.1',
      port: closed,
    } as unknown as PoolClient;
    expect(await cancelStatement(keyless)).toBe(false);
  });
});

describe('cancelOnAbort', () => {
  it('cancels the running statement when the signal aborts, and tells whether it sent the request', async () => {
    const client = await database.pool.connect();
    const controller = new AbortController();
    const told: boolean[] = [];
    const stop = cancelOnAbort(client, controller.signal, (sent) => told.push(sent));
    try {
      const sleeping = outcome(client.query('SELECT pg_sleep(60)'));
      setTimeout(() => controller.abort(), 200);
      expect((await sleeping).code).toBe('57014');
      // Told once the request's connection has closed, which may come after the statement ends.
      for (let waited = 0; told.length === 0 && waited < 5_000; waited += 20)
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(told).toEqual([true]);
    } finally {
      stop();
      client.release(true);
    }
  });

  it('cancels at once for a signal already aborted, and not at all once stopped', async () => {
    const client = await database.pool.connect();
    try {
      const aborted = AbortSignal.abort();
      const sleeping = outcome(client.query('SELECT pg_sleep(60)'));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const stopAborted = cancelOnAbort(client, aborted);
      expect((await sleeping).code).toBe('57014');
      stopAborted();

      const controller = new AbortController();
      const stop = cancelOnAbort(client, controller.signal);
      stop();
      const short = outcome(client.query('SELECT pg_sleep(0.5)'));
      controller.abort();
      expect((await short).code).toBe('completed');
    } finally {
      client.release(true);
    }
  });

  it('refuses a statement started after the abort, which a cancel sent while the connection was idle cannot reach', async () => {
    const client = await database.pool.connect();
    try {
      const controller = new AbortController();
      const stop = cancelOnAbort(client, controller.signal);
      expect((await outcome(client.query('SELECT 1'))).code).toBe('completed');
      controller.abort(new Error('handling ran past 10s'));
      // Idle when the cancel came: the next statement is refused here, never sent.
      await expect(client.query('SELECT pg_sleep(60)')).rejects.toThrow('handling ran past 10s');
      await expect(client.query('SELECT 1')).rejects.toThrow('handling ran past 10s');
      // A COPY's stream is refused as it is asked for.
      expect(() => client.query(copyFrom('COPY pg_temp.none FROM STDIN'))).toThrow('handling ran past 10s');
      stop();
      // Stopped: the connection's statements run as before.
      expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      client.release(true);
    }
  });
});
