import request from 'supertest';
import { asService } from '@gpu-telemetry/service-kit/testing';
import { frameMessage, message, sample } from '../testing/samples';
import { startStreamerTestApp } from '../testing/streamer-test-app';

let streamer: Awaited<ReturnType<typeof startStreamerTestApp>>;
const base = Math.floor((Date.now() - 30 * 60_000) / 60_000) * 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

beforeAll(async () => {
  streamer = await startStreamerTestApp();
});

afterAll(async () => {
  await streamer.close();
});

/** The GPU as /v1/gpus lists it, if it does. */
async function gpuOf(id: string): Promise<{ lastSeen: string } | undefined> {
  const res = await request(asService(streamer.app)).get('/v1/gpus').expect(200);
  return res.body.gpus.find((g: { id: string }) => g.id === id);
}

/** streamer_samples_invalid_total as /metrics shows it. */
async function invalidTotal(): Promise<number> {
  return (await streamer.streamerMetrics.invalid.get()).values[0]?.value ?? 0;
}

describe('IngestService.handle: frames', () => {
  it('dead-letters a frame naming a metric twice, naming the second, and stores none of its samples', async () => {
    const gpuId = 'GPU-refusals-1';
    const bad = frameMessage([
      sample({ gpuId, metricName: 'DUP', timestamp: iso(base), value: 1 }),
      sample({ gpuId, metricName: 'OTHER', timestamp: iso(base), value: 2 }),
    ]);
    bad.payload.metrics = ['DUP', 'DUP'];
    expect(await streamer.ingest.handle([bad])).toEqual({
      failed: [{ id: bad.id, deadLetter: true, reason: 'invalid telemetry: metrics[1]: repeats metrics[0]' }],
    });
    const res = await request(asService(streamer.app)).get(`/v1/gpus/${gpuId}/telemetry`).expect(404);
    expect(res.body.status).toBe(404);
  });

  it('dead-letters a frame naming a time twice, naming the second', async () => {
    const bad = frameMessage([
      sample({ gpuId: 'GPU-refusals-2', timestamp: iso(base), value: 1 }),
      sample({ gpuId: 'GPU-refusals-2', timestamp: iso(base + 1000), value: 2 }),
    ]);
    bad.payload.times = [iso(base), iso(base)];
    expect((await streamer.ingest.handle([bad])).failed?.map((f) => f.reason)).toEqual([
      'invalid telemetry: times[1]: repeats times[0]',
    ]);
  });
});

describe('IngestService.handle: sample times', () => {
  it('dead-letters a frame whose two times are one instant written two ways, naming the second', async () => {
    const bad = frameMessage([
      sample({ gpuId: 'GPU-refusals-6', timestamp: iso(base), value: 1 }),
      sample({ gpuId: 'GPU-refusals-6', timestamp: iso(base + 1000), value: 2 }),
    ]);
    bad.payload.times = [iso(base), iso(base).replace('Z', '+00:00')];
    expect((await streamer.ingest.handle([bad])).failed?.map((f) => f.reason)).toEqual([
      'invalid telemetry: times[1]: is the same instant as times[0]',
    ]);
    await request(asService(streamer.app)).get('/v1/gpus/GPU-refusals-6/telemetry').expect(404);
  });

  it('refuses a time past 40 characters by name, and stores the rest of its batch (GPU sightings included)', async () => {
    const long = `${iso(base).slice(0, 19)}.${'0'.repeat(150)}Z`;
    const frame = frameMessage([sample({ gpuId: 'GPU-refusals-7', timestamp: iso(base), value: 1 })]);
    frame.payload.times = [long];
    const legacy = message([{ ...sample({ gpuId: 'GPU-refusals-8' }), timestamp: long }]);
    const good = frameMessage([sample({ gpuId: 'GPU-refusals-9', timestamp: iso(base), value: 3 })]);
    const { failed } = await streamer.ingest.handle([frame, legacy, good]);
    expect(failed?.map((f) => [f.id, f.reason])).toEqual([
      [frame.id, expect.stringMatching(/^invalid telemetry: times\[0\]: must be at most 40 characters/)],
      [
        legacy.id,
        expect.stringMatching(/^invalid telemetry: samples\[0\]\.timestamp: must be at most 40 characters/),
      ],
    ]);
    expect(await gpuOf('GPU-refusals-9')).toMatchObject({ lastSeen: iso(base) });
  });

  it('stores a time given to the nanosecond as Postgres rounds it, and the GPU as seen at it', async () => {
    const at = `${iso(base + 2000).slice(0, 19)}.123456789Z`;
    const frame = frameMessage([sample({ gpuId: 'GPU-refusals-10', timestamp: iso(base), value: 4 })]);
    frame.payload.times = [at];
    expect(await streamer.ingest.handle([frame])).toEqual({ failed: [] });
    // The API shows a GPU's times to the millisecond, a sample's to the microsecond.
    expect(await gpuOf('GPU-refusals-10')).toMatchObject({ lastSeen: `${at.slice(0, 23)}Z` });
    const rows = await request(asService(streamer.app)).get('/v1/gpus/GPU-refusals-10/telemetry').expect(200);
    expect(rows.body.samples.map((r: { timestamp: string }) => r.timestamp)).toEqual([
      `${at.slice(0, 23)}457Z`,
    ]);
  });
});

describe('streamer_samples_invalid_total', () => {
  it('counts the samples refused: every sample at a bad time, every sample of a refused frame', async () => {
    const future = iso(Date.now() + 3 * 86_400_000);
    const group = (gpuId: string) => ({ gpuId, timestamp: future });
    // Two GPUs, three metrics, one time a day too late: six samples, one problem.
    const late = frameMessage(
      ['GPU-refusals-3', 'GPU-refusals-4'].flatMap((gpuId) =>
        ['M1', 'M2', 'M3'].map((metricName, i) => sample({ ...group(gpuId), metricName, value: i })),
      ),
    );
    let before = await invalidTotal();
    expect((await streamer.ingest.handle([late])).failed).toHaveLength(1);
    expect((await invalidTotal()) - before).toBe(6);

    // A frame refused whole (a metric named twice): its four samples.
    const repeated = frameMessage(
      ['M1', 'M2'].flatMap((metricName) =>
        [0, 1].map((s) => sample({ gpuId: 'GPU-refusals-5', metricName, timestamp: iso(base + s * 1000) })),
      ),
    );
    repeated.payload.metrics = ['M1', 'M1'];
    before = await invalidTotal();
    expect((await streamer.ingest.handle([repeated])).failed).toHaveLength(1);
    expect((await invalidTotal()) - before).toBe(4);

    // One sample with two bad fields: one sample.
    before = await invalidTotal();
    const twoFields = message([{ ...sample(), gpuId: '', hostname: 'a\u0000b' }, sample()]);
    expect((await streamer.ingest.handle([twoFields])).failed?.[0]?.reason).toMatch(/\(and 1 more\)$/);
    expect((await invalidTotal()) - before).toBe(1);
  });
});
