export { copyIn, copyText } from './copy';
export { createDb, isPgError, pingDatabase, type Db, type DbOptions, type NoTables } from './create-db';
export {
  createMigrationFile,
  createMigrator,
  DEFAULT_MIGRATIONS_DIR,
  migrateDown,
  migrateUp,
  migrationStatus,
  SqlFileMigrationProvider,
  type MigrationOutcome,
} from './migrator';
export {
  startEmbeddedPostgres,
  type EmbeddedPostgres,
  type EmbeddedPostgresOptions,
} from './embedded-postgres';
export { cancelOnAbort, cancelStatement, onConnection } from './cancel';
export { inTransaction, withTransaction } from './transaction';
