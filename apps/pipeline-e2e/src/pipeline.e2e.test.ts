import { TELEMETRY_TOPIC } from '@gpu-telemetry/model';
import request from 'supertest';
import { asService, TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { SIMULATED_METRICS } from '@gpu-telemetry/dcgm-simulator';
import { waitFor } from '@gpu-telemetry/harness';
import { type Pipeline, startPipeline } from './pipeline';

/**
 * Simulated dcgm-exporters -> collector -> queue -> streamer -> Postgres -> query API, with the
 * streamer stopped mid-stream, a consumer that dies holding a lease, and the queue unreachable
 * for a while. Every sample scraped lands in `telemetry` exactly once.
 */
const HOSTS = 6;
const GPUS = 4;
const PER_ROUND = HOSTS * GPUS * SIMULATED_METRICS;
let pipeline: Pipeline;

beforeAll(async () => {
  pipeline = await startPipeline({ hosts: HOSTS, gpusPerHost: GPUS });
});

afterAll(async () => {
  await pipeline.close();
});

async function stored(): Promise<{ rows: number; distinct: number }> {
  const { rows } = await pipeline.database.pool.query(
    'SELECT count(*)::int AS rows, count(DISTINCT uuid)::int AS distinct FROM telemetry',
  );
  return rows[0];
}

async function round(): Promise<void> {
  await pipeline.collector.scrapeLoop.runRound();
  // Distinct sample times per round, whatever the clock resolution.
  await new Promise((resolve) => setTimeout(resolve, 5));
}

const scraped = () =>
  pipeline.collector.publisher.totals.published + pipeline.collector.publisher.bufferedSamples;

describe('the telemetry pipeline', () => {
  it('stores every scraped sample exactly once and serves it through the query API', async () => {
    const streamer = await pipeline.startStreamer();
    await round();
    await round();
    await waitFor('two rounds stored', async () => (await stored()).rows === 2 * PER_ROUND);
    expect(await stored()).toEqual({ rows: 2 * PER_ROUND, distinct: 2 * PER_ROUND });

    const gpus = await request(asService(streamer.app)).get('/v1/gpus').expect(200);
    expect(gpus.body.gpus.map((g: { id: string }) => g.id).sort()).toEqual(
      pipeline.simulator
        .inventory()
        .map((g) => g.uuid)
        .sort(),
    );
    const gpu = gpus.body.gpus[0];
    expect(gpu.metrics).toHaveLength(SIMULATED_METRICS);
    const samples = await request(asService(streamer.app))
      .get(`/v1/gpus/${gpu.id}/telemetry?metric=DCGM_FI_DEV_GPU_UTIL`)
      .expect(200);
    expect(samples.body.samples).toHaveLength(2);
    await streamer.stop();
  });

  it('loses and duplicates nothing when the streamer stops mid-stream and a consumer dies holding a lease', async () => {
    const before = (await stored()).rows;
    for (let i = 0; i < 3; i++) await round();
    // A consumer leases some telemetry and dies without acking: the lease must expire and redeliver.
    const crashed = new QueueClient({ url: pipeline.queueUrl, token: TEST_SERVICE_TOKEN });
    const taken = await crashed.lease(TELEMETRY_TOPIC, { consumer: 'crashed', max: 3, visibilitySeconds: 1 });
    expect(taken.messages.length).toBe(3);
    await crashed.close();

    const first = await pipeline.startStreamer();
    await waitFor('some progress', async () => (await stored()).rows > before);
    await first.stop(); // finishes the batch in hand, then stops
    const second = await pipeline.startStreamer();
    await waitFor('all three rounds stored', async () => (await stored()).rows === before + 3 * PER_ROUND);
    await second.stop();
    const after = await stored();
    expect(after).toEqual({ rows: before + 3 * PER_ROUND, distinct: before + 3 * PER_ROUND });
    expect(await pipeline.queue.queue.topic(TELEMETRY_TOPIC)).toMatchObject({
      ready: 0,
      inFlight: 0,
      dead: 0,
    });
  });

  it('buffers while the queue is unreachable and delivers everything when it is back', async () => {
    const streamer = await pipeline.startStreamer();
    const before = (await stored()).rows;
    await pipeline.queueServer.stop();
    await round();
    await round();
    expect(pipeline.collector.publisher.bufferedSamples).toBe(2 * PER_ROUND);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await pipeline.queueServer.start();
    await waitFor('the buffer to drain', () => pipeline.collector.publisher.bufferedSamples === 0);
    await waitFor('both rounds stored', async () => (await stored()).rows === before + 2 * PER_ROUND);
    expect(await stored()).toEqual({ rows: before + 2 * PER_ROUND, distinct: before + 2 * PER_ROUND });
    expect(pipeline.collector.publisher.totals.dropped).toBe(0);
    expect(scraped()).toBe((await stored()).rows);
    await streamer.stop();
  });
});

describe('invalid telemetry on the topic', () => {
  it('ends in the dead letters with a reason naming the field, without holding up valid messages', async () => {
    const streamer = await pipeline.startStreamer();
    const before = (await stored()).rows;
    const client = new QueueClient({ url: pipeline.queueUrl, token: TEST_SERVICE_TOKEN });
    const published = await client.publish(TELEMETRY_TOPIC, [
      { payload: { source: 'manual', samples: [{ uuid: 'not-a-uuid' }] } },
      { payload: 'not telemetry at all' },
    ]);
    await round();
    await waitFor('the round stored', async () => (await stored()).rows === before + PER_ROUND);
    await waitFor('two dead letters', async () => (await client.topic(TELEMETRY_TOPIC)).dead === 2);
    const dead = await request(asService(pipeline.queue.app))
      .get(`/v1/topics/${TELEMETRY_TOPIC}/dead`)
      .expect(200);
    expect(dead.body.messages.map((m: { id: string }) => m.id).sort()).toEqual([...published.ids].sort());
    expect(dead.body.messages.map((m: { lastError: string }) => m.lastError).sort()).toEqual([
      'invalid telemetry: payload: must be an object',
      'invalid telemetry: samples[0].uuid: must be a UUID (and 12 more)',
    ]);
    await client.close();
    await streamer.stop();
  });
});

describe('a collector whose queue stays down longer than its buffer lasts', () => {
  let small: Pipeline;

  beforeAll(async () => {
    small = await startPipeline({
      hosts: 2,
      gpusPerHost: 2,
      collectorEnv: { COLLECT_BUFFER_SAMPLES: String(2 * 2 * SIMULATED_METRICS * 2) },
    });
  });

  afterAll(async () => {
    await small.close();
  });

  it('drops the oldest samples, counts them, and stores all the rest exactly once', async () => {
    const perRound = 2 * 2 * SIMULATED_METRICS;
    await small.queueServer.stop();
    for (let i = 0; i < 5; i++) {
      await small.collector.scrapeLoop.runRound();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const dropped = small.collector.publisher.totals.dropped;
    expect(dropped).toBeGreaterThanOrEqual(2 * perRound);
    expect(
      await small.collector.metrics.registry.getSingleMetricAsString('collector_samples_dropped_total'),
    ).toMatch(
      new RegExp(`collector_samples_dropped_total\\{[^}]*reason="buffer_full"[^}]*\\} ${dropped}$`, 'm'),
    );
    await small.queueServer.start();
    await small.startStreamer();
    await waitFor('the buffer to drain', () => small.collector.publisher.bufferedSamples === 0);
    const expected = 5 * perRound - dropped;
    await waitFor('the survivors stored', async () => {
      const { rows } = await small.database.pool.query('SELECT count(*)::int AS n FROM telemetry');
      return rows[0].n === expected;
    });
    const { rows } = await small.database.pool.query(
      'SELECT count(*)::int AS n, count(DISTINCT uuid)::int AS d FROM telemetry',
    );
    expect(rows[0]).toEqual({ n: expected, d: expected });
  });
});
