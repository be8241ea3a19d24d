import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { createDb } from './create-db';
import { createMigrationFile, migrateDown, migrateUp, migrationStatus, splitSections } from './migrator';
import { createTestDatabase, type TestDatabase } from './testing';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database.drop();
});

async function tables(): Promise<string[]> {
  const { rows } = await sql<{ tablename: string }>`
    SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'schema_migrations%' ORDER BY 1
  `.execute(database.db);
  return rows.map((row) => row.tablename);
}

describe('migrations', () => {
  it('are all applied to a test database, and up again is a no-op', async () => {
    const status = await migrationStatus(database.db);
    expect(status.length).toBeGreaterThan(0);
    expect(status.every((m) => m.executedAt instanceof Date)).toBe(true);
    expect(await migrateUp(database.db)).toEqual({ applied: [], error: undefined });
  });

  it('go down one at a time, in reverse, and back up to the same schema', async () => {
    const before = await tables();
    const names = (await migrationStatus(database.db)).map((m) => m.name);
    for (const name of [...names].reverse()) {
      expect(await migrateDown(database.db)).toEqual({ applied: [name], error: undefined });
    }
    expect(await tables()).toEqual([]);
    expect((await migrateUp(database.db)).applied).toEqual(names);
    expect(await tables()).toEqual(before);
  });

  it('apply once when several replicas migrate at the same moment', async () => {
    const names = (await migrationStatus(database.db)).map((m) => m.name);
    for (let i = 0; i < names.length; i++) await migrateDown(database.db);
    const replicas = Array.from({ length: 4 }, () => createDb(database.url, { max: 1 }));
    try {
      const outcomes = await Promise.all(replicas.map((replica) => migrateUp(replica.db)));
      expect(outcomes.every((o) => o.error === undefined)).toBe(true);
      expect(outcomes.flatMap((o) => o.applied).sort()).toEqual([...names].sort());
    } finally {
      await Promise.all(replicas.map((replica) => replica.close()));
    }
  });
});

describe('migration files', () => {
  it('split into up and down sections', () => {
    expect(
      splitSections('x.sql', '-- migrate:up\nCREATE TABLE a();\n-- migrate:down\nDROP TABLE a;\n'),
    ).toEqual({
      up: 'CREATE TABLE a();',
      down: 'DROP TABLE a;',
    });
    expect(splitSections('x.sql', '-- migrate:up\nSELECT 1;')).toEqual({ up: 'SELECT 1;', down: undefined });
    expect(() => splitSections('x.sql', 'SELECT 1;')).toThrow(/missing a "-- migrate:up" line/);
  });

  it('are created with the next number and a slug of the name', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'migrations-'));
    writeFileSync(path.join(dir, '0007_existing.sql'), '-- migrate:up\nSELECT 1;\n');
    const file = await createMigrationFile('Add GPU targets!', dir);
    try {
      expect(path.basename(file)).toBe('0008_add_gpu_targets.sql');
      expect(readFileSync(file, 'utf8')).toContain('-- migrate:down');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
