// npm run test:soak: ten minutes (SOAK_MINUTES) of steady traffic through the gateway into the
// queue (publish, lease, ack) and the query API, while the collector -> queue -> streamer pipeline
// runs under a simulated fleet. Checks that every service's memory stays flat, that the queue
// table stays bounded, and that no minute's p99 latency exceeds twice the first minute's.
// Localhost only; the rate and the duration are bounded.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Agent, request } from 'undici';
import { fmt, percentile, printTable, sleep, waitFor } from '@gpu-telemetry/harness';
import { root, startSystem } from './lib/system.mjs';

const MINUTES = Math.min(Number(process.env.SOAK_MINUTES ?? 10), 120);
const RATE = Math.min(Number(process.env.SOAK_RATE ?? 200), 5_000); // gateway requests/s
const BASE_PORT = Number(process.env.SOAK_BASE_PORT ?? 29_080);
const ADMIN_KEY = 'reliability-suite-admin-key-0123456789';
const TOPIC = 'soak';

function rssMiB(pid) {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

async function main() {
  const dir = path.join(tmpdir(), `gpu-telemetry-soak-${Date.now()}`);
  console.log(
    `soak: ${MINUTES} min at ${RATE} gateway requests/s, plus a 16-host fleet every 5 s; logs in ${dir}`,
  );
  const system = await startSystem({
    dir,
    basePort: BASE_PORT,
    hosts: 16,
    gpusPerHost: 8,
    streamers: 1,
    env: {
      collector: { COLLECT_INTERVAL: '5s' },
      // The soak's own traffic would hit the default per-key limit; it measures the path, not the limiter.
      gateway: { GATEWAY_RATE_LIMIT: String(RATE * 4), GATEWAY_RATE_BURST: String(RATE * 4) },
    },
  });
  const gateway = `http://127.0.0.1:${BASE_PORT}`;
  const agent = new Agent({ connections: 64, pipelining: 1 });
  const headers = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' };
  const call = async (method, urlPath, body) => {
    const started = performance.now();
    const response = await request(`${gateway}${urlPath}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      dispatcher: agent,
    });
    const text = await response.body.text();
    return {
      status: response.statusCode,
      ms: performance.now() - started,
      json: text ? JSON.parse(text) : undefined,
    };
  };

  const minutes = [];
  let current = { latencies: [], errors: 0, requests: 0 };
  const samples = []; // { t, rss: { service: MiB }, queueBytes }
  const sample = async () => {
    const rss = Object.fromEntries(Object.values(system.services).map((s) => [s.name, rssMiB(s.pid)]));
    const { rows } = await system.pool.query(
      "SELECT pg_total_relation_size('queue_messages')::bigint AS queue, pg_total_relation_size('queue_leases')::bigint AS leases",
    );
    samples.push({ t: Date.now(), rss, queueBytes: Number(rows[0].queue) + Number(rows[0].leases) });
  };

  try {
    await waitFor('first samples stored', async () => (await system.stored()) > 0, {
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    await sample();
    const started = Date.now();
    const end = started + MINUTES * 60_000;
    let nextMinute = started + 60_000;
    let nextSample = started + 10_000;
    let tick = 0;
    const inFlight = new Set();
    // Open loop at a fixed rate: publish 2, lease+ack, query, in turn (a request every 1/RATE s).
    const kinds = ['publish', 'publish', 'lease', 'query'];
    while (Date.now() < end) {
      const due = started + (tick * 1000) / RATE;
      if (due > Date.now()) await sleep(due - Date.now());
      const kind = kinds[tick % kinds.length];
      tick++;
      if (inFlight.size > RATE * 2) {
        current.errors++; // the system fell behind by more than two seconds of traffic
        continue;
      }
      const work = (async () => {
        try {
          let result;
          if (kind === 'publish') {
            result = await call('POST', `/api/v1/topics/${TOPIC}/messages`, {
              messages: [{ payload: { n: tick, at: Date.now() } }],
            });
          } else if (kind === 'lease') {
            result = await call('POST', `/api/v1/topics/${TOPIC}/leases`, {
              consumer: 'soak',
              max: 10,
              waitSeconds: 0,
            });
            if (result.status === 200 && result.json.messages.length) {
              const ack = await call('POST', `/api/v1/topics/${TOPIC}/acks`, {
                leaseId: result.json.leaseId,
                ids: result.json.messages.map((m) => m.id),
              });
              if (ack.status !== 200) current.errors++;
            }
          } else {
            result = await call('GET', '/api/v1/gpus?limit=50');
          }
          current.requests++;
          current.latencies.push(result.ms);
          if (result.status >= 400) current.errors++;
        } catch {
          current.requests++;
          current.errors++;
        }
      })();
      inFlight.add(work);
      work.finally(() => inFlight.delete(work));
      if (Date.now() >= nextSample) {
        nextSample += 10_000;
        await sample();
      }
      if (Date.now() >= nextMinute) {
        nextMinute += 60_000;
        minutes.push(current);
        const m = minutes.length;
        console.log(
          `  minute ${m}: ${current.requests} requests, p50 ${fmt(percentile(current.latencies, 50), 1)} ms, p99 ${fmt(percentile(current.latencies, 99), 1)} ms, errors ${current.errors}`,
        );
        current = { latencies: [], errors: 0, requests: 0 };
      }
    }
    await Promise.all(inFlight);
    // A trailing part-minute joins the table only when it holds at least half a minute of traffic.
    if (current.requests >= RATE * 30) minutes.push(current);
    await sample();
  } finally {
    await agent.close();
    await system.stop();
  }

  // --- report ------------------------------------------------------------------------------------
  const failures = [];
  const first = samples[0];
  const last = samples[samples.length - 1];
  const half = samples[Math.floor(samples.length / 2)];
  const services = Object.keys(first.rss);
  const rssRows = services.map((name) => {
    const peak = Math.max(...samples.map((s) => s.rss[name]));
    // Flat: the second half of the run grows by less than 10% (and 20 MiB) of the mid-run figure.
    const growth = last.rss[name] - half.rss[name];
    if (growth > Math.max(20, half.rss[name] * 0.1))
      failures.push(`${name} RSS grew ${fmt(growth, 1)} MiB in the second half`);
    return [name, fmt(first.rss[name], 1), fmt(half.rss[name], 1), fmt(last.rss[name], 1), fmt(peak, 1)];
  });
  printTable('Memory (RSS, MiB)', ['service', 'start', 'middle', 'end', 'peak'], rssRows);

  const mib = (bytes) => fmt(bytes / 1024 / 1024, 1);
  const peakQueue = Math.max(...samples.map((s) => s.queueBytes));
  if (last.queueBytes > Math.max(half.queueBytes * 1.5, 32 * 1024 * 1024)) {
    failures.push(
      `queue tables grew from ${mib(half.queueBytes)} to ${mib(last.queueBytes)} MiB in the second half`,
    );
  }
  printTable(
    'Queue tables (queue_messages + queue_leases, MiB)',
    ['start', 'middle', 'end', 'peak'],
    [[mib(first.queueBytes), mib(half.queueBytes), mib(last.queueBytes), mib(peakQueue)]],
  );

  const p99First = percentile(minutes[0].latencies, 99);
  const minuteRows = minutes.map((m, i) => {
    const p99 = percentile(m.latencies, 99);
    if (p99 > 2 * p99First)
      failures.push(`minute ${i + 1} p99 ${fmt(p99, 1)} ms > 2x the first minute's ${fmt(p99First, 1)} ms`);
    if (m.errors) failures.push(`minute ${i + 1}: ${m.errors} failed requests`);
    return [
      String(i + 1),
      fmt(m.requests),
      fmt(percentile(m.latencies, 50), 1),
      fmt(p99, 1),
      fmt(p99 / p99First, 2),
      fmt(m.errors),
    ];
  });
  printTable(
    'Gateway latency per minute (ms)',
    ['minute', 'requests', 'p50', 'p99', 'p99 / first', 'errors'],
    minuteRows,
  );

  mkdirSync(path.join(root, 'reports'), { recursive: true });
  writeFileSync(
    path.join(root, 'reports/soak.json'),
    JSON.stringify(
      {
        minutes: MINUTES,
        rate: RATE,
        rss: rssRows,
        queue: [first.queueBytes, last.queueBytes, peakQueue],
        perMinute: minuteRows,
      },
      null,
      2,
    ),
  );
  if (failures.length) {
    console.error(`\n${failures.length} check(s) failed:\n  ${failures.join('\n  ')}\nservice logs: ${dir}`);
    process.exit(1);
  }
  rmSync(dir, { recursive: true, force: true });
  console.log('\nall checks passed; figures also in reports/soak.json');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
