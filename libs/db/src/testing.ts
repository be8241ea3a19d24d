import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { createDb, type Db, type DbOptions, type NoTables } from './create-db';
import { startEmbeddedPostgres } from './embedded-postgres';
import { migrateUp } from './migrator';

/**
 * Test databases: one migrated template per test run, and a fresh clone of it per test file
 * (CREATE DATABASE ... TEMPLATE takes milliseconds, migrations do not). Real Postgres, never a mock.
 */
const ADMIN_URL_VAR = 'GPU_TELEMETRY_TEST_ADMIN_URL';
const TEMPLATE_VAR = 'GPU_TELEMETRY_TEST_TEMPLATE';

export interface TestCluster {
  adminUrl: string;
  template: string;
  stop(): Promise<void>;
}

/**
 * Starts a throwaway embedded Postgres (or uses TEST_DATABASE_URL / DATABASE_URL when set), builds
 * the migrated template, and publishes both through the environment to test workers.
 */
export async function setupTestCluster(): Promise<TestCluster> {
  const external = process.env['TEST_DATABASE_URL'] ?? process.env['DATABASE_URL'];
  let adminUrl: string;
  let stopServer = async () => undefined;
  if (external) {
    adminUrl = external;
  } else {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gpu-telemetry-test-pg-'));
    const server = await startEmbeddedPostgres({ dataDir, persistent: false, unsafeFast: true });
    adminUrl = server.adminUrl;
    stopServer = async () => {
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    };
  }
  const runId = randomBytes(4).toString('hex');
  const template = `gt_template_${runId}`;
  await admin(adminUrl, `CREATE DATABASE ${template}`);
  const templateDb = createDb(withDatabase(adminUrl, template), { max: 1 });
  try {
    const { error } = await migrateUp(templateDb.db);
    if (error) throw error;
  } finally {
    await templateDb.close();
  }
  process.env[ADMIN_URL_VAR] = adminUrl;
  process.env[TEMPLATE_VAR] = template;
  return {
    adminUrl,
    template,
    stop: async () => {
      // Drop what this run created (clones are named after the template), then the server.
      const client = new Client({ connectionString: adminUrl });
      await client.connect();
      try {
        const { rows } = await client.query<{ datname: string }>(
          `SELECT datname FROM pg_database WHERE datname LIKE $1`,
          [`gt_%_${runId}%`],
        );
        for (const { datname } of rows)
          await client.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
      await stopServer();
    },
  };
}

export interface TestDatabase<DB = NoTables> extends Db<DB> {
  url: string;
  name: string;
  /** Closes the pool and drops the database. */
  drop(): Promise<void>;
}

let clones = 0;

/** A fresh, migrated database for one test file. Call `drop()` in afterAll. */
export function createTestDatabase<DB = NoTables>(options: DbOptions = {}): Promise<TestDatabase<DB>> {
  return newTestDatabase<DB>(true, options);
}

/** A fresh database with no schema, for tests that run the migrations themselves. Call `drop()`. */
export function createEmptyTestDatabase<DB = NoTables>(options: DbOptions = {}): Promise<TestDatabase<DB>> {
  return newTestDatabase<DB>(false, options);
}

async function newTestDatabase<DB>(migrated: boolean, options: DbOptions): Promise<TestDatabase<DB>> {
  const adminUrl = process.env[ADMIN_URL_VAR];
  const template = process.env[TEMPLATE_VAR];
  if (!adminUrl || !template) {
    throw new Error('No test cluster: run tests through jest, whose global setup starts Postgres.');
  }
  // Named after the template, so the cluster's teardown drops whatever a failed test left behind;
  // unique even when a test file in the same worker failed to drop its own.
  const name = `gt_test_${template.slice('gt_template_'.length)}_${process.pid}_${++clones}_${randomBytes(3).toString('hex')}`;
  await admin(adminUrl, `CREATE DATABASE ${name}${migrated ? ` TEMPLATE ${template}` : ''}`);
  const url = withDatabase(adminUrl, name);
  const db = createDb<DB>(url, { max: 5, ...options });
  return {
    ...db,
    url,
    name,
    drop: async () => {
      await db.close();
      await admin(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

/** The same server and credentials, another database. */
export function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function admin(url: string, statement: string): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(statement);
  } finally {
    await client.end();
  }
}
