import type { Pool, PoolClient } from 'pg';
import { onConnection } from './cancel';

/**
 * Runs `run` in a transaction on one pooled connection: COMMIT when it resolves, ROLLBACK when it
 * throws (the error is rethrown as is, for the caller to translate). For code that talks to pg
 * directly; Kysely code uses `db.transaction().execute(...)`.
 */
export function withTransaction<T>(pool: Pool, run: (client: PoolClient) => Promise<T>): Promise<T> {
  // A connection whose ROLLBACK failed is in an unknown state: closed, not returned to the pool.
  return onConnection(pool, (client, broken) => inTransaction(client, run, broken));
}

/**
 * Runs `run` in a transaction on a connection the caller holds: COMMIT when it resolves, ROLLBACK
 * when it throws (its error rethrown as is). A ROLLBACK that fails leaves the connection in an
 * unknown state: `onBroken` is told, and the caller closes it rather than release it (a caller
 * that closes a connection after any failure need not listen).
 */
export async function inTransaction<T>(
  client: PoolClient,
  run: (client: PoolClient) => Promise<T>,
  onBroken: (rollbackError: Error) => void = () => undefined,
): Promise<T> {
  try {
    await client.query('BEGIN');
    const result = await run(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(onBroken);
    throw error;
  }
}
