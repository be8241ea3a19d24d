// Shared pieces of the benchmarks: a throwaway durable Postgres, child services, CPU meters; the
// process, waiting and table helpers come from @gpu-telemetry/harness (re-exported for the benches).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, startProcess } from '@gpu-telemetry/harness';
import pg from 'pg';

export { fmt, percentile, printTable, sleep } from '@gpu-telemetry/harness';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const require = createRequire(import.meta.url);
const dbLib = require(path.join(root, 'libs/db/dist/index.js'));
const dbTesting = require(path.join(root, 'libs/db/dist/testing.js'));

/**
 * A fresh PostgreSQL with default (durable) settings, so figures mean what they would in
 * production; or BENCH_DATABASE_URL when given. Returns helpers to make databases on it.
 */
export async function startPostgres() {
  if (process.env.BENCH_DATABASE_URL)
    return postgresAt(process.env.BENCH_DATABASE_URL, async () => undefined);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'gpu-telemetry-bench-pg-'));
  const server = await dbLib.startEmbeddedPostgres({ dataDir, persistent: false });
  return postgresAt(server.adminUrl, async () => {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
}

/** The helpers a benchmark gets for the server behind `adminUrl`. */
function postgresAt(adminUrl, stop) {
  return {
    adminUrl,
    createDatabase: (name, migrate) => createDatabase(adminUrl, name, migrate),
    dropDatabase: (name) => dropDatabase(adminUrl, name),
    quiesce: () => quiesce(adminUrl),
    stop,
  };
}

async function adminQuery(adminUrl, sql) {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    return (await admin.query(sql)).rows;
  } finally {
    await admin.end();
  }
}

/**
 * Lets Postgres settle before a timed phase, so no contender pays for the garbage an earlier one
 * left: a checkpoint (dirty pages written now, not during the phase), then up to 30 s for running
 * autovacuum workers to finish.
 */
async function quiesce(adminUrl) {
  await adminQuery(adminUrl, 'CHECKPOINT');
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const [{ busy }] = await adminQuery(
      adminUrl,
      `SELECT count(*)::int AS busy FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'`,
    );
    if (busy === 0) return;
    await sleep(200);
  }
}

const dropDatabase = (adminUrl, name) => adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);

async function createDatabase(adminUrl, name, migrate) {
  await dropDatabase(adminUrl, name);
  await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
  const url = dbTesting.withDatabase(adminUrl, name);
  if (migrate) {
    const { db, close } = dbLib.createDb(url, { max: 1 });
    const { error } = await dbLib.migrateUp(db);
    await close();
    if (error) throw error;
  }
  return url;
}

/** The service credential every benchmarked service is started with, and its clients send. */
export const SERVICE_TOKEN = `bench-${randomBytes(24).toString('base64url')}`;
export const serviceHeaders = { authorization: `Bearer ${SERVICE_TOKEN}` };

/**
 * Runs a built service (apps/<name>/dist/main.js) as its own process and waits for /healthz; on
 * the Node at BENCH_SERVICE_NODE when set (the image's is `.tools/node-24.*`), else this one.
 */
export async function startService(name, env, script = `apps/${name}/dist/main.js`) {
  const profile = process.env.BENCH_PROFILE_DIR
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${path.resolve(process.env.BENCH_PROFILE_DIR)}`,
        `--cpu-prof-name=${name}.${Date.now()}.cpuprofile`,
      ]
    : [];
  const service = startProcess({
    name,
    // The services on another Node than the benchmark's, e.g. the image's (`npm run image:node`).
    command: process.env.BENCH_SERVICE_NODE || undefined,
    args: [...profile, path.join(root, script)],
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'warn', OTEL_SDK_DISABLED: 'true', SERVICE_TOKEN, ...env },
    stdout: 'ignore',
    stderr: 'inherit',
  });
  const url = `http://127.0.0.1:${env.PORT ?? env.SIM_PORT}`;
  await service.waitForUrl(`${url}/healthz`, { timeoutMs: 30_000 });
  return { url, pid: service.pid, stop: () => service.stop() };
}

/** CPU time (user + system) a process has used so far, in microseconds. */
export function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * (1e6 / 100); // clock ticks are 10 ms
}

/**
 * CPU time used so far by each PostgreSQL process on this machine (postmaster, backends, WAL
 * writer, checkpointer...), in microseconds, by pid.
 */
function postgresCpuByPid() {
  const byPid = new Map();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).startsWith('postgres')) continue;
      byPid.set(pid, cpuMicros(pid));
    } catch {
      // gone in between
    }
  }
  return byPid;
}

/**
 * Starts counting the CPU time (µs) of Postgres, of the given processes (name -> pid), and of this
 * process (`self`). The function it returns gives what each has used since. Postgres is counted
 * process by process, over those alive at the end: a backend (or another benchmark's server) that
 * exits in between takes what it used with it, rather than making the sum go backwards.
 */
export function cpuMeter(pids = {}) {
  const read = () => {
    const own = process.cpuUsage();
    return {
      postgres: postgresCpuByPid(),
      ...Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, pid ? cpuMicros(pid) : NaN])),
      self: own.user + own.system,
    };
  };
  const before = read();
  return () => {
    const after = read();
    let postgres = 0;
    for (const [pid, micros] of after.postgres) postgres += micros - (before.postgres.get(pid) ?? 0);
    return Object.fromEntries(
      Object.keys(after).map((key) => [key, key === 'postgres' ? postgres : after[key] - before[key]]),
    );
  };
}

export function freePort() {
  return 20_000 + Math.floor(Math.random() * 20_000);
}
