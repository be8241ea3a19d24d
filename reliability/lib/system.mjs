// The whole system on localhost for the reliability suite: a durable embedded Postgres that can
// be stopped and started again on the same port, the four services as child processes that can be
// killed, stopped (SIGSTOP) and restarted, and an in-process simulated dcgm-exporter fleet that
// counts every sample it serves and can be paused, so a run can be balanced: samples served =
// rows stored + samples the collector counted as dropped.
import { randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DcgmSimulator, SIMULATED_METRICS } from '@gpu-telemetry/dcgm-simulator';
import { startProcess } from '@gpu-telemetry/harness';
import pg from 'pg';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dbLib = createRequire(import.meta.url)(path.join(root, 'libs/db/dist/index.js'));

export { SIMULATED_METRICS };

/** A service (or one replica of it) run from its build as a child process that can be restarted. */
class ServiceProcess {
  constructor(name, script, port, env, logDir) {
    this.name = name;
    this.script = script;
    this.port = port;
    this.env = env;
    this.log = createWriteStream(path.join(logDir, `${name}.log`), { flags: 'a' });
    this.process = undefined;
    this.expectedExit = false;
    /** Exits nobody asked for: a crash. */
    this.crashes = [];
    this.starts = 0;
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid() {
    return this.process?.pid;
  }

  get running() {
    return this.process?.running ?? false;
  }

  start() {
    this.expectedExit = false;
    this.starts++;
    const started = startProcess({
      name: this.name,
      args: [path.join(root, this.script)],
      cwd: root,
      env: {
        ...process.env,
        OTEL_SDK_DISABLED: 'true',
        LOG_LEVEL: 'info',
        ...this.env,
        PORT: String(this.port),
      },
      stdout: this.log,
      stderr: this.log,
    });
    this.log.write(`--- start ${this.starts} pid ${started.pid} at ${new Date().toISOString()}\n`);
    void started.exited.then(({ code, signal }) => {
      this.log.write(`--- exit pid ${started.pid} code ${code} signal ${signal}\n`);
      if (!this.expectedExit) this.crashes.push({ pid: started.pid, code, signal, at: new Date() });
    });
    this.process = started;
    return this;
  }

  /** Sends a signal the runner means (SIGKILL, SIGSTOP, SIGCONT, SIGTERM). */
  signal(signal) {
    if (signal === 'SIGKILL' || signal === 'SIGTERM') this.expectedExit = true;
    this.process?.signal(signal);
  }

  async kill() {
    if (!this.running) return;
    this.expectedExit = true;
    await this.process.kill();
  }

  async stop() {
    if (!this.running) return;
    this.expectedExit = true;
    await this.process.stop();
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

  async waitHealthy() {
    await this.process.waitForUrl(`${this.url}/healthz`, { timeoutMs: 30_000 });
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
    /**
     * Samples stored, hot or compacted: hot rows counted, blocks by the sample count each keeps
     * (what decoding them gives, without decoding: the books are read every 250 ms, and decoding
     * every block each time would starve the system it measures).
     */
    async stored() {
      const { rows } = await pool.query(
        `SELECT (SELECT count(*) FROM telemetry_samples) + (SELECT coalesce(sum(n), 0) FROM telemetry_blocks) AS n`,
      );
      return Number(rows[0].n);
    },
    /** Rows that repeat a (GPU, metric, scrape time) already stored: every block decoded, so once a phase. */
    async duplicates() {
      const { rows } = await pool.query(
        'SELECT (count(*) - count(DISTINCT (gpu_id, metric_name, "timestamp")))::bigint AS n FROM telemetry',
      );
      return Number(rows[0].n);
    },
    /** Whether a sample scraped after `time` is stored: hot, or in a block of a chunk that ends after it. */
    async storedSince(time) {
      const { rows } = await pool.query(
        `SELECT EXISTS (SELECT 1 FROM telemetry_samples WHERE ts > $1)
             OR EXISTS (SELECT 1 FROM telemetry_blocks b
                        JOIN telemetry_chunks c ON c.chunk_start = b.chunk_start
                        CROSS JOIN LATERAL telemetry_decode(b.data) AS d
                        WHERE c.chunk_end > $1 AND d.ts > $1) AS stored`,
        [time],
      );
      return rows[0].stored;
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
