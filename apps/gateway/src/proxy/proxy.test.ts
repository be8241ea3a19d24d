import { createServer, type IncomingMessage, type Server, request as httpRequest } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { Pool } from 'pg';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { type RunningServer, serviceAuthorization } from '@gpu-telemetry/service-kit';
import request from 'supertest';
import type { GatewayApp } from '../app';
import { createTestGateway, listenGateway, serve } from '../testing/gateway-test-app';
import { linesLogger, TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import type { GatewayDatabase } from '../gateway.tables';

/**
 * The gateway in front of real HTTP upstreams: an echo server that reports what reached it, one
 * that never answers, and a port nobody listens on.
 */
const ADMIN = 'bootstrap-admin-key-for-tests-0123456789';
let database: TestDatabase<GatewayDatabase>;
let echo: Server;
let echoUrl: string;
const seen: { method?: string; url?: string; headers: IncomingMessage['headers']; bytes: number }[] = [];

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  echo = createServer((req, res) => {
    if (req.url?.startsWith('/v1/targets/slow')) return; // never answers
    if (req.url?.startsWith('/v1/targets/events')) {
      // Server-sent events: one now, one after the client has seen the first.
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: first\n\n');
      const timer = setTimeout(() => res.end('data: second\n\n'), 400);
      req.on('close', () => clearTimeout(timer));
      return;
    }
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, bytes });
      res.writeHead(200, {
        'content-type': 'application/json',
        connection: 'keep-alive, x-upstream-secret',
        'keep-alive': 'timeout=5',
        'x-upstream-secret': 'hop',
        'x-kept': 'yes',
      });
      res.end(JSON.stringify({ ok: true, bytes }));
    });
  });
  echoUrl = await serve(echo);
});

afterAll(async () => {
  echo.closeAllConnections();
  echo.close();
  await database.drop();
});

function gateway(
  env: Record<string, string> = {},
  logger?: Parameters<typeof createTestGateway>[2],
): GatewayApp {
  return createTestGateway(
    database,
    {
      GATEWAY_ADMIN_KEY: ADMIN,
      GATEWAY_COLLECTOR_URLS: echoUrl,
      GATEWAY_STREAMER_URLS: echoUrl,
      GATEWAY_QUEUE_URLS: 'http://127.0.0.1:9',
      GATEWAY_TIMEOUT: '500ms',
      ...env,
    },
    logger,
  );
}

let main: GatewayApp;
let server: RunningServer;
let base: string;

beforeAll(async () => {
  main = gateway();
  ({ server, base } = await listenGateway(main));
});

afterAll(async () => {
  await server.close();
  await main.close();
});

const api = () => request(base);

async function key(scopes: string[]): Promise<string> {
  const res = await api()
    .post('/api/v1/keys')
    .set('authorization', `Bearer ${ADMIN}`)
    .send({ name: scopes.join('+'), scopes })
    .expect(201);
  expect(res.body.key).toMatch(/^gt_/);
  return res.body.key;
}

describe('authentication and scopes', () => {
  it('takes Prometheus remote write with a publish key for the telemetry topic, and passes it on as sent', async () => {
    const create = async (name: string, topics?: string[]) =>
      (
        await api()
          .post('/api/v1/keys')
          .set('x-api-key', ADMIN)
          .send({ name, scopes: ['publish'], ...(topics ? { topics } : {}) })
          .expect(201)
      ).body.key as string;
    const writer = await create('prometheus', ['telemetry']);
    const elsewhere = await create('jobs only', ['jobs']);
    const reader = await key(['read']);
    const body = Buffer.from([0x0a, 0x00, 0xff, 0x01]);
    const send = (k: string) =>
      api()
        .post('/api/v1/write')
        .set('authorization', `Bearer ${k}`)
        .set('content-type', 'application/x-protobuf')
        .set('content-encoding', 'snappy')
        .set('x-prometheus-remote-write-version', '0.1.0')
        .send(body);
    expect((await send(reader).expect(403)).body.detail).toContain('"publish" scope');
    expect((await send(elsewhere).expect(403)).body.detail).toContain('other topics than "telemetry"');
    await send(writer).expect(200);
    expect(seen.at(-1)).toMatchObject({ method: 'POST', url: '/v1/write', bytes: body.length });
    expect(seen.at(-1)?.headers).toMatchObject({
      authorization: serviceAuthorization(TEST_SERVICE_TOKEN),
      'content-type': 'application/x-protobuf',
      'content-encoding': 'snappy',
      'x-prometheus-remote-write-version': '0.1.0',
    });
  });

  it('keeps health open and refuses /api without a key or with a bad one', async () => {
    await api().get('/healthz').expect(200);
    const missing = await api().get('/api/v1/gpus').expect(401);
    expect(missing.headers['www-authenticate']).toBe('Bearer');
    expect(missing.headers['content-type']).toContain('application/problem+json');
    await api().get('/api/v1/gpus').set('authorization', 'Bearer nope').expect(401);
    await api().get('/api/v1/gpus').set('x-api-key', 'nope').expect(401);
  });

  it('lets a read key read, refuses it writes with 403, and honours revocation', async () => {
    const reader = await key(['read']);
    await api().get('/api/v1/gpus').set('authorization', `Bearer ${reader}`).expect(200);
    await api().get('/api/v1/targets').set('x-api-key', reader).expect(200);
    const refused = await api()
      .post('/api/v1/targets')
      .set('x-api-key', reader)
      .send({ url: 'http://x' })
      .expect(403);
    expect(refused.body.detail).toContain('"admin" scope');
    const listed = await api().get('/api/v1/keys').set('x-api-key', ADMIN).expect(200);
    const id = listed.body.keys.find((k: { prefix: string }) => reader.startsWith(k.prefix)).id;
    expect(JSON.stringify(listed.body)).not.toContain(reader);
    await api().delete(`/api/v1/keys/${id}`).set('x-api-key', ADMIN).expect(200);
    const fresh = gateway(); // another replica: no cache of the key
    await request(fresh.handler).get('/api/v1/gpus').set('x-api-key', reader).expect(401);
    await fresh.close();
  });

  it('needs an admin key to manage keys, and names bad fields', async () => {
    const publisher = await key(['publish']);
    await api().get('/api/v1/keys').set('x-api-key', publisher).expect(403);
    await api().get('/api/v1/keys').expect(401);
    const bad = await api()
      .post('/api/v1/keys')
      .set('x-api-key', ADMIN)
      .send({ name: 'x', scopes: ['root'] })
      .expect(400);
    expect(bad.body.errors[0].field).toBe('scopes[0]');
  });
});

describe('proxying', () => {
  it('forwards to the route upstream with X-Forwarded-*, request id and trace context, and strips hop-by-hop headers and credentials', async () => {
    const reader = await key(['read']);
    const res = await api()
      .get('/api/v1/gpus/GPU-1/telemetry?metric=DCGM_FI_DEV_GPU_UTIL')
      .set('authorization', `Bearer ${reader}`)
      .set('x-request-id', 'req-42')
      .set('traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
      .set('connection', 'keep-alive, x-client-secret')
      .set('x-client-secret', 'hop')
      .set('keep-alive', 'timeout=5')
      .set('proxy-authorization', 'Basic abc')
      .set('te', 'trailers')
      .set('x-forwarded-uri', '/somewhere/else')
      .expect(200);
    const upstream = seen.at(-1);
    expect(upstream?.url).toBe('/v1/gpus/GPU-1/telemetry?metric=DCGM_FI_DEV_GPU_UTIL');
    expect(upstream?.headers).toMatchObject({
      // The path the caller asked for, whatever it claimed (the query is in the request line once):
      // the upstream names it in its 404s and 405s.
      'x-forwarded-uri': '/api/v1/gpus/GPU-1/telemetry',
      'x-request-id': 'req-42',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': expect.stringContaining('127.0.0.1'),
    });
    // The client's credential stays at the gateway; the upstream gets the service credential.
    expect(upstream?.headers['authorization']).toBe(serviceAuthorization(TEST_SERVICE_TOKEN));
    for (const header of ['x-api-key', 'x-client-secret', 'keep-alive', 'proxy-authorization', 'te']) {
      expect(upstream?.headers[header]).toBeUndefined();
    }
    expect(res.headers['x-request-id']).toBe('req-42');
    expect(res.headers['x-kept']).toBe('yes');
    expect(res.headers['x-upstream-secret']).toBeUndefined();
    expect(res.headers['keep-alive']).not.toBe('timeout=5');
  });

  it('drops what a client that is no trusted proxy claims of its way here, and says what the gateway saw', async () => {
    const reader = await key(['read']);
    await api()
      .get('/api/v1/gpus')
      .set('x-api-key', reader)
      .set('x-forwarded-for', '10.0.0.1, 203.0.113.9')
      .set('x-forwarded-proto', 'https')
      .set('x-forwarded-host', 'admin.internal')
      .set('x-forwarded-port', '443')
      .set('forwarded', 'for=10.0.0.1;proto=https')
      .expect(200);
    const sent = seen.at(-1)?.headers;
    expect(sent).toMatchObject({
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': new URL(base).host,
    });
    expect(sent?.['x-forwarded-port']).toBeUndefined();
    expect(sent?.['forwarded']).toBeUndefined();
  });

  it("passes a trusted proxy's chain on from the client, its X-Forwarded-Proto and -Host too, and drops what the client claimed further left", async () => {
    const behind = gateway({ GATEWAY_TRUSTED_PROXIES: '127.0.0.1,10.0.0.0/8' });
    const { server: fronted, base: at } = await listenGateway(behind);
    try {
      const reader = await key(['read']);
      await request(at)
        .get('/api/v1/gpus')
        .set('x-api-key', reader)
        // The client's own claim (192.0.2.66), the client as the ingress saw it, an inner proxy.
        .set('x-forwarded-for', '192.0.2.66, 203.0.113.9, 10.1.2.3')
        .set('x-forwarded-proto', 'https')
        .set('x-forwarded-host', 'gpu.example.com')
        .set('forwarded', 'for=203.0.113.9;proto=https')
        .expect(200);
      expect(seen.at(-1)?.headers).toMatchObject({
        'x-forwarded-for': '203.0.113.9, 10.1.2.3, 127.0.0.1',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'gpu.example.com',
        forwarded: 'for=203.0.113.9;proto=https',
      });
      // A trusted proxy that names no client: the peer alone, and what the gateway saw.
      await request(at).get('/api/v1/gpus').set('x-api-key', reader).expect(200);
      expect(seen.at(-1)?.headers).toMatchObject({
        'x-forwarded-for': '127.0.0.1',
        'x-forwarded-proto': 'http',
        'x-forwarded-host': new URL(at).host,
      });
    } finally {
      await fronted.close();
      await behind.close();
    }
  });

  it('warns once at start-up when GATEWAY_TRUSTED_PROXIES trusts every address', async () => {
    const { logger, lines } = keptLogs();
    const everyone = gateway({ GATEWAY_TRUSTED_PROXIES: '10.0.0.0/8,0.0.0.0/0,::/0' }, logger);
    try {
      expect(lines).toEqual([
        expect.objectContaining({
          level: 'warn',
          trustedProxies: ['0.0.0.0/0', '::/0'],
          msg: expect.stringContaining('any client can choose its own address'),
        }),
      ]);
      // As it says: a client names itself.
      const reader = await key(['read']);
      await request(everyone.handler)
        .get('/api/v1/gpus')
        .set('x-api-key', reader)
        .set('x-forwarded-for', '198.51.100.200')
        .expect(200);
      expect(seen.at(-1)?.headers['x-forwarded-for']).toMatch(/^198\.51\.100\.200, /);
    } finally {
      await everyone.close();
    }
    const quiet = keptLogs();
    const narrow = gateway({ GATEWAY_TRUSTED_PROXIES: '10.0.0.0/8' }, quiet.logger);
    await narrow.close();
    expect(quiet.lines).toEqual([]);
  });

  it('passes an IPv4 client on as IPv4 in X-Forwarded-For when it listens on every address (dual-stack)', async () => {
    const open = gateway();
    const { server: everywhere, base: at } = await listenGateway(open, '');
    try {
      expect((everywhere.server.address() as { address: string }).address).toBe('::');
      const reader = await key(['read']);
      await request(at).get('/api/v1/gpus').set('authorization', `Bearer ${reader}`).expect(200);
      // The socket's peer is ::ffff:127.0.0.1 on a dual-stack socket; the upstream is told 127.0.0.1.
      expect(seen.at(-1)?.headers['x-forwarded-for']).toBe('127.0.0.1');
    } finally {
      await everywhere.close();
      await open.close();
    }
  });

  it('starts a trace and a request id when the caller sends none', async () => {
    const reader = await key(['read']);
    const res = await api().get('/api/v1/gpus').set('x-api-key', reader).expect(200);
    expect(seen.at(-1)?.headers['traceparent']).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(res.headers['x-request-id']).toBe(seen.at(-1)?.headers['x-request-id']);
  });

  it.each([
    ['all-zero trace id', '00-00000000000000000000000000000000-00f067aa0ba902b7-01'],
    ['all-zero span id', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'],
    ['malformed', '00-xyz-01'],
  ])(
    'starts a new trace for a traceparent with %s, and drops the tracestate that came with it',
    async (_, bad) => {
      const reader = await key(['read']);
      await api()
        .get('/api/v1/gpus')
        .set('x-api-key', reader)
        .set('traceparent', bad)
        .set('tracestate', 'v=1')
        .expect(200);
      const sent = seen.at(-1)?.headers;
      expect(sent?.['traceparent']).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      expect(sent?.['traceparent']).not.toBe(bad);
      expect(sent?.['traceparent']).not.toMatch(/^00-0{32}-|-0{16}-/);
      expect(sent?.['tracestate']).toBeUndefined();
    },
  );

  it('streams a large request body through without buffering limits of its own', async () => {
    const admin = ADMIN;
    const body = Buffer.alloc(5 * 1024 * 1024, 'x');
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        `${base}/api/v1/targets`,
        {
          method: 'POST',
          headers: {
            'x-api-key': admin,
            'content-type': 'application/octet-stream',
            'transfer-encoding': 'chunked',
          },
        },
        (r) => {
          let text = '';
          r.on('data', (c) => (text += c));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      for (let i = 0; i < body.length; i += 65_536) req.write(body.subarray(i, i + 65_536));
      req.end();
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).bytes).toBe(5 * 1024 * 1024);
  });

  it('passes server-sent events through as they come, unbuffered', async () => {
    const started = Date.now();
    const arrivals = await new Promise<{ text: string; at: number }[]>((resolve, reject) => {
      const req = httpRequest(
        `${base}/api/v1/targets/events`,
        { headers: { 'x-api-key': ADMIN, accept: 'text/event-stream' } },
        (res) => {
          expect(res.headers['content-type']).toBe('text/event-stream');
          const seen: { text: string; at: number }[] = [];
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => seen.push({ text: chunk, at: Date.now() - started }));
          res.on('end', () => resolve(seen));
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(arrivals.map((a) => a.text).join('')).toBe('data: first\n\ndata: second\n\n');
    expect(arrivals[0]?.text).toBe('data: first\n\n');
    expect(arrivals[0]?.at).toBeLessThan(300);
  });

  it('answers 502 when the upstream is unreachable and 504 when it does not answer in time', async () => {
    const publisher = await key(['publish']);
    const down = await api()
      .post('/api/v1/topics/t/messages')
      .set('x-api-key', publisher)
      .send({ payload: 1 })
      .expect(502);
    expect(down.body).toMatchObject({ status: 502, requestId: expect.any(String) });
    expect(down.body.detail).toContain('topics is unreachable');
    const started = Date.now();
    const slow = await api().get('/api/v1/targets/slow').set('x-api-key', ADMIN).expect(504);
    expect(slow.body.detail).toContain('did not answer within 500 ms');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('refuses a body over the limit with 413 before contacting the upstream', async () => {
    const small = gateway({ GATEWAY_BODY_LIMIT: '1kb' });
    const before = seen.length;
    await request(small.handler)
      .post('/api/v1/targets')
      .set('x-api-key', ADMIN)
      .send({ pad: 'x'.repeat(2048) })
      .expect(413);
    expect(seen.length).toBe(before);
    await small.close();
  });
});

/** A logger that keeps the gateway's lines from `level` up, parsed. */
function keptLogs(level = 'warn') {
  const lines: Record<string, unknown>[] = [];
  return { logger: linesLogger('gateway', level, lines), lines };
}

/** The URL of a loopback port nobody listens on (listened on, then closed). */
async function closedUrl(): Promise<string> {
  const probe = createServer();
  const url = await serve(probe);
  await new Promise((resolve) => probe.close(resolve));
  return url;
}

describe('readiness', () => {
  it('stays ready while a backend has no instance answering (its routes answer 502/503), and names it', async () => {
    // A replica that accepts connections and never answers (a stopped process).
    const hanging = createNetServer(() => undefined);
    const hangingUrl = await serve(hanging);
    const { logger, lines } = keptLogs();
    try {
      const started = Date.now();
      const res = await request(
        gateway(
          { GATEWAY_STREAMER_URLS: `${hangingUrl},${echoUrl}`, GATEWAY_COLLECTOR_URLS: hangingUrl },
          logger,
        ).handler,
      )
        .get('/readyz')
        .expect(200);
      expect(Date.now() - started).toBeLessThan(1_900);
      expect(res.body.status).toBe('ready');
      // /readyz is open to anyone: which instance failed, and at what address, is the log's to say.
      expect(res.body.checks).toEqual({
        postgres: 'ok',
        streamer: 'ok',
        queue: 'failed',
        collector: 'failed',
      });
      expect(res.text).not.toContain('127.0.0.1');
      const failed = lines.filter((line) => line['msg'] === 'readiness check failed');
      expect(failed.map((line) => line['check']).sort()).toEqual(['collector', 'queue']);
      expect(failed.find((line) => line['check'] === 'queue')?.['err']).toMatchObject({
        message: 'no queue instance answers: queue-0 (http://127.0.0.1:9): connect ECONNREFUSED 127.0.0.1:9',
      });
      expect(failed.find((line) => line['check'] === 'collector')?.['err']).toMatchObject({
        message: expect.stringContaining(`collector-0 (${hangingUrl}): `),
      });
    } finally {
      hanging.close();
    }
  });

  it("answers 503 naming postgres when it is down, without Postgres' error or address, which it logs", async () => {
    const postgresUrl = await closedUrl();
    const pool = new Pool({
      connectionString: `postgres://gateway:secret@${new URL(postgresUrl).host}/gateway`,
      connectionTimeoutMillis: 1_000,
    });
    const { logger, lines } = keptLogs();
    try {
      const down = createTestGateway(
        { ...database, pool },
        {
          GATEWAY_ADMIN_KEY: ADMIN,
          GATEWAY_STREAMER_URLS: echoUrl,
          GATEWAY_QUEUE_URLS: echoUrl,
          GATEWAY_COLLECTOR_URLS: echoUrl,
          GATEWAY_RECORDS: 'false',
        },
        logger,
      );
      const res = await request(down.handler).get('/readyz').expect(503);
      expect(res.body).toMatchObject({
        detail: 'Not ready: postgres unavailable.',
        failed: ['postgres'],
        checks: { postgres: 'failed', streamer: 'ok', queue: 'ok', collector: 'ok' },
      });
      expect(res.text).not.toMatch(/127\.0\.0\.1|ECONNREFUSED/);
      expect(res.text).not.toContain(new URL(postgresUrl).port);
      expect(lines).toContainEqual(
        expect.objectContaining({
          msg: 'readiness check failed',
          check: 'postgres',
          err: expect.objectContaining({ message: `connect ECONNREFUSED ${new URL(postgresUrl).host}` }),
        }),
      );
      await down.close();
    } finally {
      await pool.end();
    }
  });
});

describe('circuit breaker', () => {
  it('opens after consecutive failures, answers 503 with Retry-After without calling the upstream, and closes after a good probe', async () => {
    let healthy = false;
    let calls = 0;
    const flaky = createServer((_req, res) => {
      calls++;
      res.writeHead(healthy ? 200 : 500, { 'content-type': 'application/json' }).end('{}');
    });
    const flakyUrl = await serve(flaky);
    const guarded = gateway({
      GATEWAY_STREAMER_URLS: flakyUrl,
      GATEWAY_BREAKER_FAILURES: '2',
      GATEWAY_BREAKER_COOLDOWN: '300ms',
    });
    const get = () => request(guarded.handler).get('/api/v1/gpus').set('x-api-key', ADMIN);
    await get().expect(500);
    await get().expect(500);
    const open = await get().expect(503);
    expect(open.headers['retry-after']).toBe('1');
    expect(open.body.detail).toContain('circuit is open');
    expect(calls).toBe(2);
    healthy = true;
    await new Promise((resolve) => setTimeout(resolve, 350));
    await get().expect(200); // the half-open probe
    await get().expect(200);
    expect(calls).toBe(4);
    const metrics = await request(guarded.app).get('/metrics').expect(200);
    expect(metrics.text).toMatch(/gateway_breaker_state\{[^}]*upstream="streamer-0"[^}]*\} 0/);
    await guarded.close();
    flaky.close();
  });
});

describe('one upstream instance, whichever route reaches it', () => {
  it('has one breaker: failures on one route open it for every route to the instance, and its one gauge says so', async () => {
    let calls = 0;
    const failing = createServer((_req, res) => {
      calls++;
      res.writeHead(500, { 'content-type': 'application/json' }).end('{}');
    });
    const failingUrl = await serve(failing);
    const guarded = gateway({
      GATEWAY_STREAMER_URLS: failingUrl,
      GATEWAY_BREAKER_FAILURES: '2',
      GATEWAY_BREAKER_COOLDOWN: '10s',
    });
    await request(guarded.handler).get('/api/v1/gpus').set('x-api-key', ADMIN).expect(500);
    await request(guarded.handler).get('/api/v1/gpus').set('x-api-key', ADMIN).expect(500);
    const promql = await request(guarded.handler)
      .get('/prometheus/api/v1/query?query=up')
      .set('x-api-key', ADMIN)
      .expect(503);
    expect(promql.body.detail).toContain('circuit is open');
    expect(calls).toBe(2);
    const metrics = await request(guarded.app).get('/metrics').expect(200);
    const gauges = metrics.text.split('\n').filter((line) => line.startsWith('gateway_breaker_state{'));
    expect(gauges.filter((line) => line.includes('upstream="streamer-0"'))).toEqual([
      expect.stringMatching(/ 1$/),
    ]);
    await guarded.close();
    failing.close();
  });

  it('answers acks at once while more long-polls wait on the queue than a pool has connections', async () => {
    const waiting: IncomingMessage[] = [];
    const queue = createServer((req, res) => {
      if (req.method === 'POST' && /^\/v1\/topics\/[^/]+\/leases$/.test(req.url ?? '')) {
        waiting.push(req); // a long-poll on an idle topic: answered when it ends
        return;
      }
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"acked":1}'));
    });
    const queueUrl = await serve(queue);
    const fronting = gateway({ GATEWAY_QUEUE_URLS: queueUrl });
    const listening = await listenGateway(fronting);
    const polls = new AbortController();
    const post = (path: string, body: object, signal?: AbortSignal) =>
      fetch(`${listening.base}/api/v1/topics/jobs/${path}`, {
        method: 'POST',
        headers: { 'x-api-key': ADMIN, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal,
      });
    const leases = Array.from({ length: 140 }, () =>
      post('leases', { consumer: 'c', waitSeconds: 60 }, polls.signal).catch(() => undefined),
    );
    for (let i = 0; waiting.length < 140 && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
    expect(waiting.length).toBe(140);
    const ack = await post(
      'acks',
      { leaseId: '00000000-0000-4000-8000-000000000000' },
      AbortSignal.timeout(5_000),
    );
    expect(ack.status).toBe(200);
    polls.abort();
    await Promise.all(leases);
    await listening.server.close();
    await fronting.close();
    queue.closeAllConnections();
    queue.close();
  });
});

describe('/metrics', () => {
  it('names each upstream instance by its backend and place in its list, never by its address', async () => {
    const other = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    const otherUrl = await serve(other);
    const deadUrl = await closedUrl();
    const collectorUrl = await closedUrl();
    const { logger, lines } = keptLogs('info');
    const named = gateway(
      {
        GATEWAY_QUEUE_URLS: `${otherUrl},${deadUrl}`,
        GATEWAY_COLLECTOR_URLS: collectorUrl,
        GATEWAY_BREAKER_FAILURES: '1',
      },
      logger,
    );
    try {
      await request(named.handler).get('/api/v1/gpus').set('x-api-key', ADMIN).expect(200);
      const publish = () =>
        request(named.handler)
          .post('/api/v1/topics/jobs/messages')
          .set('x-api-key', ADMIN)
          .send({ payload: 1 });
      expect((await publish()).status).toBe(200); // queue-0
      expect((await publish()).status).toBe(502); // queue-1, whose breaker it opens
      const metrics = (await request(named.app).get('/metrics').expect(200)).text;
      const duration = (upstream: string) =>
        new RegExp(
          `^gateway_proxy_request_duration_seconds_count\\{[^}]*upstream="${upstream}"[^}]*\\} 1$`,
          'm',
        );
      expect(metrics).toMatch(duration('streamer-0'));
      expect(metrics).toMatch(duration('queue-0'));
      expect(metrics).toMatch(duration('queue-1'));
      expect(metrics).toMatch(/^gateway_breaker_state\{[^}]*upstream="queue-1"[^}]*\} 1$/m);
      for (const url of [echoUrl, otherUrl, deadUrl, collectorUrl])
        expect(metrics).not.toContain(new URL(url).host);
      expect(metrics).not.toContain('127.0.0.1');
      // The logs, which only operators read, still say where each went.
      expect(lines).toContainEqual(
        expect.objectContaining({ msg: 'request', status: 502, upstream: 'queue-1', origin: deadUrl }),
      );
    } finally {
      await named.close();
      other.close();
    }
  });
});

describe('rate limits', () => {
  it('sends RateLimit headers and answers 429 with Retry-After when the bucket is empty', async () => {
    const limited = gateway({ GATEWAY_RATE_LIMIT: '1', GATEWAY_RATE_BURST: '2' });
    const ok = await request(limited.handler).get('/api/v1/gpus').set('x-api-key', ADMIN).expect(200);
    expect(ok.headers['ratelimit-limit']).toBe('2');
    expect(ok.headers['ratelimit-remaining']).toBe('1');
    await request(limited.handler).get('/api/v1/gpus').set('x-api-key', ADMIN).expect(200);
    const refused = await request(limited.handler).get('/api/v1/gpus').set('x-api-key', ADMIN).expect(429);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.headers['ratelimit-remaining']).toBe('0');
    expect(refused.headers['content-type']).toContain('application/problem+json');
    await limited.close();
  });

  it("limits the gateway's own routes too, from the same budget as the proxied ones", async () => {
    const limited = gateway({ GATEWAY_RATE_LIMIT: '1', GATEWAY_RATE_BURST: '3' });
    const reader = await key(['read']);
    const own = () => request(limited.handler).get('/api/v1/requests').set('x-api-key', reader);
    const ok = await own().expect(200);
    expect(ok.headers['ratelimit-remaining']).toBe('2');
    await request(limited.handler).get('/api/v1/gpus').set('x-api-key', reader).expect(200);
    await own().expect(200);
    const refused = await own().expect(429);
    expect(refused.headers['content-type']).toContain('application/problem+json');
    expect(refused.headers['retry-after']).toBe('1');
    await request(limited.handler).get('/api/v1/gpus').set('x-api-key', reader).expect(429);
    // Another key has its own budget.
    await request(limited.handler).get('/api/v1/analytics/latency').set('x-api-key', ADMIN).expect(200);
    await limited.close();
  });

  it('counts a client without a key by its IPv6 /64, so rotating addresses within it buys no fresh burst', async () => {
    const open = gateway({
      GATEWAY_AUTH: 'false',
      GATEWAY_TRUSTED_PROXIES: '127.0.0.1,::1',
      GATEWAY_RATE_LIMIT: '1',
      GATEWAY_RATE_BURST: '2',
    });
    const from = (address: string) =>
      request(open.handler).get('/api/v1/gpus').set('x-forwarded-for', address);
    await from('2001:db8:0:1::1').expect(200);
    await from('2001:db8:0:1::2').expect(200);
    await from('2001:db8:0:1:ffff::3').expect(429);
    // Another /64, and an IPv4 address, have buckets of their own.
    await from('2001:db8:0:2::1').expect(200);
    await from('198.51.100.7').expect(200);
    await open.close();
  });
});
