/**
 * Runs the embedded PostgreSQL in the foreground (Ctrl-C stops it) and prints its DATABASE_URL.
 * Data lives in .data/postgres (git-ignored), so it survives restarts; as root, in a checkout the
 * `postgres` user cannot enter, it lives under /var/tmp/gpu-telemetry instead (said on stderr).
 */
import path from 'node:path';
import { startEmbeddedPostgres } from '../embedded-postgres';

async function main(): Promise<void> {
  const dataDir = path.resolve(process.env['EMBEDDED_PG_DIR'] ?? '.data/postgres');
  const port = Number(process.env['EMBEDDED_PG_PORT'] ?? 54329);
  const pg = await startEmbeddedPostgres({ dataDir, port, persistent: true });
  if (pg.dataDir !== dataDir) {
    console.error(
      `PostgreSQL runs as user postgres, who cannot enter ${path.dirname(dataDir)}: ` +
        `its data lives in ${pg.dataDir} instead of ${dataDir}.`,
    );
  }
  console.log(`PostgreSQL is up (data in ${pg.dataDir}). Use:\n\n  export DATABASE_URL=${pg.url}\n`);
  const stop = async () => {
    await pg.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
