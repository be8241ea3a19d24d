import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { serviceAuthorization } from '@gpu-telemetry/service-kit';
import { linesLogger, TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import { createApp, type QueueApp } from '../app';
import type { QueueDatabase } from '../queue.tables';
import { serveQueue, TEST_CONFIG } from '../testing/queue-test-app';

const AUTHORIZATION = serviceAuthorization(TEST_SERVICE_TOKEN);
const KB = 1024;
const MB = 1024 * KB;

let database: TestDatabase<QueueDatabase>;
const apps: QueueApp[] = [];
const servers: Awaited<ReturnType<typeof serveQueue>>[] = [];
const logLines: Record<string, unknown>[] = [];

beforeAll(async () => {
  database = await createTestDatabase<QueueDatabase>({ max: 10 });
});

afterAll(async () => {
  for (const server of servers) await server.close();
  for (const app of apps) await app.stop();
  await database.drop();
});

/** A queue on its own port with these limits, logging its warnings to logLines. */
async function startQueue(limits: {
  QUEUE_BODY_LIMIT: number;
  QUEUE_PUBLISH_MEMORY: number;
  QUEUE_BODY_TIMEOUT?: number;
}) {
  const logger = linesLogger('queue', 'warn', logLines);
  const app = createApp({
    pool: database.pool,
    logger,
    config: { ...TEST_CONFIG, DATABASE_URL: database.url, ...limits },
  });
  await app.start();
  const server = await serveQueue(app);
  apps.push(app);
  servers.push(server);
  return server;
}

/** The value of the `name` series on /metrics with `label` among its labels, if given. */
async function metric(url: string, name: string, label = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label));
  return Number(line?.split(' ')[1] ?? 0);
}

/** Polls a metric until it reads `expected` (the server takes a moment to see bytes sent). */
async function metricReaches(url: string, name: string, expected: number): Promise<number> {
  let value = NaN;
  for (let i = 0; i < 200; i++) {
    value = await metric(url, name);
    if (value === expected) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return value;
}

const HELD = 'queue_publish_memory_bytes';
const REFUSED = 'queue_publish_refused_total';

/** A publish body of exactly `size` bytes: one message, padded with spaces. */
function bodyOf(size: number): Buffer {
  const message = '"payload":1}';
  return Buffer.from(`{${' '.repeat(size - message.length - 1)}${message}`);
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** A publish of `body` as it is, with these headers besides the service credential. */
function post(url: string, body: Buffer, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: 'POST', agent: false, headers: { authorization: AUTHORIZATION, ...headers } },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * A publish on a bare socket, its body sent as the test says: the headers (with `length` as
 * Content-Length, or chunked without one) and `first` bytes now, more with `send`. `answer`
 * resolves with the status line and body once a whole answer arrived, or '' if the socket closed.
 */
function openPublish(port: number, topic: string, length: number | 'chunked', first: Buffer) {
  let text = '';
  const socket = net.connect(port, '127.0.0.1');
  const framing = length === 'chunked' ? 'Transfer-Encoding: chunked' : `Content-Length: ${length}`;
  const chunk = (bytes: Buffer) =>
    length === 'chunked'
      ? Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')])
      : bytes;
  socket.write(
    `POST /v1/topics/${topic}/messages HTTP/1.1\r\nHost: queue\r\nAuthorization: ${AUTHORIZATION}\r\nContent-Type: application/json\r\n${framing}\r\n\r\n`,
  );
  socket.write(chunk(first));
  socket.on('error', () => undefined);
  const answer = new Promise<{ status: number; body: string }>((resolve) => {
    socket.on('data', (data: Buffer) => {
      text += data.toString('utf8');
      if (/\r\n\r\n(?:[0-9a-f]+\r\n)?\{[\s\S]*\}/.test(text)) socket.end();
    });
    socket.on('close', () =>
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), body: text }),
    );
  });
  return {
    answer,
    send: (bytes: Buffer) => socket.write(chunk(bytes)),
    abort: () => socket.destroy(),
  };
}

describe('POST /v1/topics/:topic/messages under QUEUE_PUBLISH_MEMORY', () => {
  it('holds bodies in flight to the budget as their bytes arrive, refuses past it with 503 naming body, and gives bytes back on every way out', async () => {
    const { url, port } = await startQueue({ QUEUE_BODY_LIMIT: MB, QUEUE_PUBLISH_MEMORY: 2 * MB });
    const topic = `mem-${randomUUID().slice(0, 8)}`;
    expect(await metric(url, 'queue_publish_memory_limit_bytes')).toBe(2 * MB);
    const fullBefore = await metric(url, REFUSED, 'reason="memory_full"');

    // A declared length holds nothing by itself: a body holds the bytes it has sent.
    const body = bodyOf(MB);
    const first = openPublish(port, topic, MB, body.subarray(0, 1));
    expect(await metricReaches(url, HELD, 1)).toBe(1);
    first.send(body.subarray(1, MB - 1));
    expect(await metricReaches(url, HELD, MB - 1)).toBe(MB - 1);
    const second = openPublish(port, topic, MB, body.subarray(0, MB - 10));
    expect(await metricReaches(url, HELD, 2 * MB - 11)).toBe(2 * MB - 11);

    // A third, however small, does not fit: 503, counted and logged.
    const res = await post(`${url}/v1/topics/${topic}/messages`, bodyOf(100), {
      'content-type': 'application/json',
      'x-request-id': 'over-budget-1',
    });
    expect(res.status).toBe(503);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.headers['retry-after']).toBe('1');
    expect(res.body.errors).toEqual([
      {
        field: 'body',
        message: `cannot be taken now: publishes in flight already hold the ${2 * MB}-byte budget for bodies`,
      },
    ]);
    expect(await metric(url, REFUSED, 'reason="memory_full"')).toBe(fullBefore + 1);
    expect(logLines).toContainEqual(
      expect.objectContaining({
        msg: 'publish refused',
        requestId: 'over-budget-1',
        reason: 'memory_full',
        field: 'body',
        topic,
      }),
    );

    // A chunked body is counted the same way: past the budget, 503 while it is still sending.
    const chunked = openPublish(port, topic, 'chunked', Buffer.from('{"messages":['));
    for (let i = 0; i < 3; i++) chunked.send(Buffer.from(' '.repeat(100 * KB)));
    const cut = await chunked.answer;
    expect(cut.status).toBe(503);
    expect(cut.body).toContain('application/problem+json');
    expect(cut.body).toContain('"field":"body"');
    expect(await metric(url, REFUSED, 'reason="memory_full"')).toBe(fullBefore + 2);
    expect(await metricReaches(url, HELD, 2 * MB - 11)).toBe(2 * MB - 11);

    // A client that hangs up mid-body gives its bytes back.
    first.abort();
    expect(await metricReaches(url, HELD, MB - 10)).toBe(MB - 10);

    // A publish that is stored gives its bytes back too, and one refused after its body is read.
    second.send(body.subarray(MB - 10));
    expect((await second.answer).status).toBe(201);
    const bad = openPublish(port, topic, 512 * KB, Buffer.from('{'));
    bad.send(Buffer.from(' '.repeat(512 * KB - 1)));
    expect((await bad.answer).status).toBe(400);
    expect(await metricReaches(url, HELD, 0)).toBe(0);

    // With the budget free again, publishes go through.
    const after = await post(`${url}/v1/topics/${topic}/messages`, bodyOf(100), {
      'content-type': 'application/json',
    });
    expect(after.status).toBe(201);
    const { rows } = await database.pool.query(
      'SELECT count(*)::int AS n FROM queue_messages WHERE topic = $1',
      [topic],
    );
    expect(rows[0].n).toBe(2);
  }, 30_000);

  it('answers a body not whole within QUEUE_BODY_TIMEOUT with 408 naming body, closes the connection and gives its bytes back', async () => {
    const { url, port } = await startQueue({
      QUEUE_BODY_LIMIT: MB,
      QUEUE_PUBLISH_MEMORY: 2 * MB,
      QUEUE_BODY_TIMEOUT: 300,
    });
    const topic = `slow-${randomUUID().slice(0, 8)}`;
    const before = await metric(url, REFUSED, 'reason="slow_body"');
    // Two clients that declare the largest body: one sends nothing, the other half of it, then stops.
    const idle = openPublish(port, topic, MB, Buffer.alloc(0));
    const half = openPublish(port, topic, MB, bodyOf(MB).subarray(0, MB / 2));
    expect(await metricReaches(url, HELD, MB / 2)).toBe(MB / 2);
    // Meanwhile the budget still has room for others.
    const other = await post(`${url}/v1/topics/${topic}/messages`, bodyOf(100), {
      'content-type': 'application/json',
    });
    expect(other.status).toBe(201);
    for (const stalled of [idle, half]) {
      const answer = await stalled.answer; // resolves once the queue has closed the socket
      expect(answer.status).toBe(408);
      expect(answer.body).toContain('application/problem+json');
      expect(answer.body).toMatch(/connection: close/i);
      expect(answer.body).toContain('"field":"body"');
      expect(answer.body).toContain('did not arrive whole within 0.3 s (QUEUE_BODY_TIMEOUT)');
    }
    expect(await metric(url, REFUSED, 'reason="slow_body"')).toBe(before + 2);
    expect(await metricReaches(url, HELD, 0)).toBe(0);
  });

  it('always takes one body of the largest size, whatever the budget says', async () => {
    const { url } = await startQueue({ QUEUE_BODY_LIMIT: 2 * MB, QUEUE_PUBLISH_MEMORY: MB });
    expect(await metric(url, 'queue_publish_memory_limit_bytes')).toBe(2 * MB);
    const res = await post(`${url}/v1/topics/lone-${randomUUID().slice(0, 8)}/messages`, bodyOf(2 * MB), {
      'content-type': 'application/json',
    });
    expect(res.status).toBe(201);
    expect(res.body.accepted).toBe(1);
    expect(await metricReaches(url, HELD, 0)).toBe(0);
  });
});

describe('POST /v1/topics/:topic/messages with a body that is not JSON', () => {
  it.each([
    ['text/plain', { 'content-type': 'text/plain' }, 'text/plain'],
    ['no content type', {}, 'no content type'],
    ['no content type, chunked', { 'transfer-encoding': 'chunked' }, 'no content type'],
  ])('answers %s with 415 naming content-type, counted and logged', async (_case, headers, named) => {
    const { url } = await startQueue({ QUEUE_BODY_LIMIT: MB, QUEUE_PUBLISH_MEMORY: 2 * MB });
    const before = await metric(url, REFUSED, 'reason="unsupported_media_type"');
    const requestId = `media-${randomUUID().slice(0, 8)}`;
    const res = await post(`${url}/v1/topics/p1/messages`, Buffer.from('{"payload":1}'), {
      ...headers,
      'x-request-id': requestId,
    });
    expect(res.status).toBe(415);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.errors).toEqual([
      { field: 'content-type', message: `Send the body as application/json, not ${named}.` },
    ]);
    expect(await metric(url, REFUSED, 'reason="unsupported_media_type"')).toBe(before + 1);
    expect(logLines).toContainEqual(
      expect.objectContaining({
        msg: 'publish refused',
        requestId,
        reason: 'unsupported_media_type',
        field: 'content-type',
        topic: 'p1',
      }),
    );
  });
});
