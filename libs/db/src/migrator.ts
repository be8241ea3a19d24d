import { promises as fs } from 'node:fs';
import path from 'node:path';
import {
  type Kysely,
  type Migration,
  type MigrationProvider,
  type MigrationResultSet,
  Migrator,
  sql,
} from 'kysely';

/** migrations/ at the repository root (and at /app/migrations in the image): src/ and dist/ sit two levels below libs/. */
export const DEFAULT_MIGRATIONS_DIR =
  process.env['MIGRATIONS_DIR'] ?? path.resolve(__dirname, '../../../migrations');

/** Migrations run on any database, before the tables they create exist. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDb = Kysely<any>;

const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;
const UP = /^--\s*migrate:up\s*$/m;
const DOWN = /^--\s*migrate:down\s*$/m;

/**
 * Reads plain SQL migrations: `NNNN_name.sql`, with a `-- migrate:up` section and an optional
 * `-- migrate:down` section. Each section runs as one multi-statement query.
 */
export class SqlFileMigrationProvider implements MigrationProvider {
  constructor(private readonly dir: string = DEFAULT_MIGRATIONS_DIR) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await fs.readdir(this.dir)).filter((file) => file.endsWith('.sql')).sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      if (!FILE_NAME.test(file))
        throw new Error(`${file}: migration files are named NNNN_snake_case_name.sql`);
      const { up, down } = splitSections(file, await fs.readFile(path.join(this.dir, file), 'utf8'));
      migrations[file.replace(/\.sql$/, '')] = {
        up: async (db) => void (await sql.raw(up).execute(db)),
        down: down === undefined ? undefined : async (db) => void (await sql.raw(down).execute(db)),
      };
    }
    return migrations;
  }
}

export function splitSections(file: string, text: string): { up: string; down?: string } {
  const upMatch = UP.exec(text);
  if (!upMatch) throw new Error(`${file}: missing a "-- migrate:up" line`);
  const afterUp = text.slice(upMatch.index + upMatch[0].length);
  const downMatch = DOWN.exec(afterUp);
  const up = (downMatch ? afterUp.slice(0, downMatch.index) : afterUp).trim();
  const down = downMatch ? afterUp.slice(downMatch.index + downMatch[0].length).trim() : undefined;
  if (!up) throw new Error(`${file}: the up section is empty`);
  return { up, down: down || undefined };
}

/**
 * One runner for every caller (CLI, Helm hook job, tests). Kysely holds a Postgres advisory lock
 * while it migrates, so replicas starting together apply each migration once, in one transaction.
 */
export function createMigrator(db: AnyDb, dir: string = DEFAULT_MIGRATIONS_DIR): Migrator {
  return new Migrator({
    db,
    provider: new SqlFileMigrationProvider(dir),
    migrationTableName: 'schema_migrations',
    migrationLockTableName: 'schema_migrations_lock',
  });
}

export interface MigrationOutcome {
  applied: string[];
  error?: unknown;
}

function outcome({ results, error }: MigrationResultSet): MigrationOutcome {
  const failed = results?.find((result) => result.status === 'Error');
  return {
    applied: (results ?? [])
      .filter((result) => result.status === 'Success')
      .map((result) => result.migrationName),
    error: error ?? (failed ? new Error(`migration ${failed.migrationName} failed`) : undefined),
  };
}

export async function migrateUp(db: AnyDb, dir?: string): Promise<MigrationOutcome> {
  return outcome(await createMigrator(db, dir).migrateToLatest());
}

export async function migrateDown(db: AnyDb, dir?: string): Promise<MigrationOutcome> {
  return outcome(await createMigrator(db, dir).migrateDown());
}

export async function migrationStatus(
  db: AnyDb,
  dir?: string,
): Promise<{ name: string; executedAt: Date | undefined }[]> {
  const migrations = await createMigrator(db, dir).getMigrations();
  return migrations.map(({ name, executedAt }) => ({ name, executedAt }));
}

/** Writes the next `NNNN_<name>.sql` with empty up and down sections; returns its path. */
export async function createMigrationFile(
  name: string,
  dir: string = DEFAULT_MIGRATIONS_DIR,
): Promise<string> {
  const slug = name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_|_$/g, '');
  if (!slug) throw new Error('give the migration a name, e.g. add_targets_table');
  await fs.mkdir(dir, { recursive: true });
  const numbers = (await fs.readdir(dir))
    .map((file) => FILE_NAME.exec(file)?.[1])
    .filter(Boolean)
    .map(Number);
  const next = String(Math.max(0, ...numbers) + 1).padStart(4, '0');
  const file = path.join(dir, `${next}_${slug}.sql`);
  await fs.writeFile(file, `-- migrate:up\n\n\n-- migrate:down\n\n`, { flag: 'wx' });
  return file;
}
