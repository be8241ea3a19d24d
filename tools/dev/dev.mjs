#!/usr/bin/env node
// The developer's command line behind the npm scripts (the make targets of this repository):
//
//   node tools/dev/dev.mjs start              everything: Postgres, migrations, all services, simulator
//   node tools/dev/dev.mjs service <name>     one service (queue, gateway, streamer, collector)
//   node tools/dev/dev.mjs service <name> --watch
//   node tools/dev/dev.mjs simulator          the simulated dcgm-exporter fleet alone
//   node tools/dev/dev.mjs db                 the embedded Postgres in the foreground
//   node tools/dev/dev.mjs migrate <up|down|status|create name>
//
// It reads .env when present. Without DATABASE_URL, `start` runs an embedded PostgreSQL with its
// data in .data/postgres; the other commands use that same server (start it with `npm run db:start`).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatLine } from './log-format.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const require = createRequire(import.meta.url);
const SERVICES = { gateway: 8080, queue: 8081, streamer: 8082, collector: 8083 };
const EMBEDDED_PORT = Number(process.env.EMBEDDED_PG_PORT ?? 54329);
const EMBEDDED_URL = `postgres://postgres:postgres@127.0.0.1:${EMBEDDED_PORT}/gpu_telemetry`;
const SIMULATOR = path.join(root, 'libs/dcgm-simulator/dist/main.js');

loadDotEnv(path.join(root, '.env'));
readFileVariables(['DATABASE_URL', 'SERVICE_TOKEN', 'GATEWAY_ADMIN_KEY', 'GATEWAY_OTLP_KEY']);

const [command, ...args] = process.argv.slice(2);
const commands = { start, service, db, migrate, simulator };
if (!commands[command]) {
  console.error(`usage: dev.mjs <${Object.keys(commands).join('|')}> [...]`);
  process.exit(2);
}
// From @gpu-telemetry/harness, which build() builds with the rest before loading it.
let startProcess;
commands[command](...args).catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});

/** KEY=VALUE lines; the real environment wins over the file. */
function loadDotEnv(file) {
  if (!existsSync(file)) return;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = /^\s*([A-Z][A-Z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (!match || line.trimStart().startsWith('#')) continue;
    process.env[match[1]] ??= match[2].replace(/^(['"])(.*)\1$/, '$2');
  }
}

/** Builds the given services and libs, and the harness this script runs processes with. */
/**
 * `<NAME>_FILE` read into <NAME> here, as the services would read it, for the variables this
 * launcher gives a value of its own when unset (the embedded Postgres, the development keys):
 * otherwise it would start a second database, or hand the services both forms.
 */
function readFileVariables(names) {
  for (const name of names) {
    const file = process.env[`${name}_FILE`];
    if (!file) continue;
    if (process.env[name]) throw new Error(`${name} and ${name}_FILE are both set; set one`);
    process.env[name] = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    delete process.env[`${name}_FILE`];
  }
}

async function build(targets) {
  const configs = [...targets, 'harness'].map((t) =>
    t in SERVICES ? `apps/${t}/tsconfig.app.json` : `libs/${t}/tsconfig.lib.json`,
  );
  const result = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', ...configs], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) throw new Error('build failed');
  ({ startProcess } = await import('@gpu-telemetry/harness'));
}

function databaseUrl() {
  if (!process.env.DATABASE_URL) {
    process.env.DATABASE_URL = EMBEDDED_URL;
    console.error(
      `DATABASE_URL is not set: using the embedded Postgres of \`npm run db:start\` (${EMBEDDED_URL}).`,
    );
  }
  return process.env.DATABASE_URL;
}

async function migrate(direction = 'up', ...rest) {
  await build(['db']);
  if (direction !== 'create') databaseUrl();
  const result = spawnSync(
    process.execPath,
    [path.join(root, 'libs/db/dist/bin/migrate.js'), direction, ...rest],
    {
      cwd: root,
      stdio: 'inherit',
    },
  );
  process.exit(result.status ?? 1);
}

async function db() {
  await build(['db']);
  foreground(
    startProcess({ name: 'postgres', args: [path.join(root, 'libs/db/dist/bin/db-start.js')], cwd: root }),
  );
}

/**
 * `main` in the foreground of the terminal: SIGINT and SIGTERM are passed on to it (as `forward`,
 * when given); when it exits, `others` are stopped and this script exits with its code.
 */
function foreground(main, { forward, others = [] } = {}) {
  void main.exited.then(async ({ code }) => {
    await Promise.all(others.map((other) => other.stop()));
    process.exit(code ?? 0);
  });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => main.signal(forward ?? signal));
}

function serviceCommand(name) {
  const dist = path.join(root, 'apps', name, 'dist');
  return [
    '--enable-source-maps',
    '--import',
    pathToImport(path.join(dist, 'instrumentation.js')),
    path.join(dist, 'main.js'),
  ];
}

function pathToImport(file) {
  return new URL(`file://${file}`).href;
}

async function service(name, flag) {
  if (!(name in SERVICES))
    throw new Error(`unknown service "${name}": one of ${Object.keys(SERVICES).join(', ')}`);
  await build([name]);
  databaseUrl();
  process.env.SERVICE_TOKEN = serviceToken();
  if (name === 'gateway') {
    // The same development keys as `npm start`'s, so the README's KEY works on its own too.
    process.env.GATEWAY_ADMIN_KEY = devAdminKey();
    process.env.GATEWAY_OTLP_KEY = devKey('GATEWAY_OTLP_KEY', 'gateway-dev-otlp-key', 'gt_otlp_');
  }
  const watch = flag === '--watch';
  const compiler = watch
    ? [
        startProcess({
          name: 'tsc',
          args: [
            require.resolve('typescript/bin/tsc'),
            '-b',
            '-w',
            '--preserveWatchOutput',
            `apps/${name}/tsconfig.app.json`,
          ],
          cwd: root,
        }),
      ]
    : [];
  const args = watch ? ['--watch', ...serviceCommand(name)] : serviceCommand(name);
  // In a process group of its own: Ctrl-C reaches this launcher alone, which passes on one SIGTERM
  // (the service reads a second signal as "exit now", skipping its drain).
  foreground(startProcess({ name, args, cwd: root, ownProcessGroup: true }), {
    forward: 'SIGTERM',
    others: compiler,
  });
}

async function simulator() {
  await build(['dcgm-simulator']);
  foreground(startProcess({ name: 'simulator', args: [SIMULATOR], cwd: root }));
}

async function start() {
  console.log('building...');
  await build([...Object.keys(SERVICES), 'dcgm-simulator']);
  let postgres;
  if (!process.env.DATABASE_URL) {
    console.log(`starting embedded PostgreSQL (data in .data/postgres, port ${EMBEDDED_PORT})...`);
    postgres = await startPostgresProcess();
    process.env.DATABASE_URL = postgres.url;
  }
  const migrated = spawnSync(process.execPath, [path.join(root, 'libs/db/dist/bin/migrate.js'), 'up'], {
    cwd: root,
    stdio: 'inherit',
  });
  if (migrated.status !== 0) {
    await postgres?.process.stop();
    throw new Error('migrations failed');
  }

  const simHosts = Number(process.env.SIM_HOSTS || 4);
  const simPort = Number(process.env.SIM_PORT || 9400);
  const env = {
    ...process.env,
    QUEUE_URL: process.env.QUEUE_URL || `http://127.0.0.1:${SERVICES.queue}`,
    SERVICE_TOKEN: serviceToken(),
    GATEWAY_ADMIN_KEY: devAdminKey(),
    GATEWAY_OTLP_KEY: devKey('GATEWAY_OTLP_KEY', 'gateway-dev-otlp-key', 'gt_otlp_'),
    // Every service exports its spans to the gateway's OTLP receiver: GET /api/v1/traces/{id}.
    OTEL_EXPORTER_OTLP_ENDPOINT:
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT || `http://127.0.0.1:${SERVICES.gateway}`,
    // The collector scrapes the simulated exporter unless told otherwise.
    COLLECT_TARGETS:
      process.env.COLLECT_TARGETS || `http://127.0.0.1:${simPort}/hosts/{1..${simHosts}}/metrics`,
  };
  // ... with the key that may only send spans (the receiver wants one when auth is on).
  env.OTEL_EXPORTER_OTLP_HEADERS ||= `authorization=Bearer%20${env.GATEWAY_OTLP_KEY}`;
  const processes = [
    { name: 'simulator', args: [SIMULATOR] },
    ...Object.keys(SERVICES).map((name) => ({ name, args: serviceCommand(name) })),
  ];
  // Each in its own process group: a Ctrl-C reaches only this script, which stops the services
  // first and the database last.
  const children = processes.map(({ name, args }) => {
    const print = (line) => process.stdout.write(`${formatLine(name, line)}\n`);
    return startProcess({ name, args, cwd: root, env, stdout: print, stderr: print, ownProcessGroup: true });
  });

  let stopping = false;
  const stop = async (code = 0) => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping...');
    await Promise.all(children.map((child) => child.stop()));
    await postgres?.process.stop();
    process.exit(code);
  };
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => void stop(0));
  for (const child of children) {
    void child.exited.then(({ code }) => {
      if (!stopping) {
        console.error(`${child.name} exited with code ${code}; stopping everything.`);
        void stop(1);
      }
    });
  }
  try {
    await Promise.all(
      Object.entries(SERVICES).map(([name, port]) =>
        children
          .find((child) => child.name === name)
          .waitForUrl(`http://127.0.0.1:${port}/healthz`, { timeoutMs: 60_000, intervalMs: 200 }),
      ),
    );
  } catch (error) {
    // An exit is reported above and stops everything; a service that never answered does too.
    if (!stopping) {
      console.error(error.message);
      await stop(1);
    }
    return;
  }
  console.log(`
gpu-telemetry is running:
  gateway    http://localhost:${SERVICES.gateway}
  queue      http://localhost:${SERVICES.queue}/v1/topics
  streamer   http://localhost:${SERVICES.streamer}/v1/gpus
  collector  http://localhost:${SERVICES.collector}/v1/targets
  simulator  ${simHosts} hosts at http://localhost:${simPort}/hosts/{1..${simHosts}}/metrics
GPUs appear after the first scrape. Through the gateway, with the development admin key:

  curl -H "Authorization: Bearer ${env.GATEWAY_ADMIN_KEY}" localhost:${SERVICES.gateway}/api/v1/gpus

Queue, streamer and collector answer only the system's own services, which send SERVICE_TOKEN${
    process.env.SERVICE_TOKEN ? '' : ' (kept in .data/service-token)'
  }:

  curl -H "Authorization: Bearer ${process.env.SERVICE_TOKEN ? '$SERVICE_TOKEN' : '$(cat .data/service-token)'}" localhost:${SERVICES.queue}/v1/topics

Ctrl-C stops everything.
`);
}

/** SERVICE_TOKEN, or a development token kept in .data/ that every local service shares. */
function serviceToken() {
  return devKey('SERVICE_TOKEN', 'service-token', 'st_dev_');
}

/** GATEWAY_ADMIN_KEY, or a development key kept in .data/ so it survives restarts. */
function devAdminKey() {
  return devKey('GATEWAY_ADMIN_KEY', 'gateway-dev-key', 'gt_dev_');
}

/** The variable when set, else a random key kept in .data/<file>. */
function devKey(variable, file, prefix) {
  if (process.env[variable]) return process.env[variable];
  const keyFile = path.join(root, '.data', file);
  if (!existsSync(keyFile)) {
    mkdirSync(path.dirname(keyFile), { recursive: true });
    writeFileSync(keyFile, `${prefix}${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  }
  return readFileSync(keyFile, 'utf8').trim();
}

/**
 * The embedded Postgres of `npm run db:start`, in its own process group like the services: a
 * Ctrl-C reaches only this launcher, which stops the services first and the database last.
 */
function startPostgresProcess() {
  return new Promise((resolve, reject) => {
    const started = startProcess({
      name: 'postgres',
      args: [path.join(root, 'libs/db/dist/bin/db-start.js')],
      cwd: root,
      env: {
        ...process.env,
        EMBEDDED_PG_DIR: path.join(root, '.data/postgres'),
        EMBEDDED_PG_PORT: String(EMBEDDED_PORT),
      },
      stdout: (line) => {
        const match = /DATABASE_URL=(\S+)/.exec(line);
        if (match) resolve({ url: match[1], process: started });
      },
      stderr: 'inherit',
      ownProcessGroup: true,
    });
    void started.exited.then(({ code }) => reject(new Error(`embedded PostgreSQL exited with code ${code}`)));
  });
}
