import type { Pool } from 'pg';

/** Waits until at least `count` statements wait for a table lock (tests that hold one on purpose). */
export async function waitForLockWaiters(pool: Pool, count: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted AND locktype = 'relation'`,
    );
    if ((rows[0]?.n ?? 0) >= count) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`never saw ${count} waiting lock requests`);
}
