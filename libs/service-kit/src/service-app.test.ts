import { get as httpGet } from 'node:http';
import type { AddressInfo } from 'node:net';
import { brotliCompressSync } from 'node:zlib';
import { AppError, ConflictError } from '@gpu-telemetry/model';
import request from 'supertest';
import { z } from 'zod';
import { createLogger, type Logger } from './logger';
import { createMetrics } from './metrics';
import { spanExportStats } from './span-export-stats';
import { createServiceApp } from './service-app';
import { linesLogger } from './testing';
import { validate } from './validate';

function app(
  options: {
    ready?: boolean;
    hang?: boolean;
    error?: unknown;
    readinessDetail?: 'full' | 'brief';
    logger?: Logger;
    now?: () => number;
  } = {},
) {
  return createServiceApp({
    readinessTimeoutMs: 200,
    readinessDetail: options.readinessDetail,
    now: options.now,
    service: 'demo',
    logger: options.logger ?? createLogger('demo', 'silent'),
    metrics: createMetrics('demo', { defaultMetrics: false }),
    readiness: [
      { name: 'postgres', check: async () => undefined },
      {
        name: 'queue',
        check: async () => {
          if (options.ready === false) throw new Error('connect ECONNREFUSED 127.0.0.1:8081');
          if (options.hang) await new Promise(() => undefined);
        },
      },
    ],
    openapi: {
      openapi: '3.1.0',
      paths: { '/echo': { post: {} }, '/things/{id}': { get: {}, delete: {} }, '/off': { get: {} } },
    },
    routes: (app) => {
      app.get('/things/:id', (req, res) => {
        res.json({ id: req.params['id'] });
      });
      app.delete('/things/:id', (_req, res) => {
        res.status(204).end();
      });
      app.post('/echo', (req, res) => {
        res.json(validate(z.strictObject({ n: z.number().int().min(1) }), req.body));
      });
      app.get('/boom', () => {
        throw options.error;
      });
      app.post('/boom', () => {
        throw options.error;
      });
      app.get('/slow', (_req, res) => {
        const timer = setTimeout(() => res.json({ late: true }), 2_000);
        res.on('close', () => clearTimeout(timer));
      });
    },
  });
}

describe('the service frame', () => {
  it('answers /healthz, and /readyz with every dependency checked', async () => {
    expect((await request(app()).get('/healthz').expect(200)).body).toEqual({
      status: 'ok',
      service: 'demo',
    });
    expect((await request(app()).get('/readyz').expect(200)).body).toEqual({
      status: 'ready',
      service: 'demo',
      checks: { postgres: 'ok', queue: 'ok' },
    });
  });

  it('answers /readyz with 503 problem+json naming the failed dependency and its error', async () => {
    const res = await request(app({ ready: false }))
      .get('/readyz')
      .expect(503);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body).toMatchObject({
      status: 503,
      failed: ['queue'],
      detail: 'Not ready: queue unavailable.',
      checks: { postgres: 'ok', queue: 'failed: connect ECONNREFUSED 127.0.0.1:8081' },
    });
  });

  it('answers /readyz in brief when asked: a failed check is "failed", its error in the log once', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = linesLogger('demo', 'info', lines);
    const options = { ready: false, readinessDetail: 'brief' as const, logger };
    const brief = app(options);
    const answers = await Promise.all(Array.from({ length: 10 }, () => request(brief).get('/readyz')));
    await request(brief).get('/readyz').expect(503);
    for (const res of answers) {
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({
        failed: ['queue'],
        detail: 'Not ready: queue unavailable.',
        checks: { postgres: 'ok', queue: 'failed' },
      });
      expect(res.text).not.toMatch(/127\.0\.0\.1|8081|ECONNREFUSED/);
    }
    const logged = () => lines.filter((line) => line['check'] === 'queue');
    expect(logged()).toEqual([
      expect.objectContaining({
        level: 'warn',
        msg: 'readiness check failed',
        required: true,
        err: expect.objectContaining({ message: 'connect ECONNREFUSED 127.0.0.1:8081' }),
      }),
    ]);
    options.ready = true;
    await request(brief).get('/readyz').expect(200);
    await request(brief).get('/readyz').expect(200);
    expect(logged().map((line) => [line['level'], line['msg']])).toEqual([
      ['warn', 'readiness check failed'],
      ['info', 'readiness check answers again'],
    ]);
  });

  it('names the timeout of a hung check in brief, as it names nothing behind the service', async () => {
    const res = await request(app({ hang: true, readinessDetail: 'brief' }))
      .get('/readyz')
      .expect(503);
    expect(res.body.checks).toEqual({ postgres: 'ok', queue: 'failed: no answer within 200 ms' });
  });

  it('logs a check that stays failed again at most once a minute', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = linesLogger('demo', 'info', lines);
    let now = 0;
    const failing = app({ ready: false, readinessDetail: 'brief', logger, now: () => now });
    for (const at of [0, 1_000, 59_000, 60_000, 61_000, 119_000, 120_000]) {
      now = at;
      await request(failing).get('/readyz').expect(503);
    }
    expect(lines.filter((line) => line['check'] === 'queue').map((line) => line['msg'])).toEqual([
      'readiness check failed',
      'readiness check still failing',
      'readiness check still failing',
    ]);
  });

  it('answers /readyz with 503 promptly when a dependency hangs instead of failing', async () => {
    const started = Date.now();
    const res = await request(app({ hang: true }))
      .get('/readyz')
      .expect(503);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(res.body).toMatchObject({
      failed: ['queue'],
      checks: { postgres: 'ok', queue: 'failed: no answer within 200 ms' },
    });
  });

  it('checks each dependency once for every /readyz that asks while the check runs, however many ask', async () => {
    // /readyz needs no credential: a flood of it must not become a flood of database queries.
    let calls = 0;
    let hang = false;
    const probed = createServiceApp({
      readinessTimeoutMs: 500,
      service: 'demo',
      logger: createLogger('demo', 'silent'),
      metrics: createMetrics('demo', { defaultMetrics: false }),
      readiness: [
        {
          name: 'postgres',
          check: async () => {
            calls++;
            await new Promise((resolve) => setTimeout(resolve, hang ? 1_500 : 250));
          },
        },
      ],
      routes: () => undefined,
    });
    const server = probed.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const ask = () =>
        request(server)
          .get('/readyz')
          .then((res) => res.status);
      expect(await Promise.all(Array.from({ length: 20 }, ask))).toEqual(Array<number>(20).fill(200));
      expect(calls).toBe(1);
      await request(server).get('/readyz').expect(200);
      expect(calls).toBe(2);
      // A check past its timeout is not started again while it still runs.
      hang = true;
      expect(await Promise.all([ask(), ask()])).toEqual([503, 503]);
      await request(server).get('/readyz').expect(503);
      expect(calls).toBe(3);
    } finally {
      server.close();
    }
  });

  it('counts requests by route on /metrics and echoes or creates a request id', async () => {
    const demo = app();
    const res = await request(demo).post('/echo').set('x-request-id', 'abc-123').send({ n: 2 }).expect(200);
    expect(res.headers['x-request-id']).toBe('abc-123');
    expect((await request(demo).get('/healthz')).headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const metrics = (await request(demo).get('/metrics').expect(200)).text;
    expect(metrics).toMatch(
      /http_server_request_duration_seconds_count\{service="demo",method="POST",route="\/echo",status="200"\} 1/,
    );
  });

  it('counts a request the client left before its answer, as 499', async () => {
    const demo = app();
    const server = demo.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      await new Promise<void>((resolve) => {
        const req = httpGet(`http://127.0.0.1:${port}/slow`);
        req.on('error', () => resolve());
        req.on('close', () => resolve());
        setTimeout(() => req.destroy(), 100);
      });
      await new Promise((resolve) => setTimeout(resolve, 50));
      const metrics = (await request(demo).get('/metrics').expect(200)).text;
      expect(metrics).toMatch(
        /http_server_request_duration_seconds_count\{service="demo",method="GET",route="\/slow",status="499"\} 1/,
      );
    } finally {
      server.close();
    }
  });

  it('reports on /metrics what the span exporter has sent, failed to send and dropped', async () => {
    const before = { ...spanExportStats };
    spanExportStats.exported += 7;
    spanExportStats.failed += 2;
    spanExportStats.dropped += 1;
    try {
      const metrics = (await request(app()).get('/metrics').expect(200)).text;
      expect(metrics).toContain(
        `otlp_spans_exported_total{outcome="success",service="demo"} ${before.exported + 7}`,
      );
      expect(metrics).toContain(
        `otlp_spans_exported_total{outcome="failure",service="demo"} ${before.failed + 2}`,
      );
    } finally {
      Object.assign(spanExportStats, before);
    }
  });

  it.each([
    ['a field of the wrong type', { n: 'two' }, 400, 'n'],
    ['an unknown field', { n: 1, m: 2 }, 400, 'm'],
    ['no body at all', undefined, 400, 'n'],
  ])('answers %s with a 400 naming the field', async (_name, body, status, field) => {
    const res = await request(app())
      .post('/echo')
      .send(body as object)
      .expect(status);
    expect(res.body.errors[0].field).toBe(field);
  });

  it('answers malformed JSON, a non-JSON body and an unknown route with problems', async () => {
    expect(
      (await request(app()).post('/echo').set('content-type', 'application/json').send('{"n":').expect(400))
        .body.errors,
    ).toEqual([{ field: 'body', message: 'is not valid JSON' }]);
    expect(
      (await request(app()).post('/echo').set('content-type', 'text/csv').send('n\n1').expect(415)).body
        .errors[0].field,
    ).toBe('content-type');
    expect((await request(app()).get('/nowhere').expect(404)).body.detail).toBe('No route for GET /nowhere.');
  });

  it('names content-encoding when a body is compressed in a way it cannot read, or is not what it says', async () => {
    const unknown = await request(app())
      .post('/echo')
      .set('content-type', 'application/json')
      .set('content-encoding', 'zstd')
      .send('{"n":1}')
      .expect(415);
    expect(unknown.body.errors).toEqual([
      { field: 'content-encoding', message: 'must be gzip, deflate, br or identity' },
    ]);
    for (const encoding of ['br', 'gzip', 'deflate']) {
      const res = await request(app())
        .post('/echo')
        .set('content-type', 'application/json')
        .set('content-encoding', encoding)
        .send('{"n":1}')
        .expect(400);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.body.errors).toEqual([{ field: 'body', message: `is not valid ${encoding} data` }]);
    }
    const packed = await request(app())
      .post('/echo')
      .set('content-type', 'application/json')
      .set('content-encoding', 'br')
      .serialize((bytes: Buffer) => bytes as unknown as string) // as sent, not as JSON
      .send(brotliCompressSync('{"n":3}'))
      .expect(200);
    expect(packed.body).toEqual({ n: 3 });
  });

  it('reads no body of a GET: whatever it is, the GET is answered', async () => {
    await request(app())
      .get('/things/7')
      .set('content-type', 'text/plain')
      .send('x')
      .expect(200, { id: '7' });
    await request(app()).get('/things/8').set('content-type', 'application/json').send('{"n":').expect(200);
  });

  it('answers a method a path does not take with a 405 listing the ones it does, in Allow', async () => {
    const wrong = await request(app()).delete('/echo').expect(405);
    expect(wrong.headers['allow']).toBe('POST');
    expect(wrong.headers['content-type']).toContain('application/problem+json');
    expect(wrong.body.detail).toBe('DELETE is not allowed on /echo; it takes POST.');
    expect((await request(app()).put('/things/7').expect(405)).headers['allow']).toBe('GET, HEAD, DELETE');
    expect((await request(app()).post('/healthz').expect(405)).headers['allow']).toBe('GET, HEAD');
    // OPTIONS asks what a path takes: answered, not refused.
    expect((await request(app()).options('/things/7').expect(204)).headers['allow']).toBe(
      'GET, HEAD, DELETE',
    );
    // Paths the API does not have stay 404s, and so does a documented route this service left out.
    expect((await request(app()).delete('/things/7/more').expect(404)).headers['allow']).toBeUndefined();
    expect((await request(app()).get('/off').expect(404)).body.detail).toBe('No route for GET /off.');
    await request(app()).get('/things/7').expect(200, { id: '7' });
  });

  it('answers the 405 before reading a body, whatever its media type or syntax', async () => {
    const binary = await request(app())
      .put('/echo')
      .set('content-type', 'application/x-protobuf')
      .send(Buffer.from([1, 2, 3]))
      .expect(405);
    expect(binary.headers['allow']).toBe('POST');
    await request(app()).patch('/things/7').set('content-type', 'application/json').send('{"n":').expect(405);
  });

  it('takes no X-Forwarded-Uri from a caller at the edge (no service credential asked)', async () => {
    const res = await request(app()).get('/nowhere').set('x-forwarded-uri', '/call-0800-scam').expect(404);
    expect(res.body.detail).toBe('No route for GET /nowhere.');
    expect(
      (await request(app()).delete('/echo').set('x-forwarded-uri', '/elsewhere').expect(405)).body.detail,
    ).toBe('DELETE is not allowed on /echo; it takes POST.');
  });

  it.each([
    [
      'an AppError',
      new ConflictError('already there', { url: 'x' }),
      409,
      { detail: 'already there', url: 'x' },
    ],
    [
      'a custom status',
      new AppError(429, 'slow down', { headers: { 'retry-after': '3' } }),
      429,
      { detail: 'slow down' },
    ],
    [
      'Postgres failing over stored data on a read (no body to blame)',
      Object.assign(new Error('value out of range: overflow'), { code: '22003' }),
      500,
      { detail: 'An unexpected error occurred; it has been logged with this request id.' },
    ],
    [
      'Postgres down',
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      503,
      { detail: 'The database is unavailable; retry shortly.' },
    ],
    [
      'Postgres shutting down',
      Object.assign(new Error('terminating connection'), { code: '57P01' }),
      503,
      {},
    ],
    [
      'a bug',
      new TypeError('x is undefined at secret/path.ts:12'),
      500,
      { detail: 'An unexpected error occurred; it has been logged with this request id.' },
    ],
  ])('answers %s without leaking internals', async (_name, error, status, body) => {
    const res = await request(app({ error })).get('/boom').expect(status);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body).toMatchObject({ type: 'about:blank', status, requestId: expect.any(String), ...body });
    expect(res.text).not.toContain('secret/path');
  });

  it('maps Postgres refusing a value of a written body to a 400 naming the body', async () => {
    const error = Object.assign(new Error('invalid input syntax for type json'), { code: '22P02' });
    const res = await request(app({ error })).post('/boom').send({ n: 1 }).expect(400);
    expect(res.body).toMatchObject({
      status: 400,
      errors: [{ field: 'body', message: 'invalid input syntax for type json' }],
    });
  });
});

describe('the service credential', () => {
  const token = 'current-service-token-0123456789abcdefgh';
  const previous = 'previous-service-token-0123456789abcdefg';
  function guarded() {
    const metrics = createMetrics('demo', { defaultMetrics: false });
    let bodiesRead = 0;
    const guardedApp = createServiceApp({
      service: 'demo',
      logger: createLogger('demo', 'silent'),
      metrics,
      readiness: [],
      openapi: { openapi: '3.1.0', paths: { '/echo': { post: {} } } },
      serviceToken: { current: token, previous },
      routes: (app) => {
        app.post('/echo', (req, res) => {
          bodiesRead++;
          res.json(req.body);
        });
      },
    });
    return { app: guardedApp, metrics, bodiesRead: () => bodiesRead };
  }

  it('keeps /healthz, /readyz and /metrics open to probes and Prometheus', async () => {
    const { app: guardedApp } = guarded();
    await request(guardedApp).get('/healthz').expect(200);
    await request(guardedApp).get('/readyz').expect(200);
    await request(guardedApp).get('/metrics').expect(200);
  });

  it('refuses every other path without the token, before reading the body, and counts why', async () => {
    const { app: guardedApp, metrics, bodiesRead } = guarded();
    const missing = await request(guardedApp).post('/echo').send({ n: 1 }).expect(401);
    expect(missing.headers['content-type']).toContain('application/problem+json');
    expect(missing.headers['www-authenticate']).toBe('Bearer realm="gpu-telemetry"');
    expect(missing.body).toMatchObject({ status: 401, title: 'Unauthorized' });
    expect(missing.body.detail).toContain('Authorization: Bearer <SERVICE_TOKEN>');
    const wrong = await request(guardedApp)
      .post('/echo')
      .set('authorization', `Bearer ${token}x`)
      .send({ n: 1 })
      .expect(401);
    expect(wrong.headers['www-authenticate']).toContain('error="invalid_token"');
    await request(guardedApp).get('/openapi.json').set('authorization', `Basic ${token}`).expect(401);
    // Unknown paths do not say whether they exist.
    await request(guardedApp).get('/nowhere').expect(401);
    expect(bodiesRead()).toBe(0);
    const text = await metrics.registry.metrics();
    expect(text).toContain('service_auth_failures_total{reason="missing",service="demo"} 3');
    expect(text).toContain('service_auth_failures_total{reason="invalid",service="demo"} 1');
  });

  it('serves the current and the previous token, so a rotation can roll out', async () => {
    const { app: guardedApp } = guarded();
    for (const presented of [token, previous]) {
      const res = await request(guardedApp)
        .post('/echo')
        .set('authorization', `Bearer ${presented}`)
        .send({ n: 2 })
        .expect(200);
      expect(res.body).toEqual({ n: 2 });
    }
    await request(guardedApp).get('/openapi.json').set('authorization', `bearer ${token}`).expect(200);
    await request(guardedApp).get('/nowhere').set('authorization', `Bearer ${token}`).expect(404);
  });

  it('asks for the token before saying a method is wrong, then names the path the gateway was asked for', async () => {
    const { app: guardedApp, bodiesRead } = guarded();
    await request(guardedApp).delete('/echo').expect(401);
    const wrong = await request(guardedApp)
      .delete('/echo')
      .set('authorization', `Bearer ${token}`)
      .set('x-forwarded-uri', '/api/echo')
      .expect(405);
    expect(wrong.headers['allow']).toBe('POST');
    expect(wrong.body.detail).toBe('DELETE is not allowed on /api/echo; it takes POST.');
    const missing = await request(guardedApp)
      .get('/nowhere')
      .set('authorization', `Bearer ${token}`)
      .set('x-forwarded-uri', '/api/nowhere')
      .expect(404);
    expect(missing.body.detail).toBe('No route for GET /api/nowhere.');
    expect(bodiesRead()).toBe(0);
  });
});

describe('a service’s own authentication (authenticate)', () => {
  function keyed() {
    let checked = 0;
    const keyedApp = createServiceApp({
      service: 'demo',
      logger: createLogger('demo', 'silent'),
      metrics: createMetrics('demo', { defaultMetrics: false }),
      readiness: [],
      openapi: { openapi: '3.1.0', paths: { '/echo': { post: {} } } },
      authenticate: (req, _res, next) => {
        checked++;
        if (req.headers['x-api-key'] === 'good') return next();
        next(new AppError(401, 'Send an API key.', { headers: { 'www-authenticate': 'Bearer' } }));
      },
      routes: (app) => {
        app.post('/echo', (req, res) => {
          res.json(req.body);
        });
      },
    });
    return { app: keyedApp, checked: () => checked };
  }

  it('keeps /healthz, /readyz and /metrics out of it', async () => {
    const { app: keyedApp, checked } = keyed();
    await request(keyedApp).get('/healthz').expect(200);
    await request(keyedApp).get('/readyz').expect(200);
    await request(keyedApp).get('/metrics').expect(200);
    expect(checked()).toBe(0);
  });

  it('refuses before the method, the media type or the body is looked at', async () => {
    const { app: keyedApp } = keyed();
    const refusals = [
      request(keyedApp).post('/echo').set('content-type', 'application/json').send('{"n":'),
      request(keyedApp).post('/echo').set('content-type', 'text/plain').send('n=1'),
      request(keyedApp).delete('/echo'),
      request(keyedApp).options('/echo'),
      request(keyedApp).get('/nowhere'),
    ];
    for (const res of await Promise.all(refusals)) {
      expect(res.status).toBe(401);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.headers['www-authenticate']).toBe('Bearer');
    }
  });

  it('lets a caller it admits on to the same checks as before', async () => {
    const { app: keyedApp } = keyed();
    const key = { 'x-api-key': 'good' };
    await request(keyedApp)
      .post('/echo')
      .set(key)
      .set('content-type', 'application/json')
      .send('{"n":')
      .expect(400);
    await request(keyedApp).post('/echo').set(key).set('content-type', 'text/plain').send('n=1').expect(415);
    expect((await request(keyedApp).delete('/echo').set(key).expect(405)).headers['allow']).toBe('POST');
    expect((await request(keyedApp).post('/echo').set(key).send({ n: 1 }).expect(200)).body).toEqual({
      n: 1,
    });
  });
});
