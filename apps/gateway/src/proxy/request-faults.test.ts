import { createServer, type IncomingHttpHeaders, request as httpRequest, type Server } from 'node:http';
import { connect } from 'node:net';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { RunningServer } from '@gpu-telemetry/service-kit';
import request from 'supertest';
import type { GatewayApp } from '../app';
import { createTestGateway, listenGateway, serve } from '../testing/gateway-test-app';
import { metric, type RawAnswer, rawRequest } from '../testing/http-probes';
import type { GatewayDatabase } from '../gateway.tables';

/**
 * What a client sends must never take an upstream away from everyone else: `Expect` is answered
 * by the gateway and never forwarded, and only upstream faults (connect errors, resets, timeouts,
 * 5xx) count toward a circuit breaker, never a request's own failure (client gone, body too slow
 * or too large). Through the production server, with node:http clients (undici will not send Expect).
 */
const ADMIN = 'bootstrap-admin-key-for-request-faults-0123456789';
let database: TestDatabase<GatewayDatabase>;
let upstream: Server;
let upstreamUrl: string;
let failing = false;
/** Status the upstream answers with when set (instead of 200 or 500). */
let answering: number | undefined;
/** Requests to a `slow` path the upstream saw closed before it answered them (after 2 s). */
let abandoned = 0;
const seen: { method?: string; url?: string; headers: IncomingHttpHeaders; bytes: number }[] = [];

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  upstream = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, bytes });
      const answer = () => {
        res.writeHead(answering ?? (failing ? 500 : 200), { 'content-type': 'application/json' });
        res.end(JSON.stringify({ bytes }));
      };
      if (!req.url?.includes('slow')) return answer();
      const timer = setTimeout(answer, 2_000);
      res.on('close', () => {
        if (res.writableFinished) return;
        clearTimeout(timer);
        abandoned++;
      });
    });
  });
  upstreamUrl = await serve(upstream);
});

afterAll(async () => {
  upstream.closeAllConnections();
  upstream.close();
  await database.drop();
});

async function start(env: Record<string, string> = {}) {
  const gateway = createTestGateway(database, {
    GATEWAY_ADMIN_KEY: ADMIN,
    GATEWAY_STREAMER_URLS: upstreamUrl,
    GATEWAY_QUEUE_URLS: upstreamUrl,
    GATEWAY_COLLECTOR_URLS: upstreamUrl,
    GATEWAY_BREAKER_FAILURES: '3',
    GATEWAY_BREAKER_COOLDOWN: '1m',
    GATEWAY_RECORDS: 'false',
    ...env,
  });
  const { server, base } = await listenGateway(gateway);
  const readKey = (
    await request(base)
      .post('/api/v1/keys')
      .set('x-api-key', ADMIN)
      .send({ name: 'r', scopes: ['read'] })
  ).body.key as string;
  return { gateway, server, base, readKey };
}

async function stop(running: { gateway: GatewayApp; server: RunningServer }): Promise<void> {
  await running.server.close();
  await running.gateway.close();
}

interface Answer {
  status: number;
  /** Whether the gateway sent 100 Continue before its final answer. */
  continued: boolean;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A request as curl sends a large body: `Expect: 100-continue`, and the body only after the
 * go-ahead. A final answer instead of 100 means the body is never sent.
 */
function expectContinue(
  base: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: Buffer; expect?: string },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let continued = false;
    const body = options.body ?? Buffer.alloc(0);
    const req = httpRequest(`${base}${path}`, {
      method: options.method ?? 'POST',
      agent: false,
      headers: {
        expect: options.expect ?? '100-continue',
        ...(options.method === 'GET' ? {} : { 'content-length': String(body.length) }),
        ...options.headers,
      },
    });
    req.on('continue', () => {
      continued = true;
      req.end(body);
    });
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, continued, headers: res.headers, body: text });
        req.destroy();
      });
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

/** Sends the headers and part of the body, then drops the connection. */
function abandonUpload(base: string, path: string, key: string): Promise<void> {
  return new Promise((resolve) => {
    const req = httpRequest(`${base}${path}`, {
      method: 'POST',
      agent: false,
      headers: { 'x-api-key': key, 'content-length': '100000', 'content-type': 'application/json' },
    });
    req.on('error', () => resolve());
    req.write(Buffer.alloc(1000, 'x'), () => setTimeout(() => req.destroy(), 50));
    req.on('close', () => resolve());
  });
}

describe('Expect: 100-continue', () => {
  it('gets 100 Continue once the request passed the edge checks, and the body is proxied without Expect', async () => {
    const running = await start();
    try {
      const body = Buffer.alloc(2 * 1024 * 1024, 'x');
      const answer = await expectContinue(running.base, '/api/v1/targets', {
        headers: { 'x-api-key': ADMIN, 'content-type': 'application/octet-stream' },
        body,
      });
      expect(answer).toMatchObject({ status: 200, continued: true });
      expect(JSON.parse(answer.body)).toEqual({ bytes: body.length });
      expect(seen.at(-1)?.headers['expect']).toBeUndefined();
      expect(seen.at(-1)?.bytes).toBe(body.length);
    } finally {
      await stop(running);
    }
  });

  it('gets the final answer instead of 100 Continue when the request is refused, and never sends its body', async () => {
    const running = await start({ GATEWAY_BODY_LIMIT: '1kb' });
    try {
      const before = seen.length;
      const unauthenticated = await expectContinue(running.base, '/api/v1/targets', {
        headers: { 'x-api-key': 'gt_not-a-key-0123456789' },
        body: Buffer.alloc(10),
      });
      expect(unauthenticated).toMatchObject({ status: 401, continued: false });
      expect(unauthenticated.headers['content-type']).toContain('application/problem+json');
      const forbidden = await expectContinue(running.base, '/api/v1/targets', {
        headers: { 'x-api-key': running.readKey },
        body: Buffer.alloc(10),
      });
      expect(forbidden).toMatchObject({ status: 403, continued: false });
      const tooLarge = await expectContinue(running.base, '/api/v1/targets', {
        headers: { 'x-api-key': ADMIN },
        body: Buffer.alloc(4096),
      });
      expect(tooLarge).toMatchObject({ status: 413, continued: false });
      expect(seen.length).toBe(before);
    } finally {
      await stop(running);
    }
  });

  it('refuses an HTTP/1.1 request without Host before any Continue, naming host, as it refuses one without Expect', async () => {
    const running = await start();
    try {
      const before = seen.length;
      const port = new URL(running.base).port;
      for (const expectation of ['100-continue', 'something-else']) {
        const raw = await new Promise<string>((resolve) => {
          let text = '';
          const socket = connect(Number(port), '127.0.0.1', () =>
            socket.write(
              `POST /api/v1/targets HTTP/1.1\r\nx-api-key: ${ADMIN}\r\nExpect: ${expectation}\r\n` +
                'Content-Length: 2\r\n\r\n',
            ),
          );
          socket.setEncoding('utf8');
          socket.on('data', (chunk: string) => (text += chunk));
          socket.on('close', () => resolve(text));
          socket.on('error', () => resolve(text));
        });
        expect(raw).toMatch(/^HTTP\/1.1 400 /);
        expect(raw).not.toContain('100 Continue');
        expect(JSON.parse(raw.split('\r\n\r\n')[1] ?? '')).toMatchObject({ errors: [{ field: 'host' }] });
      }
      expect(seen.length).toBe(before);
    } finally {
      await stop(running);
    }
  });

  it('answers the gateway’s own routes too, and any other expectation with 417', async () => {
    const running = await start();
    try {
      const created = await expectContinue(running.base, '/api/v1/keys', {
        headers: { 'x-api-key': ADMIN, 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify({ name: 'via-expect', scopes: ['read'] })),
      });
      expect(created).toMatchObject({ status: 201, continued: true });
      const refused = await expectContinue(running.base, '/api/v1/gpus', {
        method: 'GET',
        headers: { 'x-api-key': ADMIN },
        expect: 'something-else',
      });
      expect(refused).toMatchObject({ status: 417, continued: false });
      expect(refused.headers['content-type']).toContain('application/problem+json');
      expect(JSON.parse(refused.body).detail).toContain('100-continue');
      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'expectation' })).toBe(1);
    } finally {
      await stop(running);
    }
  });
});

describe('answers to a body the gateway will not forward', () => {
  /** A raw request (node:http, chunked unless content-length is given); the answer read whole. */
  const send = (
    base: string,
    path: string,
    options: { method: string; headers: Record<string, string>; body: Buffer },
  ): Promise<RawAnswer> => rawRequest(`${base}${path}`, options).answer;

  it('answers 413 naming the body, whether the body says its length or streams past the limit', async () => {
    const running = await start({ GATEWAY_BODY_LIMIT: '1kb' });
    try {
      const headers = { 'x-api-key': ADMIN, 'content-type': 'application/json' };
      const declared = await send(running.base, '/api/v1/targets', {
        method: 'POST',
        headers: { ...headers, 'content-length': '2048' },
        body: Buffer.alloc(2048, 'x'),
      });
      const streamed = await send(running.base, '/api/v1/targets', {
        method: 'POST',
        headers,
        body: Buffer.alloc(2048, 'x'),
      });
      for (const answer of [declared, streamed]) {
        expect(answer.status).toBe(413);
        expect(answer.headers['content-type']).toContain('application/problem+json');
        expect(answer.body).toMatchObject({
          status: 413,
          detail: 'The body is larger than the 1024-byte limit.',
          errors: [{ field: 'body', message: 'must be at most 1024 bytes' }],
        });
      }
      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'body_too_large' })).toBe(2);
    } finally {
      await stop(running);
    }
  });
});

describe('a client that leaves before the answer', () => {
  it('ends the upstream request, frees its slot and records it as 499', async () => {
    // Two requests in flight at most: slots that leaked would refuse the request after them.
    const running = await start({ GATEWAY_MAX_CONCURRENCY: '2' });
    try {
      const before = abandoned;
      for (let i = 0; i < 3; i++) {
        await new Promise<void>((resolve) => {
          const req = httpRequest(`${running.base}/api/v1/gpus?slow=${i}`, {
            agent: false,
            headers: { 'x-api-key': running.readKey },
          });
          req.on('error', () => resolve());
          req.on('close', () => resolve());
          req.end(() => setTimeout(() => req.destroy(), 200));
        });
      }
      // The upstream saw each one closed well before its 2 s answer was due.
      const deadline = Date.now() + 1_500;
      while (abandoned < before + 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(abandoned).toBe(before + 3);
      await request(running.base).get('/api/v1/gpus').set('x-api-key', running.readKey).expect(200);
      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'client_closed' })).toBe(3);
      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'concurrency' })).toBe(0);
      expect(
        await metric(running.base, 'gateway_proxy_request_duration_seconds_count', {
          route: 'gpus',
          status: '499',
        }),
      ).toBe(3);
      expect(await metric(running.base, 'gateway_breaker_state')).toBe(0);
    } finally {
      await stop(running);
    }
  });
});

describe('circuit breaker', () => {
  it('is not opened by answers an upstream gives one request while up (503, 504)', async () => {
    const running = await start();
    try {
      for (const status of [503, 504]) {
        answering = status;
        try {
          // Past the three failures that open it, each answer is still the upstream's own.
          for (let i = 0; i < 5; i++) {
            const res = await request(running.base).get('/api/v1/gpus').set('x-api-key', running.readKey);
            expect(res.status).toBe(status);
            expect(res.text).not.toContain('circuit is open');
          }
        } finally {
          answering = undefined;
        }
      }
      expect(await metric(running.base, 'gateway_breaker_state')).toBe(0);
      await request(running.base).get('/api/v1/gpus').set('x-api-key', running.readKey).expect(200);
    } finally {
      await stop(running);
    }
  });

  it('stays closed for others after many Expect requests from one read key (which undici would refuse)', async () => {
    const running = await start();
    try {
      for (let i = 0; i < 12; i++) {
        const answer = await expectContinue(running.base, '/api/v1/gpus', {
          method: 'GET',
          headers: { 'x-api-key': running.readKey },
        });
        expect(answer.status).toBe(200);
      }
      // And on a plain server, where Node answers 100-continue by itself.
      const plain = createServer(running.gateway.handler);
      const plainBase = await serve(plain);
      try {
        for (let i = 0; i < 12; i++) {
          const answer = await expectContinue(plainBase, '/api/v1/gpus', {
            method: 'GET',
            headers: { 'x-api-key': running.readKey },
          });
          expect(answer.status).toBe(200);
        }
      } finally {
        plain.close();
      }
      await request(running.base).get('/api/v1/gpus').set('x-api-key', ADMIN).expect(200);
      expect(await metric(running.base, 'gateway_breaker_state')).toBe(0);
      expect(await metric(running.base, 'gateway_upstream_errors_total')).toBe(0);
    } finally {
      await stop(running);
    }
  });

  it('does not count clients that leave mid-body or send it slowly, and still opens on upstream 5xx', async () => {
    const running = await start({ GATEWAY_TIMEOUT: '300ms' });
    try {
      for (let i = 0; i < 6; i++) await abandonUpload(running.base, '/api/v1/targets', ADMIN);
      // A body dripped slower than the upstream timeout is not the upstream's failure: it goes through.
      for (let i = 0; i < 4; i++) {
        const status = await new Promise<number>((resolve, reject) => {
          const req = httpRequest(`${running.base}/api/v1/targets`, {
            method: 'POST',
            agent: false,
            headers: { 'x-api-key': ADMIN, 'content-length': '20' },
          });
          req.on('response', (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
            req.destroy();
          });
          req.on('error', reject);
          req.write('0123456789');
          setTimeout(() => req.writable && req.end('0123456789'), 800).unref();
        });
        expect(status).toBe(200);
      }
      const before = seen.length;
      await request(running.base).get('/api/v1/targets').set('x-api-key', running.readKey).expect(200);
      expect(seen.length).toBe(before + 1);
      expect(await metric(running.base, 'gateway_breaker_state')).toBe(0);
      expect(await metric(running.base, 'gateway_rejected_total', { reason: 'client_closed' })).toBe(6);
      expect(
        await metric(running.base, 'gateway_upstream_errors_total', { route: 'targets', fault: 'request' }),
      ).toBe(6);
      expect(await metric(running.base, 'gateway_upstream_errors_total', { fault: 'upstream' })).toBe(0);

      // A real upstream failure still opens it: three 500s, then 503 without calling the upstream.
      failing = true;
      try {
        for (let i = 0; i < 3; i++) {
          await request(running.base).get('/api/v1/targets').set('x-api-key', running.readKey).expect(500);
        }
        const calls = seen.length;
        const open = await request(running.base)
          .get('/api/v1/targets')
          .set('x-api-key', running.readKey)
          .expect(503);
        expect(open.body.detail).toContain('circuit is open');
        expect(seen.length).toBe(calls);
        expect(await metric(running.base, 'gateway_breaker_state')).toBe(1);
      } finally {
        failing = false;
      }
    } finally {
      await stop(running);
    }
  });

  it('still opens when the upstream cannot be reached', async () => {
    const running = await start({ GATEWAY_STREAMER_URLS: 'http://127.0.0.1:9' });
    try {
      // Each GET is tried twice (a refused connection is retried once): two requests open it.
      await request(running.base).get('/api/v1/gpus').set('x-api-key', running.readKey).expect(502);
      await request(running.base).get('/api/v1/gpus').set('x-api-key', running.readKey).expect(503);
      await request(running.base).get('/api/v1/gpus').set('x-api-key', running.readKey).expect(503);
      expect(
        await metric(running.base, 'gateway_upstream_errors_total', {
          route: 'gpus',
          fault: 'upstream',
          code: 'ECONNREFUSED',
        }),
      ).toBeGreaterThanOrEqual(3);
    } finally {
      await stop(running);
    }
  });
});
