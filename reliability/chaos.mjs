// npm run test:chaos: the whole system under steady load (a simulated fleet of hundreds of GPUs),
// broken on purpose one fault at a time. After each fault every service must come back on its
// own, nothing may crash, and the books must balance: samples served by the fleet = rows stored +
// samples the collector counted as dropped, with no duplicates. Prints a table; exits 1 on any
// failed check. Localhost only, about seven minutes.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fmt, printTable, sleep, waitFor } from '@gpu-telemetry/harness';
import { root, SIMULATED_METRICS, startSystem } from './lib/system.mjs';

const HOSTS = Number(process.env.CHAOS_HOSTS ?? 32);
const GPUS_PER_HOST = 8;
const INTERVAL_MS = 2_000;
const VISIBILITY_MS = 5_000;
const BASE_PORT = Number(process.env.CHAOS_BASE_PORT ?? 28_080);
const KILLS = 3;

/** Watches every service's /readyz while a fault lasts: which ones answered 503. */
function watchReadiness(system) {
  const seen = new Map();
  let running = true;
  const loop = (async () => {
    while (running) {
      for (const [name, status] of Object.entries(await system.readiness())) {
        if (status === 503) seen.set(name, true);
      }
      await sleep(200);
    }
  })();
  return async () => {
    running = false;
    await loop;
    return [...seen.keys()].sort();
  };
}

/** From the moment a fault is lifted: every /readyz 200 and fresh samples stored again. */
async function recovery(system, liftedAt) {
  return waitFor(
    'recovery (every /readyz 200 and new rows stored)',
    async () => (await system.allReady()) && (await system.storedSince(liftedAt)),
    { timeoutMs: 120_000, intervalMs: 100 },
  );
}

/** A streamer is compacting a chunk right now (its transaction is reading or writing the chunk). */
async function compacting(system) {
  const { rows } = await system.pool.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE application_name = 'streamer' AND state = 'active'
       AND (query LIKE 'COPY (SELECT series_id::int8, ts, telemetry_value(value, value_dec) FROM "telemetry_samples_%' OR query LIKE 'COPY telemetry_blocks%'
            OR query LIKE 'COPY telemetry_rollups_%' OR query LIKE 'LOCK TABLE "telemetry_samples_%')`,
  );
  return rows[0].n > 0;
}

const faults = [
  {
    name: 'none (baseline)',
    async run() {
      await sleep(6_000);
      return [];
    },
  },
  {
    name: `kill -9 a streamer mid-batch, ${KILLS} times`,
    async run(system) {
      const times = [];
      for (let i = 0; i < KILLS; i++) {
        await sleep(2_500 + Math.random() * 1_000);
        const streamer = system.streamers[i % system.streamers.length];
        await streamer.kill();
        await sleep(1_000);
        streamer.start();
        times.push(await recovery(system, new Date()));
      }
      return times;
    },
  },
  {
    name: 'kill -9 every streamer mid-compaction, 2 times',
    async run(system) {
      const times = [];
      for (let i = 0; i < 2; i++) {
        // Slices are a minute long and compacted 10 s after they close: one is due every minute.
        await waitFor('a chunk being compacted', () => compacting(system), {
          timeoutMs: 90_000,
          intervalMs: 20,
        });
        await Promise.all(system.streamers.map((streamer) => streamer.kill()));
        await sleep(1_000);
        for (const streamer of system.streamers) streamer.start();
        times.push(await recovery(system, new Date()));
      }
      return times;
    },
  },
  {
    name: `kill -9 the queue, ${KILLS} times`,
    async run(system) {
      const times = [];
      for (let i = 0; i < KILLS; i++) {
        await sleep(2_500 + Math.random() * 1_000);
        await system.services.queue.kill();
        await sleep(1_500);
        system.services.queue.start();
        times.push(await recovery(system, new Date()));
      }
      return times;
    },
  },
  {
    name: `kill -9 the collector, ${KILLS} times`,
    collectorKills: KILLS,
    async run(system) {
      const times = [];
      for (let i = 0; i < KILLS; i++) {
        await sleep(2_500 + Math.random() * INTERVAL_MS);
        await system.services.collector.kill();
        await sleep(1_000);
        system.services.collector.start();
        times.push(await recovery(system, new Date()));
      }
      return times;
    },
  },
  {
    name: 'restart Postgres (down 5 s)',
    // The collector scrapes on through the outage (its targets are the ones it last listed) and
    // buffers for the queue, which needs Postgres: the outage and the queue's recovery may outlast
    // this run's three-round buffer, and what it drops must then be counted.
    mayDrop: true,
    expectNotReady: ['collector', 'gateway', 'queue', 'streamer-1', 'streamer-2'],
    async run(system) {
      await sleep(3_000);
      await system.stopPostgres();
      await sleep(5_000);
      await system.startPostgres();
      return [await recovery(system, new Date())];
    },
  },
  {
    name: 'queue unreachable 16 s (buffer lasts 6 s)',
    expectDrops: true,
    expectNotReady: ['collector'],
    async run(system) {
      await sleep(3_000);
      system.services.queue.signal('SIGSTOP');
      await sleep(16_000);
      system.services.queue.signal('SIGCONT');
      return [await recovery(system, new Date())];
    },
  },
  {
    name: `consumer stalled 12 s (visibility ${VISIBILITY_MS / 1000} s)`,
    async run(system) {
      await sleep(3_000);
      const [stalled] = system.streamers;
      stalled.signal('SIGSTOP');
      await sleep(12_000);
      stalled.signal('SIGCONT');
      return [await recovery(system, new Date())];
    },
  },
];

/** Pauses the fleet and waits until everything scraped is either stored or counted as dropped. */
async function settle(system) {
  system.sim.pause();
  await sleep(INTERVAL_MS + 500);
  let last = -1;
  let stableSince = Date.now();
  await waitFor(
    'the pipeline to drain',
    async () => {
      const stored = await system.stored();
      if (stored !== last) {
        last = stored;
        stableSince = Date.now();
      }
      return (
        (await system.queueDepth()) === 0 &&
        system.collectorBuffered() === 0 &&
        Date.now() - stableSince > 2_000
      );
    },
    { timeoutMs: 180_000, intervalMs: 250 },
  );
}

async function main() {
  const dir = path.join(tmpdir(), `gpu-telemetry-chaos-${Date.now()}`);
  const samplesPerRound = HOSTS * GPUS_PER_HOST * SIMULATED_METRICS;
  console.log(
    `chaos: ${HOSTS} hosts x ${GPUS_PER_HOST} GPUs scraped every ${INTERVAL_MS / 1000} s; logs in ${dir}`,
  );
  const system = await startSystem({
    dir,
    basePort: BASE_PORT,
    hosts: HOSTS,
    gpusPerHost: GPUS_PER_HOST,
    env: {
      collector: {
        COLLECT_INTERVAL: `${INTERVAL_MS}ms`,
        COLLECT_TIMEOUT: `${INTERVAL_MS}ms`,
        // Three rounds: a queue outage longer than 6 s must drop, and count what it drops.
        COLLECT_BUFFER_SAMPLES: String(samplesPerRound * 3),
      },
      // Two-minute chunks in one-minute slices, each compacted 10 s after it closes, and a chunk's
      // slices merged once both are: every fault also meets compaction and merging.
      streamer: {
        STREAMER_VISIBILITY: `${VISIBILITY_MS}ms`,
        STREAMER_WAIT: '2s',
        TELEMETRY_CHUNK: '2m',
        TELEMETRY_SLICE: '1m',
        TELEMETRY_COMPACT_AFTER: '10s',
      },
    },
  });
  const rows = [];
  const failures = [];
  try {
    await waitFor('first samples stored', async () => (await system.stored()) > 0, {
      timeoutMs: 60_000,
      intervalMs: 100,
    });
    await settle(system);
    for (const fault of faults) {
      const before = { served: system.sim.served, stored: await system.stored(), dropped: system.dropped() };
      const crashesBefore = system.crashes().length;
      system.sim.resume();
      const stopWatching = watchReadiness(system);
      const started = Date.now();
      const recoveries = await fault.run(system);
      const notReady = await stopWatching();
      await sleep(4_000);
      await settle(system);
      const served = system.sim.served - before.served;
      const stored = (await system.stored()) - before.stored;
      const dropped = system.dropped() - before.dropped;
      const duplicates = await system.duplicates();
      const crashes = system.crashes().slice(crashesBefore);
      const unaccounted = Math.max(0, served - stored - dropped);
      const check = (ok, message) => {
        if (!ok) failures.push(`${fault.name}: ${message}`);
      };
      check(crashes.length === 0, `crashed: ${JSON.stringify(crashes)}`);
      check(duplicates === 0, `${duplicates} duplicate rows`);
      check(stored <= served, `stored ${stored} rows, more than the ${served} samples served`);
      if (fault.collectorKills) {
        // A killed collector loses what it had scraped and not yet published: at most a round each.
        check(unaccounted <= fault.collectorKills * samplesPerRound, `${unaccounted} samples lost`);
      } else {
        check(unaccounted === 0, `${unaccounted} samples neither stored nor counted as dropped`);
      }
      if (fault.expectDrops)
        check(dropped > 0, 'the outage outlasted the buffer but nothing was counted as dropped');
      else if (!fault.mayDrop) check(dropped === 0, `${dropped} samples dropped`);
      for (const name of fault.expectNotReady ?? []) {
        check(notReady.includes(name), `${name} never answered /readyz 503 while its dependency was down`);
      }
      rows.push([
        fault.name,
        recoveries.length ? `${fmt(Math.max(...recoveries) / 1000, 1)} s` : '-',
        fmt(served),
        fmt(stored),
        fmt(duplicates),
        fmt(dropped),
        fmt(unaccounted),
        notReady.join(' ') || '-',
        `${fmt((Date.now() - started) / 1000)} s`,
      ]);
      console.log(
        `  ${fault.name}: served ${served}, stored ${stored}, dropped ${dropped}, lost ${unaccounted}`,
      );
    }
  } finally {
    await system.stop();
  }
  const header = [
    'fault',
    'recovery (worst)',
    'samples expected',
    'stored',
    'duplicated',
    'dropped (counted)',
    'lost (uncounted)',
    '/readyz 503 from',
    'phase',
  ];
  printTable(
    'Faults under load (recovery: from the fault lifted to every /readyz 200 and new rows stored)',
    header,
    rows,
  );
  const markdown = [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
  mkdirSync(path.join(root, 'reports'), { recursive: true });
  writeFileSync(path.join(root, 'reports/chaos.md'), `${markdown}\n`);
  if (failures.length) {
    console.error(`\n${failures.length} check(s) failed:\n  ${failures.join('\n  ')}\nservice logs: ${dir}`);
    process.exit(1);
  }
  rmSync(dir, { recursive: true, force: true });
  console.log('\nall checks passed; table also in reports/chaos.md');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
