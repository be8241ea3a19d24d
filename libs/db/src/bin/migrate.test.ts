import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '../testing';

/**
 * The migrate command line as `npm run migrate:*`, the image and the chart's hook job run it: the
 * built libs/db/dist/bin/migrate.js, with only the environment each test gives it.
 */
const root = path.resolve(__dirname, '../../../..');
let database: TestDatabase;
let dir: string;

beforeAll(async () => {
  const built = spawnSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-b', 'libs/db/tsconfig.lib.json'],
    { cwd: root, stdio: 'inherit' },
  );
  if (built.status !== 0) throw new Error('build failed');
  database = await createTestDatabase();
  dir = mkdtempSync(path.join(tmpdir(), 'migrate-cli-'));
}, 120_000);

afterAll(async () => {
  await database.drop();
  rmSync(dir, { recursive: true, force: true });
});

function migrate(args: string[], env: Record<string, string>) {
  const run = spawnSync(process.execPath, [path.join(root, 'libs/db/dist/bin/migrate.js'), ...args], {
    cwd: root,
    env: { PATH: process.env['PATH'] ?? '', ...env },
    encoding: 'utf8',
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('migrate', () => {
  it('tells how to get a database when neither DATABASE_URL nor DATABASE_URL_FILE is set', () => {
    expect(migrate(['up'], { DATABASE_URL: '' })).toEqual({
      status: 1,
      stdout: '',
      stderr:
        'DATABASE_URL (or DATABASE_URL_FILE) is required (or run `npm start`, which starts an embedded Postgres).\n',
    });
  });

  it('reads the URL from the file DATABASE_URL_FILE names, trailing newline and all', () => {
    const secret = path.join(dir, 'database-url');
    writeFileSync(secret, `${database.url}\n`);
    expect(migrate(['up'], { DATABASE_URL_FILE: secret })).toEqual({
      status: 0,
      stdout: 'already up to date\n',
      stderr: '',
    });
  });

  it('says, as the services do, that DATABASE_URL_FILE cannot be read', () => {
    const missing = path.join(dir, 'absent');
    expect(migrate(['status'], { DATABASE_URL_FILE: missing })).toEqual({
      status: 1,
      stdout: '',
      stderr: `DATABASE_URL_FILE cannot be read (ENOENT: ${missing})\n`,
    });
  });

  it('refuses DATABASE_URL and DATABASE_URL_FILE both set, as the services do', () => {
    expect(
      migrate(['up'], { DATABASE_URL: database.url, DATABASE_URL_FILE: path.join(dir, 'absent') }),
    ).toEqual({
      status: 1,
      stdout: '',
      stderr: 'DATABASE_URL and DATABASE_URL_FILE are both set; set one\n',
    });
  });
});
