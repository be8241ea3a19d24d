// npm run bench:queue: this queue over HTTP against raw SQL (the ceiling) and pg-boss (the peer),
// same workload, same Postgres, one run. Prints msgs/s for publish and lease+ack, publish-to-ack
// latency at a steady rate, and lease latency over a small and a 400k-message backlog.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import {
  cpuMeter,
  fmt,
  freePort,
  percentile,
  printTable,
  require,
  root,
  sleep,
  startPostgres,
  SERVICE_TOKEN,
  startService,
} from './lib/harness.mjs';

const { QueueClient } = require(path.join(root, 'libs/queue-client/dist/index.js'));
const PgBoss = require('pg-boss');

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 50_000);
// Every contender warms up with the same workload first: the HTTP service needs about 1,000
// requests before V8 has optimised its hot paths (measured: 14 -> 8 µs of CPU per message).
const WARMUP = Number(process.env.BENCH_WARMUP ?? 100_000);
const BATCH = 100;
const PUBLISHERS = 4;
const CONSUMERS = 4;
const RATE = Number(process.env.BENCH_RATE ?? 2_000); // msgs/s in the latency phase
const RATE_SECONDS = Number(process.env.BENCH_RATE_SECONDS ?? 5);
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 400_000);
const PAD = 'x'.repeat(900); // ~1 KB payloads

const payload = (n, sentAt = 0) => ({
  gpu: `GPU-${n % 64}`,
  metric: 'DCGM_FI_DEV_GPU_UTIL',
  value: n % 100,
  sentAt,
  pad: PAD,
});

// --- the three systems, one interface: publish(batch), lease() -> {messages, ack()} -------------

async function rawSystem(url) {
  const pool = new pg.Pool({ connectionString: url, max: PUBLISHERS + CONSUMERS + 2 });
  await pool.query(`
    CREATE TABLE raw_queue (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload json NOT NULL,
      visible_at timestamptz NOT NULL DEFAULT now(), lease_id uuid);
    CREATE INDEX raw_queue_ready ON raw_queue (visible_at, id);`);
  return {
    name: 'raw SQL (pg, SKIP LOCKED)',
    publish: (batch) =>
      pool.query('INSERT INTO raw_queue (payload) SELECT json_array_elements($1::json)', [
        JSON.stringify(batch),
      ]),
    async lease() {
      const { rows } = await pool.query(
        `UPDATE raw_queue SET visible_at = now() + interval '30 seconds', lease_id = $1
         WHERE id IN (SELECT id FROM raw_queue WHERE visible_at <= now() ORDER BY visible_at, id LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)
         RETURNING id, payload`,
        [randomUUID()],
      );
      return {
        messages: rows.map((r) => r.payload),
        ack: () => pool.query('DELETE FROM raw_queue WHERE id = ANY($1::bigint[])', [rows.map((r) => r.id)]),
      };
    },
    async backlog(n) {
      await pool.query(
        `INSERT INTO raw_queue (payload) SELECT json_build_object('n', i, 'pad', $2::text) FROM generate_series(1, $1) i`,
        [n, PAD],
      );
      await pool.query('VACUUM ANALYZE raw_queue');
    },
    close: () => pool.end(),
  };
}

async function pgBossSystem(url) {
  const boss = new PgBoss({
    connectionString: url,
    max: PUBLISHERS + CONSUMERS + 2,
    supervise: false,
    schedule: false,
  });
  boss.on('error', () => undefined);
  await boss.start();
  const name = 'bench';
  await boss.createQueue(name);
  return {
    name: `pg-boss ${require('pg-boss/package.json').version}`,
    publish: (batch) => boss.insert(batch.map((data) => ({ name, data }))),
    async lease() {
      const jobs = await boss.fetch(name, { batchSize: BATCH });
      return {
        messages: jobs.map((j) => j.data),
        ack: () =>
          jobs.length
            ? boss.complete(
                name,
                jobs.map((j) => j.id),
              )
            : undefined,
      };
    },
    close: () => boss.stop({ graceful: false, wait: true }),
  };
}

async function queueSystem(url) {
  const port = freePort();
  const service = await startService('queue', { DATABASE_URL: url, PORT: String(port), HOST: '127.0.0.1' });
  const client = new QueueClient({
    url: service.url,
    connections: PUBLISHERS + CONSUMERS + 2,
    token: SERVICE_TOKEN,
  });
  const topic = 'bench';
  return {
    name: 'gpu-telemetry queue (HTTP)',
    pid: service.pid,
    publish: (batch) =>
      client.publish(
        topic,
        batch.map((p) => ({ payload: p })),
      ),
    async lease(wait = 0) {
      const lease = await client.lease(topic, {
        consumer: 'bench',
        max: BATCH,
        visibilitySeconds: 30,
        waitSeconds: wait,
      });
      return {
        messages: lease.messages.map((m) => m.payload),
        ack: () => (lease.leaseId ? client.ack(topic, lease.leaseId) : undefined),
      };
    },
    async backlog(n) {
      const db = new pg.Client({ connectionString: url });
      await db.connect();
      await db.query(
        `WITH ins AS (INSERT INTO queue_messages (topic, msg_uuid, payload)
           SELECT $1, gen_random_uuid(), json_build_object('n', i, 'pad', $3::text) FROM generate_series(1, $2) i RETURNING 1)
         INSERT INTO queue_topic_counters AS c (topic, slot, live, dead) SELECT $1, 0, count(*), 0 FROM ins
         ON CONFLICT (topic, slot) DO UPDATE SET live = c.live + excluded.live`,
        [topic, n, PAD],
      );
      await db.query('VACUUM ANALYZE queue_messages');
      await db.end();
    },
    close: async () => {
      await client.close();
      await service.stop();
    },
  };
}

// --- phases ---------------------------------------------------------------------------------------

/** Runs `phase` and returns its result with the CPU µs per message of Postgres, the service and this process. */
async function measured(system, total, phase) {
  const used = cpuMeter({ service: system.pid });
  const rate = await phase();
  const cpu = used();
  return {
    rate,
    cpu: { postgres: cpu.postgres / total, service: cpu.service / total, client: cpu.self / total },
  };
}

async function publishAll(system, total) {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: PUBLISHERS }, async () => {
      while (next < total) {
        const from = next;
        next += BATCH;
        await system.publish(
          Array.from({ length: Math.min(BATCH, total - from) }, (_, i) => payload(from + i)),
        );
      }
    }),
  );
  return total / ((performance.now() - started) / 1000);
}

async function consumeAll(system, total) {
  const started = performance.now();
  let consumed = 0;
  await Promise.all(
    Array.from({ length: CONSUMERS }, async () => {
      while (consumed < total) {
        const lease = await system.lease();
        if (lease.messages.length === 0) {
          await sleep(1);
          continue;
        }
        await lease.ack();
        consumed += lease.messages.length;
      }
    }),
  );
  return consumed / ((performance.now() - started) / 1000);
}

/** Publish at a steady rate while consumers run; latency = ack done - publish started. */
async function steadyLatency(system, seconds = RATE_SECONDS) {
  const latencies = [];
  const total = RATE * seconds;
  let done = false;
  const consumers = Array.from({ length: CONSUMERS }, async () => {
    while (!done || latencies.length < total) {
      const lease = await system.lease(1);
      if (lease.messages.length === 0) {
        if (done && latencies.length >= total) return;
        await sleep(1);
        continue;
      }
      await lease.ack();
      const now = Date.now();
      for (const m of lease.messages) latencies.push(now - m.sentAt);
    }
  });
  const interval = 1000 / (RATE / BATCH);
  const started = Date.now();
  for (let sent = 0; sent < total; sent += BATCH) {
    const due = started + (sent / BATCH) * interval;
    if (due > Date.now()) await sleep(due - Date.now());
    void system.publish(Array.from({ length: BATCH }, (_, i) => payload(sent + i, Date.now())));
  }
  done = true;
  await Promise.race([Promise.all(consumers), sleep(30_000)]);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

async function leaseLatency(system, calls = 100) {
  const times = [];
  for (let i = 0; i < calls; i++) {
    const started = performance.now();
    const lease = await system.lease();
    times.push(performance.now() - started);
    await lease.ack();
  }
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

// --- run --------------------------------------------------------------------------------------------

const postgres = await startPostgres();
const results = [];
const backlogRows = [];
const makers = [
  ['raw', rawSystem, false],
  ['pgboss', pgBossSystem, false],
  ['queue', queueSystem, true],
];
for (const [key, make, migrate] of makers) {
  const url = await postgres.createDatabase(`bench_${key}`, migrate);
  const system = await make(url);
  // Every contender gets the same warm-up (connections open, code compiled) before it is timed.
  process.stderr.write(`${system.name}: warm-up... `);
  await publishAll(system, WARMUP);
  await consumeAll(system, WARMUP);
  await postgres.quiesce();
  process.stderr.write(`publish ${MESSAGES}... `);
  const publish = await measured(system, MESSAGES, () => publishAll(system, MESSAGES));
  await postgres.quiesce();
  process.stderr.write(`lease+ack... `);
  const consume = await measured(system, MESSAGES, () => consumeAll(system, MESSAGES));
  await postgres.quiesce();
  process.stderr.write(`steady ${RATE}/s for ${RATE_SECONDS}s...\n`);
  // One untimed second of the same pattern first: the long-poll path and the connections it needs
  // start cold (measured: the first three batches took 45-146 ms, then none over 40 ms).
  await steadyLatency(system, 1);
  const latency = await steadyLatency(system);
  results.push({ key, name: system.name, publish, consume, latency });
  if (system.backlog) {
    const small = await (async () => {
      await system.publish(Array.from({ length: 1000 }, (_, i) => payload(i)));
      return leaseLatency(system, 10);
    })();
    process.stderr.write(`${system.name}: backlog of ${BACKLOG.toLocaleString()}...\n`);
    await system.backlog(BACKLOG);
    // Writing 400k rows leaves the buffer pool full of dirty pages; the first leases after it would
    // time their eviction (measured over 100 leases: p99 46 ms, 14-20 ms after a checkpoint).
    await postgres.quiesce();
    const large = await leaseLatency(system);
    backlogRows.push([
      system.name,
      fmt(small.p50, 1),
      fmt(small.p99, 1),
      fmt(large.p50, 1),
      fmt(large.p99, 1),
    ]);
  }
  await system.close();
  // What this contender left behind (a 400k backlog, dead tuples) must not cost the next one.
  await postgres.dropDatabase(`bench_${key}`);
}

const by = Object.fromEntries(results.map((r) => [r.key, r]));
printTable(
  `Queue: ${MESSAGES.toLocaleString()} messages of ~1 KB, batches of ${BATCH}, ${PUBLISHERS} publishers, ${CONSUMERS} consumers; latency at ${RATE} msgs/s`,
  ['system', 'publish msgs/s', 'lease+ack msgs/s', 'publish→ack p50 ms', 'p99 ms'],
  results.map((r) => [
    r.name,
    fmt(r.publish.rate),
    fmt(r.consume.rate),
    fmt(r.latency.p50, 1),
    fmt(r.latency.p99, 1),
  ]),
);
printTable(
  "CPU µs per message (the service column is this queue's own process; client: the benchmark process, which runs the raw SQL and pg-boss clients in-process)",
  ['system', 'publish: postgres', 'service', 'client', 'lease+ack: postgres', 'service', 'client'],
  results.map((r) => [
    r.name,
    ...[r.publish.cpu, r.consume.cpu].flatMap((c) => [
      fmt(c.postgres, 1),
      fmt(c.service, 1),
      fmt(c.client, 1),
    ]),
  ]),
);
printTable(
  'Ratios (this queue / reference)',
  ['reference', 'publish', 'lease+ack'],
  [
    [
      'raw SQL (ceiling)',
      fmt(by.queue.publish.rate / by.raw.publish.rate, 2),
      fmt(by.queue.consume.rate / by.raw.consume.rate, 2),
    ],
    [
      'pg-boss (peer)',
      fmt(by.queue.publish.rate / by.pgboss.publish.rate, 2),
      fmt(by.queue.consume.rate / by.pgboss.consume.rate, 2),
    ],
  ],
);
printTable(
  `Lease of ${BATCH} + ack, latency of the lease call (ms)`,
  ['system', 'backlog 1k p50', 'p99', `backlog ${BACKLOG / 1000}k p50`, 'p99'],
  backlogRows,
);

// Connections a library left open die with the server; expected at this point, not a failure.
process.on('uncaughtException', () => undefined);
await postgres.stop();
process.exit(0);
