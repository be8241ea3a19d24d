import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { serviceAuthorization } from '@gpu-telemetry/service-kit';
import { linesLogger, TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import request from 'supertest';
import { createApp, type QueueApp } from '../app';
import type { QueueDatabase } from '../queue.tables';
import { serveQueue, TEST_CONFIG } from '../testing/queue-test-app';

const AUTHORIZATION = serviceAuthorization(TEST_SERVICE_TOKEN);

/**
 * One request costs the queue a small multiple of its size, whatever it holds: bodies over the
 * limit are cut off as they stream, and a body of millions of tiny values is refused by a scan of
 * its bytes before anything is built from it. Memory is measured in this process, which runs the
 * app: the JS heap plus buffers, sampled every few milliseconds while the request runs.
 */
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const MB = 1024 * 1024;
const LIMIT = 32 * MB; // QUEUE_BODY_LIMIT, the default
const SMALL_LIMIT = MB;

let database: TestDatabase<QueueDatabase>;
let queue: QueueApp;
let small: QueueApp;
let server: Awaited<ReturnType<typeof serveQueue>>;
let smallServer: Awaited<ReturnType<typeof serveQueue>>;
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  database = await createTestDatabase<QueueDatabase>({ max: 10 });
  const logger = linesLogger('queue', 'warn', logLines);
  const config = { ...TEST_CONFIG, DATABASE_URL: database.url };
  queue = createApp({ pool: database.pool, logger, config: { ...config, QUEUE_BODY_LIMIT: LIMIT } });
  small = createApp({ pool: database.pool, logger, config: { ...config, QUEUE_BODY_LIMIT: SMALL_LIMIT } });
  await queue.start();
  await small.start();
  server = await serveQueue(queue);
  smallServer = await serveQueue(small);
});

afterAll(async () => {
  await server.close();
  await smallServer.close();
  await queue.stop();
  await small.stop();
  await database.drop();
});

function used(): number {
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

/**
 * Memory in use once what earlier tests left is gone: buffers are freed after the collection that
 * finds them, not during it, so collect until the figure stops falling.
 */
async function settled(): Promise<number> {
  let last = Infinity;
  for (let i = 0; i < 50; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
    const now = used();
    if (now > last - 256 * 1024) return now;
    last = now;
  }
  return last;
}

/**
 * The most the heap and buffers grew while `run` ran. `collected`: after a full collection at each
 * sample, so it counts what was held, not garbage not yet collected. `run` may also take a sample
 * itself, at points where the timer alone could let garbage pile up between two samples.
 */
async function growth<T>(
  run: (sample: () => void) => Promise<T>,
  collected = false,
): Promise<{ result: T; bytes: number }> {
  const base = await settled();
  let peak = 0;
  const sample = () => {
    if (collected) gc();
    peak = Math.max(peak, used() - base);
  };
  // A full collection per sample is costly: every 100 ms is enough to see what is held.
  const timer = setInterval(sample, collected ? 100 : 2);
  try {
    const result = await run(sample);
    sample();
    return { result, bytes: peak };
  } finally {
    clearInterval(timer);
  }
}

async function stored(topic: string): Promise<number> {
  const { rows } = await database.pool.query(
    'SELECT count(*)::int AS n FROM queue_messages WHERE topic = $1',
    [topic],
  );
  return rows[0].n;
}

async function refusals(app: QueueApp, reason: string): Promise<number> {
  const text = (await request(app.app).get('/metrics').expect(200)).text;
  const line = text
    .split('\n')
    .find((l) => l.startsWith('queue_publish_refused_total{') && l.includes(`reason="${reason}"`));
  return Number(line?.split(' ')[1] ?? 0);
}

const json = (body: string) => Buffer.from(body);

interface Answer {
  status: number;
  type: string;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** POSTs bytes as they are (a test client would serialise a Buffer as JSON), and reads the answer. */
function post(url: string, body: Buffer, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: {
          'content-type': 'application/json',
          'content-length': String(body.length),
          authorization: AUTHORIZATION,
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            type: res.headers['content-type'] ?? '',
            body: JSON.parse(text),
          });
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A publish written on a bare socket: the request line and content type, then `head` (the rest of
 * the headers and the start of the body) and `rest`. Resolves with what came back once a whole
 * answer has arrived (the socket is then closed) or the server hangs up.
 */
function exchange(port: number, topic: string, head: string, rest?: Buffer): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(
        `POST /v1/topics/${topic}/messages HTTP/1.1\r\nHost: queue\r\nAuthorization: ${AUTHORIZATION}\r\nContent-Type: application/json\r\n${head}`,
      );
      if (rest) socket.write(rest);
    });
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
      if (/\r\n\r\n\{[\s\S]*\}$/.test(text)) socket.destroy();
    });
    // A server that hangs up on bytes that are not HTTP makes writing more fail.
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(text));
  });
}

/** A publish with no length: `{"messages":[`, then `count` chunks, sent as fast as the server takes them. */
/** `every`, if given, is called after each `per` chunks written. */
function streamChunked(
  url: string,
  chunk: Buffer,
  count: number,
  every?: { per: number; call: () => void },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', authorization: AUTHORIZATION },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString('utf8')));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: res.headers['content-type'] ?? '',
            body: JSON.parse(text),
          }),
        );
      },
    );
    req.on('error', reject);
    req.write('{"messages":[');
    let sent = 0;
    const pump = () => {
      while (sent < count) {
        sent++;
        const more = req.write(chunk);
        if (every && sent % every.per === 0) every.call();
        if (!more) return void req.once('drain', pump);
      }
      req.end('{"payload":0}]}');
    };
    pump();
  });
}

describe('POST /v1/topics/:topic/messages under a body bomb', () => {
  it('refuses 20 MB of empty messages at the 1001st, in a fraction of the body size in memory', async () => {
    const topic = `bomb-${randomUUID().slice(0, 8)}`;
    const body = json(`{"messages":[${'{},'.repeat(7_000_000)}{}]}`);
    const before = await refusals(queue, 'too_many_messages');
    const { result: res, bytes } = await growth(() =>
      post(`${server.url}/v1/topics/${topic}/messages`, body, { 'x-request-id': 'bomb-1' }),
    );
    expect(res.status).toBe(400);
    expect(res.type).toContain('application/problem+json');
    expect(res.body.errors).toEqual([{ field: 'messages', message: 'must contain at most 1000 messages' }]);
    expect(bytes).toBeLessThan(3 * body.length);
    expect(await stored(topic)).toBe(0);
    expect(await refusals(queue, 'too_many_messages')).toBe(before + 1);
    expect(logLines).toContainEqual(
      expect.objectContaining({
        msg: 'publish refused',
        requestId: 'bomb-1',
        reason: 'too_many_messages',
        field: 'messages',
        topic,
      }),
    );
  });

  it('refuses 20 MB of messages in a bare array with the body named, building nothing', async () => {
    const body = json(`[${'{"payload":0},'.repeat(1_500_000)}{"payload":0}]`);
    const { result: res, bytes } = await growth(() => post(`${server.url}/v1/topics/bomb/messages`, body));
    expect(res.status).toBe(400);
    expect(res.body.errors[0].field).toBe('body');
    expect(bytes).toBeLessThan(3 * body.length);
  });

  it('refuses a 20 MB deeply nested payload naming it, without recursing', async () => {
    const body = json(`{"messages":[{"payload":1},{"payload":${'['.repeat(20 * MB)}`);
    const { result: res, bytes } = await growth(() => post(`${server.url}/v1/topics/bomb/messages`, body));
    expect(res.status).toBe(400);
    expect(res.body.errors).toEqual([
      { field: 'messages[1].payload', message: 'must not nest more than 128 levels deep' },
    ]);
    expect(bytes).toBeLessThan(3 * body.length);
  });

  it('refuses a declared length over the limit at once, before reading the body', async () => {
    const before = await refusals(small, 'body_too_large');
    // Headers and a first few bytes only: the answer must not wait for the other 100 MB.
    const head = `Content-Length: ${100 * MB}\r\n\r\n{"messages":[`;
    const { result: answer, bytes } = await growth(() => exchange(smallServer.port, 'bomb', head));
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer).toContain('application/problem+json');
    expect(answer).toContain(`"must be at most ${SMALL_LIMIT} bytes"`);
    expect(bytes).toBeLessThan(SMALL_LIMIT);
    expect(await refusals(small, 'body_too_large')).toBe(before + 1);
  });

  it('cuts off a chunked body with no length as it passes the limit, holding a fraction of the 64 MB that pass', async () => {
    const chunk = json('{"payload":0},'.repeat(5_000)); // 70 KB
    // A sample (after a full collection) every 1 MB written, not only every 100 ms: on a busy
    // machine tens of MB can pass in 100 ms, all of it garbage awaiting the next collection.
    const { result: res, bytes } = await growth(
      (sample) =>
        streamChunked(
          `${smallServer.url}/v1/topics/bomb/messages`,
          chunk,
          Math.ceil((64 * MB) / chunk.length),
          { per: Math.ceil(MB / chunk.length), call: sample },
        ),
      true,
    );
    expect(res.status).toBe(413);
    expect(res.type).toContain('application/problem+json');
    expect(res.body.errors).toEqual([{ field: 'body', message: `must be at most ${SMALL_LIMIT} bytes` }]);
    // What this process held (the queue and the client writing to it): the 1 MiB the queue
    // buffered before refusing, socket buffers, and what was read and dropped since the last
    // sample or two (buffers are freed a moment after the collection that finds them). Measured
    // 0.5-4.5 MB, quiet or beside three busy loops; holding the stream would be 64.
    expect(bytes).toBeLessThan(16 * MB);
  }, 90_000);

  it('reads no further than a declared length: the bytes after it are a bad request, not more body', async () => {
    const topic = `bomb-${randomUUID().slice(0, 8)}`;
    const declared = '{"messages":[{"payload":1},';
    const extra = json('{"payload":1},'.repeat(1_500_000)); // 20 MB
    const { result: answer, bytes } = await growth(() =>
      exchange(server.port, topic, `Content-Length: ${declared.length}\r\n\r\n${declared}`, extra),
    );
    // The 27 bytes declared are not JSON, and what follows them is not HTTP: a 400 either way (the
    // server's, for the bytes that are not a request, may come first), and the connection closed.
    expect(answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(answer).toContain('application/problem+json');
    expect(bytes).toBeLessThan(3 * extra.length);
    expect(await stored(topic)).toBe(0);
  });
});

describe('the publish body limit', () => {
  /** A batch of `count` messages padded with spaces to exactly `size` bytes. */
  function batchOf(count: number, size: number): Buffer {
    const payload = `"${'x'.repeat(Math.floor(size / count) - 20)}"`;
    const body = `{"messages":[${Array(count).fill(`{"payload":${payload}}`).join(',')}]}`;
    if (body.length > size) throw new Error(`${count} messages do not fit in ${size} bytes`);
    return json(body.replace(/^\{/, `{${' '.repeat(size - body.length)}`));
  }

  it('stores a batch of 1000 messages of exactly the limit, and refuses one byte more', async () => {
    const topic = `edge-${randomUUID().slice(0, 8)}`;
    const body = batchOf(1000, SMALL_LIMIT);
    expect(body.length).toBe(SMALL_LIMIT);
    expect((await post(`${smallServer.url}/v1/topics/${topic}/messages`, body)).status).toBe(201);
    const res = await post(
      `${smallServer.url}/v1/topics/${topic}/messages`,
      Buffer.concat([json(' '), body]),
    );
    expect(res.status).toBe(413);
    expect(res.body.errors).toEqual([{ field: 'body', message: `must be at most ${SMALL_LIMIT} bytes` }]);
    expect(await stored(topic)).toBe(1000);
  });

  it(`stores a batch of the default ${LIMIT / MB} MiB limit in a small multiple of its size`, async () => {
    const topic = `edge-${randomUUID().slice(0, 8)}`;
    const body = batchOf(1000, LIMIT);
    const { result: res, bytes } = await growth(() =>
      post(`${server.url}/v1/topics/${topic}/messages`, body),
    );
    expect(res.status).toBe(201);
    expect(res.body.accepted).toBe(1000);
    // The body, the json[] parameter made of its payloads, and the driver's copy of that.
    expect(bytes).toBeLessThan(5 * body.length);
  });
});

describe('the other topics calls', () => {
  it('refuses a 20 MB ids list up front, and a long one that fits cheaply, naming ids', async () => {
    const huge = json(`{"leaseId":"${randomUUID()}","ids":[${'0,'.repeat(10 * MB)}0]}`);
    const { result: res, bytes } = await growth(() => post(`${server.url}/v1/topics/bomb/acks`, huge));
    expect(res.status).toBe(413);
    expect(res.body.errors[0].field).toBe('body');
    expect(bytes).toBeLessThan(3 * huge.length);
    const fits = json(`{"leaseId":"${randomUUID()}","ids":[${Array(30_000).fill(0).join(',')}]}`);
    const answer = await post(`${server.url}/v1/topics/bomb/acks`, fits);
    expect(answer.status).toBe(400);
    expect(answer.body.errors).toEqual([{ field: 'ids', message: 'must list at most 1000 ids' }]);
  });
});
