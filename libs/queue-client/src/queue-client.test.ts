import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, createTraceState, propagation, trace, TraceFlags } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';
import { QueueClient, QueueRequestError } from './queue-client';

/** The client's side of the HTTP contract; its behaviour against the real queue is tested in apps/queue. */
let server: Server;
let url: string;
const seen: { method?: string; url?: string; body: string; headers: Record<string, unknown> }[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, body, headers: req.headers });
      if (req.url?.includes('/acks')) {
        res
          .writeHead(409, { 'content-type': 'application/problem+json' })
          .end(JSON.stringify({ status: 409, detail: 'lease lost' }));
      } else if (req.url?.includes('/broken')) {
        res.writeHead(502).end('<html>bad gateway</html>');
      } else {
        res
          .writeHead(201, { 'content-type': 'application/json' })
          .end(JSON.stringify({ accepted: 1, duplicates: 0, ids: ['x'] }));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise((resolve) => server.close(resolve)));

describe('QueueClient', () => {
  it('sends pre-serialised messages as one batch body, with the configured headers', async () => {
    const client = new QueueClient({ url, headers: { 'x-api-key': 'k' } });
    await client.publishSerialized('telemetry', ['{"id":"a","payload":1}', '{"payload":{"x":2}}']);
    await client.close();
    expect(seen.at(-1)).toMatchObject({
      method: 'POST',
      url: '/v1/topics/telemetry/messages',
      body: '{"messages":[{"id":"a","payload":1},{"payload":{"x":2}}]}',
    });
    expect(seen.at(-1)?.headers['x-api-key']).toBe('k');
  });

  it('turns problems into QueueRequestError, and non-JSON errors too', async () => {
    const client = new QueueClient({ url });
    const conflict = (await client.ack('t', 'lease').catch((e: unknown) => e)) as QueueRequestError;
    expect(conflict).toBeInstanceOf(QueueRequestError);
    expect([conflict.status, conflict.isConflict, conflict.isRetryable, conflict.problem.detail]).toEqual([
      409,
      true,
      false,
      'lease lost',
    ]);
    const broken = (await client.topic('broken').catch((e: unknown) => e)) as QueueRequestError;
    expect([broken.status, broken.isRetryable, broken.problem.detail]).toEqual([
      502,
      true,
      '<html>bad gateway</html>',
    ]);
    await client.close();
  });
});

describe('QueueClient credential', () => {
  it('sends the service token as a bearer credential on every call', async () => {
    const client = new QueueClient({ url, token: 'a-service-token-of-at-least-32-characters' });
    await client.publish('telemetry', [{ payload: 1 }]);
    await client.close();
    expect(seen.at(-1)?.headers['authorization']).toBe('Bearer a-service-token-of-at-least-32-characters');
  });

  it('is not ready while the queue refuses its credential', async () => {
    const refusing = createServer((req, res) => {
      if (req.url === '/readyz') res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      else res.writeHead(req.headers['authorization'] === 'Bearer right-token' ? 200 : 401).end();
    });
    await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(refusing.address() as AddressInfo).port}`;
    const wrong = new QueueClient({ url: base, token: 'wrong-token' });
    const right = new QueueClient({ url: base, token: 'right-token' });
    try {
      await expect(wrong.ready()).rejects.toThrow(/refuses this service’s credential: check SERVICE_TOKEN/);
      await expect(right.ready()).resolves.toBeUndefined();
    } finally {
      await Promise.all([wrong.close(), right.close()]);
      await new Promise((resolve) => refusing.close(resolve));
    }
  });
});

describe('QueueClient trace context', () => {
  const span = {
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
    spanId: '00f067aa0ba902b7',
    traceFlags: TraceFlags.SAMPLED,
    traceState: createTraceState('vendor=abc'),
  };
  const traceparent = `00-${span.traceId}-${span.spanId}-01`;
  const inSpan = <T>(work: () => Promise<T>) =>
    context.with(trace.setSpanContext(context.active(), span), work);
  const sent = (from: number) =>
    seen.slice(from).map(({ url, headers }) => [url, headers['traceparent'], headers['tracestate']]);

  // The globals an OpenTelemetry SDK registers, without the undici instrumentation.
  beforeAll(() => {
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  });
  afterAll(() => {
    propagation.disable();
    context.disable();
  });

  it("sends the active span's context on every call, so a publish is linked to its trace", async () => {
    const client = new QueueClient({ url });
    const from = seen.length;
    await inSpan(async () => {
      await client.publish('telemetry', [{ payload: 1 }]);
      await client.publishSerialized('telemetry', ['{"payload":2}']);
      await client.lease('telemetry', { consumer: 'c', max: 1, visibilitySeconds: 30 });
      await client.ack('telemetry', 'lease').catch(() => undefined);
      await client.nack('telemetry', 'lease');
    });
    await client.close();
    expect(sent(from)).toEqual(
      [
        '/v1/topics/telemetry/messages',
        '/v1/topics/telemetry/messages',
        '/v1/topics/telemetry/leases',
        '/v1/topics/telemetry/acks',
        '/v1/topics/telemetry/nacks',
      ].map((path) => [path, traceparent, 'vendor=abc']),
    );
  });

  it('sends no trace context outside a span', async () => {
    const client = new QueueClient({ url });
    const from = seen.length;
    await client.publish('telemetry', [{ payload: 1 }]);
    await client.close();
    expect(sent(from)).toEqual([['/v1/topics/telemetry/messages', undefined, undefined]]);
  });

  it('keeps a traceparent given in its headers', async () => {
    const given = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const client = new QueueClient({ url, headers: { Traceparent: given } });
    const from = seen.length;
    await inSpan(() => client.publish('telemetry', [{ payload: 1 }]));
    await client.close();
    expect(sent(from)).toEqual([['/v1/topics/telemetry/messages', given, undefined]]);
  });

  it('leaves the trace context to the undici instrumentation where it is registered, sent once', async () => {
    const instrumentation = new UndiciInstrumentation();
    const client = new QueueClient({ url });
    const from = seen.length;
    try {
      await inSpan(() => client.publish('telemetry', [{ payload: 1 }]));
    } finally {
      instrumentation.disable();
      await client.close();
    }
    // With no tracer provider its client span is the active one, unrecorded: the same ids, once.
    expect(sent(from)).toEqual([['/v1/topics/telemetry/messages', traceparent, 'vendor=abc']]);
  });
});
