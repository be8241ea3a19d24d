import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { asService } from '@gpu-telemetry/service-kit/testing';
import * as snappy from 'snappyjs';
import request from 'supertest';
import type { CollectorApp } from '../app';
import type { CollectorDatabase } from '../collector.tables';
import { encodeWriteRequest, type WriteSeries } from '../remote-write/write-request';
import { createTestCollector } from '../testing/collector-test-app';

/**
 * POST /v1/write as Prometheus meets it: what is refused and why, before anything reaches the
 * queue. (Stored writes go through the whole system in apps/pipeline-e2e.)
 */
let database: TestDatabase<CollectorDatabase>;
let collector: CollectorApp;
// The queue is down: a closed port.
const queue = new QueueClient({ url: 'http://127.0.0.1:9', timeoutMs: 1_000 });

beforeAll(async () => {
  database = await createTestDatabase<CollectorDatabase>();
  collector = createTestCollector(database, queue, {
    REMOTE_WRITE_MAX_BODY: '64kb',
    REMOTE_WRITE_MAX_DECOMPRESSED: '256kb',
    REMOTE_WRITE_MAX_SERIES: '100',
    REMOTE_WRITE_MAX_SAMPLES: '200',
  });
});

afterAll(async () => {
  await queue.close();
  await database.drop();
});

const HEADERS = {
  'content-type': 'application/x-protobuf',
  'content-encoding': 'snappy',
  'x-prometheus-remote-write-version': '0.1.0',
};
const now = Date.now();
const up = (labels: Record<string, string> = {}, samples = 1): WriteSeries => ({
  labels: Object.entries({ __name__: 'up', job: 'node', ...labels }).map(([name, value]) => ({
    name,
    value,
  })),
  timestamps: Array.from({ length: samples }, (_, i) => now - i * 1000),
  values: Array.from({ length: samples }, (_, i) => i),
});
const body = (series: WriteSeries[]) => Buffer.from(snappy.compress(encodeWriteRequest(series)));

function write(payload: Buffer, headers: Record<string, string> = HEADERS) {
  return request(asService(collector.app)).post('/v1/write').set(headers).send(payload);
}

async function outcomes(app = collector): Promise<Record<string, number>> {
  const text = await app.metrics.registry.getSingleMetricAsString('collector_remote_write_requests_total');
  return Object.fromEntries(
    [...text.matchAll(/outcome="(\w+)"[^}]*} (\d+)/g)].map((m) => [m[1], Number(m[2])]),
  );
}

describe('POST /v1/write', () => {
  it('needs the service credential', async () => {
    await request(collector.app)
      .post('/v1/write')
      .set(HEADERS)
      .send(body([up()]))
      .expect(401);
  });

  it.each([
    [
      'another media type',
      { ...HEADERS, 'content-type': 'application/json' },
      'Send the WriteRequest as application/x-protobuf',
    ],
    [
      'another compression',
      { ...HEADERS, 'content-encoding': 'gzip' },
      'Compress the WriteRequest with snappy',
    ],
    [
      'remote write 2.0',
      { ...HEADERS, 'content-type': 'application/x-protobuf;proto=io.prometheus.write.v2.Request' },
      'Only remote write 1.0 (prometheus.WriteRequest) is accepted, not io.prometheus.write.v2.Request',
    ],
    [
      'another protocol version',
      { ...HEADERS, 'x-prometheus-remote-write-version': '2.0.0' },
      'Only remote write 1.0 (X-Prometheus-Remote-Write-Version 0.1.0) is accepted, not 2.0.0',
    ],
  ])('answers 415 to %s, saying what it takes', async (_what, headers, detail) => {
    const res = await write(body([up()]), headers).expect(415);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.detail).toContain(detail);
    const header = Object.keys(headers).find(
      (name) => headers[name as keyof typeof headers] !== HEADERS[name as keyof typeof HEADERS],
    );
    expect(res.body.errors).toEqual([{ field: header, message: expect.stringContaining(detail) }]);
  });

  it.each([
    ['a body that is not snappy', Buffer.from('not snappy at all'), 'The body is not a snappy block: '],
    [
      'snappy that is not protobuf',
      Buffer.from(snappy.compress(Buffer.from([0x0a, 0x7f, 0x01]))),
      'The body is not a WriteRequest this receiver can store: timeseries[0] runs past the end of its message.',
    ],
    [
      'a series without a metric name',
      body([{ ...up(), labels: [{ name: 'job', value: 'x' }] }]),
      'timeseries[0] has no __name__ label',
    ],
    [
      'a bad label name',
      body([up({ 'bad-label': 'x' })]),
      'the label name "bad-label" is not a Prometheus label name',
    ],
    [
      'a label sent twice',
      body([{ ...up(), labels: [...up().labels, { name: 'job', value: 'again' }] }]),
      'timeseries[0] has the label job twice',
    ],
  ])(
    'answers 400 to %s, naming the problem (Prometheus does not retry it)',
    async (_what, payload, detail) => {
      const res = await write(payload).expect(400);
      expect(res.body.detail).toContain(detail);
      expect(res.body.errors).toEqual([{ field: 'body', message: expect.stringContaining(detail) }]);
    },
  );

  it('answers 413 to a body over the limit, a decompressed size over the limit, or too many series or samples', async () => {
    const large = await write(Buffer.alloc(65 * 1024, 1)).expect(413);
    expect(large.body.detail).toBe('The body is larger than the 65536-byte limit.');
    expect(large.body.errors).toEqual([{ field: 'body', message: large.body.detail }]);
    // 20 bytes that declare 300 KiB: refused from the preamble.
    const declared = Buffer.from(snappy.compress(Buffer.alloc(300 * 1024)));
    expect(declared.length).toBeLessThan(65 * 1024);
    expect((await write(declared).expect(413)).body.detail).toBe(
      'The body is too large: it declares 307200 bytes uncompressed, more than the 262144-byte limit.',
    );
    const series = Array.from({ length: 101 }, (_, i) => up({ i: String(i) }));
    const many = await write(body(series)).expect(413);
    expect(many.body.detail).toContain('the request holds more than 100 series');
    expect(many.body.errors).toEqual([{ field: 'body', message: many.body.detail }]);
    expect((await write(body([up({}, 201)])).expect(413)).body.detail).toContain(
      'the request holds more than 200 samples',
    );
  });

  it('answers 413 to a streamed body as soon as it passes the limit', async () => {
    const server = createServer(asService(collector.app));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(
          {
            port: (server.address() as AddressInfo).port,
            method: 'POST',
            path: '/v1/write',
            headers: HEADERS,
          },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        // No Content-Length: chunks until the answer comes.
        const chunk = Buffer.alloc(16 * 1024, 1);
        const send = () => {
          if (!req.destroyed) req.write(chunk, () => setImmediate(send));
        };
        send();
      });
      expect(status).toBe(413);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('answers 503 with Retry-After while the queue is down (Prometheus retries), and counts every outcome', async () => {
    const before = await outcomes();
    const res = await write(body([up()])).expect(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body.detail).toBe('The queue cannot take the samples right now; retry shortly.');
    await write(Buffer.from('x')).expect(400);
    const after = await outcomes();
    expect((after['queue_unavailable'] ?? 0) - (before['queue_unavailable'] ?? 0)).toBe(1);
    expect((after['malformed'] ?? 0) - (before['malformed'] ?? 0)).toBe(1);
    expect(after['too_large']).toBeGreaterThanOrEqual(4);
    expect(after['unsupported']).toBeGreaterThanOrEqual(4);
  });
});

describe('POST /v1/write under load', () => {
  let stalled: Server;
  let slowQueue: QueueClient;
  let busy: CollectorApp;

  beforeAll(async () => {
    // A queue that takes the connection and never answers.
    stalled = createServer(() => undefined);
    await new Promise<void>((resolve) => stalled.listen(0, '127.0.0.1', resolve));
    slowQueue = new QueueClient({
      url: `http://127.0.0.1:${(stalled.address() as AddressInfo).port}`,
      timeoutMs: 1_500,
    });
    busy = createTestCollector(database, slowQueue, { REMOTE_WRITE_CONCURRENCY: '1' });
  });

  afterAll(async () => {
    await slowQueue.close();
    stalled.closeAllConnections();
    await new Promise((resolve) => stalled.close(resolve));
  });

  it('answers 503 with Retry-After past REMOTE_WRITE_CONCURRENCY writes in hand', async () => {
    const app = asService(busy.app);
    const first = request(app)
      .post('/v1/write')
      .set(HEADERS)
      .send(body([up()]));
    const pending = first.then((res) => res.status);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const second = await request(app)
      .post('/v1/write')
      .set(HEADERS)
      .send(body([up()]))
      .expect(503);
    expect(second.headers['retry-after']).toBe('1');
    expect(second.body.detail).toBe('1 remote writes are being stored already; retry shortly.');
    // The stalled publish times out: a 503 too, which Prometheus retries.
    expect(await pending).toBe(503);
  });
});

describe('POST /v1/write from senders that trickle their bodies', () => {
  let slow: CollectorApp;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    slow = createTestCollector(database, queue, {
      REMOTE_WRITE_CONCURRENCY: '1',
      REMOTE_WRITE_BODY_TIMEOUT: '400ms',
    });
    server = createServer(asService(slow.app));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  /** Sends the headers and one byte of a 1,000-byte body; resolves with the answer, if one comes. */
  function trickle(): Promise<{ status: number; connection?: string; detail: string }> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          port,
          method: 'POST',
          path: '/v1/write',
          agent: false,
          headers: { ...HEADERS, 'content-length': '1000' },
        },
        (res) => {
          let text = '';
          res.on('data', (chunk: Buffer) => (text += chunk.toString()));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              connection: res.headers.connection,
              detail: (JSON.parse(text) as { detail: string }).detail,
            }),
          );
        },
      );
      req.on('error', reject);
      req.write(Buffer.from([0x0a]));
    });
  }

  it('reads bodies apart from the writes being decoded: a stalled one holds no decoding place, and gets 408', async () => {
    const before = await outcomes(slow);
    const stalled = trickle();
    await new Promise((resolve) => setTimeout(resolve, 100));
    // The only decoding place is free: this write gets as far as the queue (down here).
    const whole = await request(`http://127.0.0.1:${port}`)
      .post('/v1/write')
      .set(HEADERS)
      .send(body([up()]))
      .expect(503);
    expect(whole.body.detail).toBe('The queue cannot take the samples right now; retry shortly.');
    const answer = await stalled;
    expect(answer).toEqual({
      status: 408,
      connection: 'close',
      detail: 'The body did not arrive within 0.4 s.',
    });
    const after = await outcomes(slow);
    expect((after['slow_body'] ?? 0) - (before['slow_body'] ?? 0)).toBe(1);
  });

  it('reads at most four bodies per decoding place at once; the next is a 503 to retry', async () => {
    const stalled = [trickle(), trickle(), trickle(), trickle()];
    await new Promise((resolve) => setTimeout(resolve, 100));
    const fifth = await request(`http://127.0.0.1:${port}`)
      .post('/v1/write')
      .set(HEADERS)
      .send(body([up()]))
      .expect(503);
    expect(fifth.headers['retry-after']).toBe('1');
    expect(fifth.body.detail).toBe('4 remote write bodies are being read already; retry shortly.');
    expect((await Promise.all(stalled)).map((a) => a.status)).toEqual([408, 408, 408, 408]);
  });
});

describe('POST /v1/write when the queue refuses a message as such', () => {
  let refusing: Server;
  let refusingQueue: QueueClient;
  let writer: CollectorApp;
  const stored: string[] = [];

  beforeAll(async () => {
    // A queue that refuses any publish holding a message that mentions "refuse-me" (as it refuses
    // a payload over QUEUE_MAX_PAYLOAD), and takes every other.
    refusing = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const { messages } = JSON.parse(Buffer.concat(chunks).toString()) as { messages: { id: string }[] };
        if (messages.some((m) => JSON.stringify(m).includes('refuse-me'))) {
          res.writeHead(413, { 'content-type': 'application/problem+json' });
          res.end(JSON.stringify({ title: 'Payload Too Large', status: 413, detail: 'too large' }));
          return;
        }
        stored.push(...messages.map((m) => m.id));
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ accepted: messages.length, duplicates: 0, ids: messages.map((m) => m.id) }));
      });
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    refusingQueue = new QueueClient({ url: `http://127.0.0.1:${(refusing.address() as AddressInfo).port}` });
    writer = createTestCollector(database, refusingQueue, {
      REMOTE_WRITE_MAX_SERIES: '10000',
      REMOTE_WRITE_MAX_SAMPLES: '10000',
    });
  });

  afterAll(async () => {
    await refusingQueue.close();
    refusing.closeAllConnections();
    await new Promise((resolve) => refusing.close(resolve));
  });

  it('stores every other message of the write, then answers 400 naming how many were refused', async () => {
    // 2,500 series of one sample: three messages of at most 1,000 samples, the second refused.
    const series = Array.from({ length: 2_500 }, (_, i) =>
      up(i === 1_500 ? { instance: `node-${i}`, note: 'refuse-me' } : { instance: `node-${i}` }),
    );
    const res = await request(asService(writer.app))
      .post('/v1/write')
      .set(HEADERS)
      .send(body(series))
      .expect(400);
    expect(res.body.detail).toMatch(
      /^The queue refuses 1 of the 3 messages of this write \(1000 samples; the rest, 1500 samples, are stored\)/,
    );
    expect(res.body.errors).toEqual([{ field: 'body', message: res.body.detail }]);
    expect(stored).toHaveLength(2);
    // The stored part counted as received, the refused part as dropped by the queue.
    const metrics = await writer.metrics.registry.metrics();
    expect(metrics).toMatch(/^collector_remote_write_samples_total\{kind="value"[^}]*\} 1500$/m);
    expect(metrics).toMatch(/^collector_samples_dropped_total\{reason="rejected"[^}]*\} 1000$/m);
    expect(metrics).toMatch(/^collector_remote_write_requests_total\{outcome="queue_refused"[^}]*\} 1$/m);
  });
});
