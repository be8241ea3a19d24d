/**
 * migrate up | down | status | create <name>
 * Applies plain SQL migrations from migrations/ to DATABASE_URL. Used by `npm run migrate:*`,
 * `npm start`, the compose migrate service and the Helm pre-install/pre-upgrade hook job.
 */
import { ConfigError, readSetting } from '@gpu-telemetry/config';
import { createDb } from '../create-db';
import { createMigrationFile, migrateDown, migrateUp, migrationStatus } from '../migrator';
import { connectionProblem } from './connection-problem';

async function main(argv: string[]): Promise<number> {
  const [command = 'up', ...rest] = argv;
  if (command === 'create') {
    const file = await createMigrationFile(rest.join(' '));
    console.log(`created ${file}`);
    return 0;
  }
  // DATABASE_URL, or the file DATABASE_URL_FILE names (a mounted secret), as the services read it.
  const url = readSetting('DATABASE_URL');
  if (!url) {
    console.error(
      'DATABASE_URL (or DATABASE_URL_FILE) is required (or run `npm start`, which starts an embedded Postgres).',
    );
    return 1;
  }
  const { db, close } = createDb(url, { max: 1, applicationName: 'migrate' });
  try {
    switch (command) {
      case 'up':
      case 'down': {
        const { applied, error } = command === 'up' ? await migrateUp(db) : await migrateDown(db);
        for (const name of applied) console.log(`${command === 'up' ? 'applied' : 'reverted'} ${name}`);
        if (error) {
          console.error(
            connectionProblem(error, url) ??
              `migration failed: ${error instanceof Error ? error.message : String(error)}`,
          );
          return 1;
        }
        if (applied.length === 0) console.log(command === 'up' ? 'already up to date' : 'nothing to revert');
        return 0;
      }
      case 'status': {
        for (const { name, executedAt } of await migrationStatus(db)) {
          console.log(`${executedAt ? executedAt.toISOString() : 'pending                 '}  ${name}`);
        }
        return 0;
      }
      default:
        console.error(`unknown command "${command}": use up, down, status or create <name>`);
        return 2;
    }
  } catch (error) {
    // A database that cannot be reached says which, and how to start one; anything else as it is.
    const problem = connectionProblem(error, url);
    if (!problem) throw error;
    console.error(problem);
    return 1;
  } finally {
    await close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    // A setting that cannot be read says which, in the words the services use, on one line each.
    if (error instanceof ConfigError) console.error(error.problems.join('\n'));
    else console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
