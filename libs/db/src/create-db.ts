import { Kysely, PostgresDialect } from 'kysely';
import { Pool, type PoolConfig } from 'pg';

/** A database whose tables the caller has not named: give createDb the app's own table types. */
export type NoTables = Record<string, never>;

export interface DbOptions {
  /** Most connections this process opens. */
  max?: number;
  /** Shows in pg_stat_activity, so an operator can tell which service holds a connection. */
  applicationName?: string;
  /**
   * Told when a pooled connection dies (Postgres restart, network cut): idle, the pool replaces it;
   * in use, whatever it was running fails.
   */
  logger?: { warn(details: object, message: string): void };
  pool?: Omit<PoolConfig, 'connectionString' | 'max' | 'application_name'>;
}

/** A pool and a Kysely over it, typed by the tables of the app that owns them. */
export interface Db<DB = NoTables> {
  db: Kysely<DB>;
  pool: Pool;
  close(): Promise<void>;
}

export function createDb<DB = NoTables>(url: string, options: DbOptions = {}): Db<DB> {
  const pool = new Pool({
    connectionString: url,
    max: options.max ?? 10,
    application_name: options.applicationName,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    // A connection whose server vanished without a word (a failover moving its address, a NAT
    // forgetting it) is found by TCP keepalive probes, not by the query waiting on it: from 10 s of
    // silence instead of the kernel's default 2 hours. Node sends the probes 1 s apart and gives
    // up after 10 unanswered: the query fails about 20 s in, and the pool replaces the connection.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
    ...options.pool,
  });
  // Without a listener, a connection's error (e.g. Postgres restarting) crashes the process: the
  // pool listens on idle ones, and each connection listens on itself for while it is in use (a
  // COPY being read when the server goes away reports there, not to the COPY).
  pool.on('error', () => undefined); // told by the connection's own listener below
  pool.on('connect', (client) => {
    client.on('error', (error) =>
      options.logger?.warn(
        { error: error.message, code: (error as { code?: string }).code },
        'database connection lost',
      ),
    );
  });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  let closed: Promise<void> | undefined;
  return {
    db,
    pool,
    close: () => (closed ??= db.destroy()),
  };
}

/** Readiness probe: a round trip within `timeoutMs`. */
export async function pingDatabase(pool: Pool, timeoutMs = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([pool.query('SELECT 1'), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** True when `error` came from Postgres with the given SQLSTATE (e.g. '23505' unique violation). */
export function isPgError(error: unknown, code?: string): error is Error & { code: string } {
  if (!(error instanceof Error) || typeof (error as { code?: unknown }).code !== 'string') return false;
  const sqlstate = (error as unknown as { code: string }).code;
  return /^[0-9A-Z]{5}$/.test(sqlstate) && (code === undefined || sqlstate === code);
}
