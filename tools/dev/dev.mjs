#!/usr/bin/env node
// The developer's command line behind the npm scripts (the make targets of this repository):
//
//   node tools/dev/dev.mjs start              everything: Postgres, migrations, all services, simulator
//   node tools/dev/dev.mjs service <name>     one service (queue, gateway, streamer, collector)
//   node tools/dev/dev.mjs service <name> --watch
//   node tools/dev/dev.mjs db                 the embedded Postgres in the foreground
//   node tools/dev/dev.mjs migrate <up|down|status|create name>
//
// It reads .env when present. Without DATABASE_URL, `start` runs an embedded PostgreSQL with its
// data in .data/postgres; the other commands use that same server (start it with `npm run db:start`).
import { spawn, spawnSync } from 'node:child_process';
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

loadDotEnv(path.join(root, '.env'));

const [command, ...args] = process.argv.slice(2);
const commands = { start, service, db, migrate, simulator };
if (!commands[command]) {
  console.error(`usage: dev.mjs <${Object.keys(commands).join('|')}> [...]`);
  process.exit(2);
}
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

function build(targets) {
  const configs = targets.map((t) =>
    t in SERVICES ? `apps/${t}/tsconfig.app.json` : `libs/${t}/tsconfig.lib.json`,
  );
  const result = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-b', ...configs], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) throw new Error('build failed');
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
  build(['db']);
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
  build(['db']);
  const child = spawn(process.execPath, [path.join(root, 'libs/db/dist/bin/db-start.js')], {
    cwd: root,
    stdio: 'inherit',
  });
  child.on('exit', (code) => process.exit(code ?? 0));
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
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
  build([name]);
  databaseUrl();
  process.env.SERVICE_TOKEN = serviceToken();
  const watch = flag === '--watch';
  const children = [];
  if (watch) {
    children.push(
      spawn(
        process.execPath,
        [
          require.resolve('typescript/bin/tsc'),
          '-b',
          '-w',
          '--preserveWatchOutput',
          `apps/${name}/tsconfig.app.json`,
        ],
        {
          cwd: root,
          stdio: 'inherit',
        },
      ),
    );
  }
  const args = watch ? ['--watch', ...serviceCommand(name)] : serviceCommand(name);
  const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit', env: process.env });
  children.push(child);
  child.on('exit', (code) => {
    for (const other of children) other.kill('SIGTERM');
    process.exit(code ?? 0);
  });
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill('SIGTERM'));
}

async function simulator() {
  build(['collector']);
  const child = spawn(process.execPath, [path.join(root, 'apps/collector/dist/simulator/main.js')], {
    cwd: root,
    stdio: 'inherit',
  });
  child.on('exit', (code) => process.exit(code ?? 0));
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
}

async function start() {
  console.log('building...');
  build(Object.keys(SERVICES));
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
    await terminate(postgres?.child);
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
    { name: 'simulator', args: [path.join(root, 'apps/collector/dist/simulator/main.js')] },
    ...Object.keys(SERVICES).map((name) => ({ name, args: serviceCommand(name) })),
  ];
  const children = processes.map(({ name, args }) => run(name, args, env));

  let stopping = false;
  const stop = async (code = 0) => {
    if (stopping) return;
    stopping = true;
    console.log('\nstopping...');
    await Promise.all(children.map((child) => terminate(child)));
    await terminate(postgres?.child);
    process.exit(code);
  };
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => void stop(0));
  // Children run in their own process groups; never leave them behind.
  process.on('exit', () => {
    for (const child of [...children, postgres?.child])
      if (child && child.exitCode === null) child.kill('SIGTERM');
  });
  for (const child of children) {
    child.on('exit', (code) => {
      if (!stopping) {
        console.error(`${child.label} exited with code ${code}; stopping everything.`);
        void stop(1);
      }
    });
  }
  await waitReady();
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
    const child = spawn(process.execPath, [path.join(root, 'libs/db/dist/bin/db-start.js')], {
      cwd: root,
      env: {
        ...process.env,
        EMBEDDED_PG_DIR: path.join(root, '.data/postgres'),
        EMBEDDED_PG_PORT: String(EMBEDDED_PORT),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    });
    let output = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      output += chunk;
      const match = /DATABASE_URL=(\S+)/.exec(output);
      if (match) resolve({ url: match[1], child });
    });
    child.on('exit', (code) => reject(new Error(`embedded PostgreSQL exited with code ${code}`)));
  });
}

function run(label, args, env) {
  const child = spawn(process.execPath, args, {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  child.label = label;
  for (const stream of [child.stdout, child.stderr]) {
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        process.stdout.write(formatLine(label, buffered.slice(0, newline)) + '\n');
        buffered = buffered.slice(newline + 1);
      }
    });
  }
  return child;
}

function terminate(child) {
  if (!child || child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

async function waitReady() {
  const deadline = Date.now() + 60_000;
  for (const [name, port] of Object.entries(SERVICES)) {
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`${name} did not come up on port ${port}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}
