// The whole system on localhost for the reliability suite: a durable embedded Postgres that can
// be stopped and started again on the same port, the four services as child processes that can be
// killed, stopped (SIGSTOP) and restarted, and an in-process simulated dcgm-exporter fleet that
// counts every sample it serves and can be paused, so a run can be balanced: samples served =
// rows stored + samples the collector counted as dropped.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { require, root, sleep } from '../../bench/lib/harness.mjs';

const dbLib = require(path.join(root, 'libs/db/dist/index.js'));
const { DcgmSimulator, SIMULATED_METRICS } = require(
  path.join(root, 'apps/collector/dist/simulator/dcgm-simulator.js'),
);

export { sleep, SIMULATED_METRICS };

/** A service (or one replica of it) run from its build as a child process. */
class ServiceProcess {
  constructor(name, script, port, env, logDir) {
    this.name = name;
    this.script = script;
    this.port = port;
    this.env = env;
    this.log = createWriteStream(path.join(logDir, `${name}.log`), { flags: 'a' });
    this.child = undefined;
    this.expectedExit = false;
    /** Exits nobody asked for: a crash. */
    this.crashes = [];
    this.starts = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid() {
    return this.child?.pid;
  }

  get running() {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start() {
    this.expectedExit = false;
    this.starts++;
    const child = spawn(process.execPath, [path.join(root, this.script)], {
      cwd: root,
      env: {
        ...process.env,
        OTEL_SDK_DISABLED: 'true',
        LOG_LEVEL: 'info',
        ...this.env,
        PORT: String(this.port),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.log.write(`--- start ${this.starts} pid ${child.pid} at ${new Date().toISOString()}\n`);
    child.stdout.pipe(this.log, { end: false });
    child.stderr.pipe(this.log, { end: false });
    child.once('exit', (code, signal) => {
      this.log.write(`--- exit pid ${child.pid} code ${code} signal ${signal}\n`);
      if (!this.expectedExit) this.crashes.push({ pid: child.pid, code, signal, at: new Date() });
    });
    this.child = child;
    return this;
  }

  /** Sends a signal the runner means (SIGKILL, SIGSTOP, SIGCONT, SIGTERM). */
  signal(signal) {
    if (signal === 'SIGKILL' || signal === 'SIGTERM') this.expectedExit = true;
    this.child?.kill(signal);
  }

  async kill() {
    if (!this.running) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.signal('SIGKILL');
    await exited;
  }

  async stop() {
    if (!this.running) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGCONT');
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  async readyStatus() {
    try {
      const response = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(3_000) });
      await response.arrayBuffer();
      return response.status;
    } catch {
      return 0;
    }
  }

  async waitHealthy(timeoutMs = 30_000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited while starting (see its log)`);
      const ok = await fetch(`${this.url}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) return;
      await sleep(100);
    }
    throw new Error(`${this.name} did not answer /healthz within ${timeoutMs} ms`);
  }

  /** The service's Prometheus metrics as { 'name{labels}': value }; undefined when unreachable. */
  async metrics() {
    try {
      const text = await fetch(`${this.url}/metrics`, { signal: AbortSignal.timeout(2_000) }).then((r) =>
        r.text(),
      );
      const values = {};
      for (const line of text.split('\n')) {
        if (!line || line.startsWith('#')) continue;
        const space = line.lastIndexOf(' ');
        values[line.slice(0, space)] = Number(line.slice(space + 1));
      }
      return values;
    } catch {
      return undefined;
    }
  }
}

/** The simulated fleet, in this process: counts samples served, and can be paused (503). */
function startSimulator({ hosts, gpusPerHost, port }) {
  const simulator = new DcgmSimulator({ hosts, gpusPerHost, hostPrefix: 'chaos-node' });
  const state = { served: 0, paused: false, pages: 0 };
  const samplesPerPage = gpusPerHost * SIMULATED_METRICS;
  const server = createServer((req, res) => {
    const match = /^\/hosts\/(\d+)\/metrics$/.exec(req.url ?? '');
    if (!match || Number(match[1]) < 1 || Number(match[1]) > hosts) return simulator.handle(req, res);
    if (state.paused) return res.writeHead(503).end('paused\n');
    res.once('finish', () => {
      state.served += samplesPerPage;
      state.pages++;
    });
    res
      .writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
      .end(simulator.render(Number(match[1])));
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () =>
      resolve({
        targets: `http://127.0.0.1:${port}/hosts/{1..${hosts}}/metrics`,
        samplesPerRound: hosts * samplesPerPage,
        get served() {
          return state.served;
        },
        pause: () => {
          state.paused = true;
        },
        resume: () => {
          state.paused = false;
        },
        close: () => new Promise((done) => server.close(done)),
      }),
    );
  });
}

/**
 * Starts Postgres, migrates, starts the simulator and the services. `env` adds variables per
 * service name (queue, streamer, collector, gateway).
 */
export async function startSystem({ dir, basePort, hosts = 32, gpusPerHost = 8, streamers = 2, env = {} }) {
  mkdirSync(dir, { recursive: true });
  const dataDir = path.join(dir, 'postgres');
  const pgPort = basePort + 10;
  let database = await dbLib.startEmbeddedPostgres({ dataDir, port: pgPort, persistent: true });
  const url = database.url;
  {
    const { db, close } = dbLib.createDb(url, { max: 1 });
    const { error } = await dbLib.migrateUp(db);
    await close();
    if (error) throw error;
  }
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => undefined); // the runner restarts Postgres on purpose

  const sim = await startSimulator({ hosts, gpusPerHost, port: basePort + 11 });
  const queueUrl = `http://127.0.0.1:${basePort + 1}`;
  const streamerPorts = Array.from({ length: streamers }, (_, i) => basePort + 2 + i * 100);
  const common = {
    DATABASE_URL: url,
    SHUTDOWN_TIMEOUT: '5s',
    SERVICE_TOKEN: `reliability-${randomBytes(24).toString('base64url')}`,
  };
  const services = {
    queue: new ServiceProcess(
      'queue',
      'apps/queue/dist/main.js',
      basePort + 1,
      { ...common, ...env.queue },
      dir,
    ),
    collector: new ServiceProcess(
      'collector',
      'apps/collector/dist/main.js',
      basePort + 3,
      { ...common, QUEUE_URL: queueUrl, COLLECT_TARGETS: sim.targets, ...env.collector },
      dir,
    ),
    gateway: new ServiceProcess(
      'gateway',
      'apps/gateway/dist/main.js',
      basePort,
      {
        ...common,
        GATEWAY_QUEUE_URLS: queueUrl,
        GATEWAY_STREAMER_URLS: streamerPorts.map((port) => `http://127.0.0.1:${port}`).join(','),
        GATEWAY_COLLECTOR_URLS: `http://127.0.0.1:${basePort + 3}`,
        GATEWAY_ADMIN_KEY: 'reliability-suite-admin-key-0123456789',
        ...env.gateway,
      },
      dir,
    ),
  };
  for (let i = 1; i <= streamers; i++) {
    services[`streamer-${i}`] = new ServiceProcess(
      `streamer-${i}`,
      'apps/streamer/dist/main.js',
      streamerPorts[i - 1],
      { ...common, QUEUE_URL: queueUrl, ...env.streamer },
      dir,
    );
  }
  services.queue.start();
  await services.queue.waitHealthy();
  for (const service of Object.values(services)) if (!service.running) service.start();
  await Promise.all(Object.values(services).map((s) => s.waitHealthy()));

  // Collector counters die with a killed collector: remember the last value seen per process.
  const collectorCounters = new Map();
  const poller = setInterval(async () => {
    const pid = services.collector.pid;
    const metrics = await services.collector.metrics();
    if (pid && metrics) {
      collectorCounters.set(pid, {
        dropped: sumMetric(metrics, 'collector_samples_dropped_total'),
        buffered: sumMetric(metrics, 'collector_samples_buffered'),
      });
    }
  }, 250);

  const system = {
    dir,
    url,
    sim,
    services,
    pool,
    get streamers() {
      return Object.values(services).filter((s) => s.name.startsWith('streamer-'));
    },
    /** Stops Postgres (fast shutdown, as a restart or failover would). */
    async stopPostgres() {
      await database.stop();
    },
    async startPostgres() {
      database = await dbLib.startEmbeddedPostgres({ dataDir, port: pgPort, persistent: true });
    },
    async readiness() {
      const entries = await Promise.all(
        Object.values(services).map(async (s) => [s.name, await s.readyStatus()]),
      );
      return Object.fromEntries(entries);
    },
    async allReady() {
      return Object.values(await system.readiness()).every((status) => status === 200);
    },
    async stored() {
      const { rows } = await pool.query('SELECT count(*)::bigint AS n FROM telemetry');
      return Number(rows[0].n);
    },
    /** Rows that repeat a (GPU, metric, scrape time) already stored. */
    async duplicates() {
      const { rows } = await pool.query(
        'SELECT (count(*) - count(DISTINCT (gpu_id, metric_name, "timestamp")))::bigint AS n FROM telemetry',
      );
      return Number(rows[0].n);
    },
    async storedSince(time) {
      const { rows } = await pool.query(
        'SELECT count(*)::bigint AS n FROM telemetry WHERE ingested_at > $1',
        [time],
      );
      return Number(rows[0].n);
    },
    /** Messages of the telemetry topic not yet acked (ready, delayed or in flight). */
    async queueDepth() {
      const { rows } = await pool.query(
        "SELECT coalesce(sum(live), 0)::bigint AS n FROM queue_topic_counters WHERE topic = 'telemetry'",
      );
      return Number(rows[0].n);
    },
    /** Samples every collector process counted as dropped (the last value each one reported). */
    dropped() {
      let total = 0;
      for (const { dropped } of collectorCounters.values()) total += dropped;
      return total;
    },
    collectorBuffered() {
      const pid = services.collector.pid;
      return collectorCounters.get(pid)?.buffered ?? 0;
    },
    crashes() {
      return Object.values(services).flatMap((s) => s.crashes.map((c) => ({ service: s.name, ...c })));
    },
    async stop() {
      clearInterval(poller);
      await Promise.all(Object.values(services).map((s) => s.stop()));
      await sim.close();
      await pool.end();
      await database.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return system;
}

/** A metric summed over its label sets. */
export function sumMetric(metrics, name) {
  let total = 0;
  for (const [key, value] of Object.entries(metrics)) {
    if (key === name || key.startsWith(`${name}{`)) total += value;
  }
  return total;
}

/** Polls `check` until it is truthy; returns ms waited, or throws after `timeoutMs`. */
export async function waitFor(what, check, timeoutMs = 60_000, everyMs = 100) {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await check().catch(() => false)) return Date.now() - started;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
