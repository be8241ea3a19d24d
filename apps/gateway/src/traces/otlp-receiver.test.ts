import { randomBytes } from 'node:crypto';
import { type ClientRequest, request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import { context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as HttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import type { RunningServer } from '@gpu-telemetry/service-kit';
import { OtlpSpanProcessor } from '@gpu-telemetry/service-kit/telemetry';
import request from 'supertest';
import type { GatewayApp } from '../app';
import { createTestGateway, listenGateway } from '../testing/gateway-test-app';
import type { GatewayDatabase } from '../gateway.tables';

const ADMIN = 'bootstrap-admin-key-for-traces-0123456789';
const OTLP_KEY = 'span-export-key-for-traces-0123456789';
const auth = { authorization: `Bearer ${OTLP_KEY}` };
let database: TestDatabase<GatewayDatabase>;
let gateway: GatewayApp;
let server: RunningServer;
let base: string;

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  gateway = createTestGateway(database, { GATEWAY_ADMIN_KEY: ADMIN, GATEWAY_OTLP_KEY: OTLP_KEY });
  ({ server, base } = await listenGateway(gateway));
});

afterAll(async () => {
  await server.close();
  await gateway.close();
  await database.drop();
});

const publishOf = (span: { spanContext(): { traceId: string; spanId: string } }) => ({
  traceId: span.spanContext().traceId,
  spanId: span.spanContext().spanId,
});

/** Two services' spans of one trace, sent by the real OpenTelemetry exporter given. */
async function exportTrace(exporter: (service: string) => SpanExporter): Promise<string> {
  const providers = ['edge', 'backend'].map(
    (service) =>
      new BasicTracerProvider({
        resource: resourceFromAttributes({ 'service.name': service }),
        spanProcessors: [new SimpleSpanProcessor(exporter(service))],
      }),
  );
  const [edge, backend] = providers.map((p) => p.getTracer('test')) as [
    ReturnType<BasicTracerProvider['getTracer']>,
    ReturnType<BasicTracerProvider['getTracer']>,
  ];
  const root = edge.startSpan('GET /api/v1/topics', { attributes: { 'http.response.status_code': 200 } });
  const child = backend.startSpan(
    'queue.publish',
    { attributes: { 'messaging.destination.name': 'jobs', 'queue.accepted': 3, ok: true } },
    trace.setSpan(context.active(), root),
  );
  child.end();
  root.end();
  await Promise.all(providers.map((p) => p.forceFlush()));
  await Promise.all(providers.map((p) => p.shutdown()));
  return root.spanContext().traceId;
}

async function expectTree(traceId: string) {
  const res = await request(base).get(`/api/v1/traces/${traceId}`).set('x-api-key', ADMIN).expect(200);
  expect(res.body).toMatchObject({ traceId, spanCount: 2, services: ['backend', 'edge'] });
  expect(res.body.roots).toHaveLength(1);
  const [root] = res.body.roots;
  expect(root).toMatchObject({
    service: 'edge',
    name: 'GET /api/v1/topics',
    parentSpanId: null,
    attributes: { 'http.response.status_code': 200 },
  });
  expect(root.children).toEqual([
    expect.objectContaining({
      service: 'backend',
      name: 'queue.publish',
      parentSpanId: root.spanId,
      attributes: { 'messaging.destination.name': 'jobs', 'queue.accepted': 3, ok: true },
    }),
  ]);
  expect(root.durationMs).toBeGreaterThanOrEqual(0);
}

describe('POST /v1/traces (OTLP/HTTP)', () => {
  it('stores spans sent by the OpenTelemetry protobuf exporter, and serves the trace as a tree', async () => {
    await expectTree(await exportTrace(() => new ProtoExporter({ url: `${base}/v1/traces`, headers: auth })));
  });

  it.each([
    ['protobuf', () => new ProtoExporter({ url: `${base}/v1/traces`, headers: auth })],
    ['JSON', () => new HttpJsonExporter({ url: `${base}/v1/traces`, headers: auth })],
  ])(
    'stores the links of spans sent by the %s exporter; a trace lists the spans of other traces linking to it',
    async (_, exporter) => {
      const provider = new BasicTracerProvider({
        resource: resourceFromAttributes({ 'service.name': 'pipeline' }),
        spanProcessors: [new SimpleSpanProcessor(exporter())],
      });
      const tracer = provider.getTracer('test');
      // Two publishes, each its own trace, and the batch that stored their messages, in a third.
      const publishes = [tracer.startSpan('queue.publish'), tracer.startSpan('queue.publish')];
      for (const p of publishes) p.end();
      const [first, second] = publishes.map((p) => p.spanContext()) as [
        ReturnType<(typeof publishes)[0]['spanContext']>,
        ReturnType<(typeof publishes)[0]['spanContext']>,
      ];
      const batch = tracer.startSpan('streamer.batch', {
        root: true,
        links: [{ context: first, attributes: { 'messaging.message.id': 'm-1' } }, { context: second }],
      });
      batch.end();
      await provider.forceFlush();
      await provider.shutdown();

      const stored = await request(base)
        .get(`/api/v1/traces/${batch.spanContext().traceId}`)
        .set('x-api-key', ADMIN)
        .expect(200);
      expect(stored.body.roots[0]).toMatchObject({
        name: 'streamer.batch',
        links: [
          { traceId: first.traceId, spanId: first.spanId, attributes: { 'messaging.message.id': 'm-1' } },
          { traceId: second.traceId, spanId: second.spanId },
        ],
      });
      expect(stored.body.linkedFrom).toEqual([]);
      for (const publish of [first, second]) {
        const res = await request(base)
          .get(`/api/v1/traces/${publish.traceId}`)
          .set('x-api-key', ADMIN)
          .expect(200);
        expect(res.body.roots[0]).toMatchObject({ name: 'queue.publish', links: [] });
        expect(res.body.linkedFrom).toEqual([
          {
            traceId: batch.spanContext().traceId,
            spanId: batch.spanContext().spanId,
            service: 'pipeline',
            name: 'streamer.batch',
            start: expect.any(String),
          },
        ]);
      }
    },
  );

  it('shows a read key where services and Postgres are reached as REDACTED, and an admin key as sent', async () => {
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'streamer' }),
      spanProcessors: [
        new SimpleSpanProcessor(new ProtoExporter({ url: `${base}/v1/traces`, headers: auth })),
      ],
    });
    const tracer = provider.getTracer('test');
    const publish = tracer.startSpan('queue.publish');
    publish.end();
    // What the pg and undici instrumentations put on their spans, in both conventions' names.
    const sent = {
      'db.connection_string': 'postgresql://10.0.4.7:5432/telemetry',
      'db.user': 'streamer',
      'net.peer.name': '10.0.4.7',
      'net.peer.port': 5432,
      'server.address': 'queue.internal',
      'server.port': 8081,
      'url.full': 'http://queue.internal:8081/v1/topics/telemetry/leases',
      'network.peer.address': '10.0.4.9',
    };
    const kept = { 'db.system': 'postgresql', 'http.request.method': 'POST', 'db.statement': 'SELECT 1' };
    const span = tracer.startSpan('pg.query', {
      attributes: { ...sent, ...kept },
      links: [
        { context: publish.spanContext(), attributes: { 'server.address': '10.0.4.9', why: 'publish' } },
      ],
    });
    span.end();
    await provider.forceFlush();
    await provider.shutdown();
    const read = (key: string) =>
      request(base).get(`/api/v1/traces/${span.spanContext().traceId}`).set('x-api-key', key).expect(200);

    const reader = await request(base)
      .post('/api/v1/keys')
      .set('x-api-key', ADMIN)
      .send({ name: 'trace-reader', scopes: ['read'] })
      .expect(201);
    const redacted = (await read(reader.body.key)).body.roots[0];
    expect(redacted.attributes).toEqual({
      ...Object.fromEntries(Object.keys(sent).map((k) => [k, 'REDACTED'])),
      ...kept,
    });
    expect(redacted.links).toEqual([
      { ...publishOf(publish), attributes: { 'server.address': 'REDACTED', why: 'publish' } },
    ]);
    const shown = JSON.stringify([
      redacted.attributes,
      redacted.links.map((l: { attributes: object }) => l.attributes),
    ]);
    expect(shown).not.toMatch(/10\.0\.4|internal|5432|8081/);

    const full = (await read(ADMIN)).body.roots[0];
    expect(full.attributes).toEqual({ ...sent, ...kept });
    expect(full.links).toEqual([
      { ...publishOf(publish), attributes: { 'server.address': '10.0.4.9', why: 'publish' } },
    ]);
  });

  it('refuses a link without a trace id or span id, naming it', async () => {
    const traceId = randomBytes(16).toString('hex');
    for (const [link, field] of [
      [{ traceId: 'zz', spanId: '00f067aa0ba902b7' }, 'links[0].traceId'],
      [{ traceId, spanId: '0000000000000000' }, 'links[0].spanId'],
      ['not a link', 'links[0]'],
    ] as const) {
      const span = {
        traceId,
        spanId: '00f067aa0ba902b7',
        name: 'linked',
        startTimeUnixNano: '1700000000000000000',
        endTimeUnixNano: '1700000000001000000',
        links: [link],
      };
      const res = await request(base)
        .post('/v1/traces')
        .set(auth)
        .set('content-type', 'application/json')
        .send(JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [span] }] }] }))
        .expect(400);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(JSON.stringify(res.body)).toContain(`resourceSpans[0].scopeSpans[0].spans[0].${field}`);
    }
  });

  it('stores spans sent gzipped by the protobuf exporter', async () => {
    await expectTree(
      await exportTrace(
        () => new ProtoExporter({ url: `${base}/v1/traces`, headers: auth, compression: 'gzip' as never }),
      ),
    );
  });

  it('stores spans sent by the OpenTelemetry JSON exporter', async () => {
    await expectTree(
      await exportTrace(() => new HttpJsonExporter({ url: `${base}/v1/traces`, headers: auth })),
    );
  });

  it("stores every span the services' own span processor sends, slices merged into one request", async () => {
    const processor = new OtlpSpanProcessor({ url: `${base}/v1/traces`, headers: auth }, { minSlice: 16 });
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'queue' }),
      spanProcessors: [processor],
    });
    const tracer = provider.getTracer('test');
    const root = tracer.startSpan('POST /v1/topics/jobs/messages');
    const parent = trace.setSpan(context.active(), root);
    for (let i = 0; i < 40; i++) {
      tracer.startSpan(`insert ${i}`, { attributes: { batch: i } }, parent).end();
      // A turn of the event loop every 16 spans: each group is encoded as its own slice.
      if (i % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
    }
    root.end();
    await provider.forceFlush();
    await provider.shutdown();

    const traceId = root.spanContext().traceId;
    const res = await request(base).get(`/api/v1/traces/${traceId}`).set('x-api-key', ADMIN).expect(200);
    expect(res.body).toMatchObject({ traceId, spanCount: 41, services: ['queue'] });
    expect(res.body.roots).toHaveLength(1);
    const children = res.body.roots[0].children as { name: string; attributes: { batch: number } }[];
    expect(children.map((c) => c.attributes.batch).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 40 }, (_, i) => i),
    );
  });

  it('takes spans only from a key with the traces scope, and that key opens nothing else', async () => {
    const body = JSON.stringify({ resourceSpans: [] });
    const send = () => request(base).post('/v1/traces').set('content-type', 'application/json');
    const missing = await send().send(body).expect(401);
    expect(missing.headers['content-type']).toContain('application/problem+json');
    await send().set('authorization', 'Bearer not-a-key-at-all-0123456789').send(body).expect(401);
    const reader = await request(base)
      .post('/api/v1/keys')
      .set('x-api-key', ADMIN)
      .send({ name: 'dashboards', scopes: ['read'] })
      .expect(201);
    await send().set('x-api-key', reader.body.key).send(body).expect(403);
    await send().set(auth).send(body).expect(200);
    await send().set('x-api-key', ADMIN).send(body).expect(200);
    // The span-export key reads nothing and publishes nothing.
    await request(base).get('/api/v1/requests').set(auth).expect(403);
    const exporter = await request(base)
      .post('/api/v1/keys')
      .set('x-api-key', ADMIN)
      .send({ name: 'exporter', scopes: ['traces'] })
      .expect(201);
    await send().set('x-api-key', exporter.body.key).send(body).expect(200);
  });

  it('refuses bad content with 4xx and stores nothing', async () => {
    await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/x-protobuf')
      .send(Buffer.from([0x0a, 0xff, 0xff]))
      .expect(400);
    await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .send('{"resourceSpans":')
      .expect(400);
    const text = await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'text/plain')
      .send('spans')
      .expect(415);
    expect(text.body.errors).toEqual([
      { field: 'content-type', message: 'must be application/x-protobuf or application/json' },
    ]);
    const br = await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .set('content-encoding', 'br')
      .send('{}')
      .expect(415);
    expect(br.body.errors).toEqual([{ field: 'content-encoding', message: 'must be gzip or identity' }]);
    await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .set('content-encoding', 'gzip')
      .send('not gzip')
      .expect(400);
    await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .send('[1,2]')
      .expect(400);
    await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .set('content-encoding', 'gzip')
      .send(gzipSync('{"resourceSpans":5}'))
      .expect(400);
    // The method is told to a key that may send spans, and to no one else.
    await request(base).get('/v1/traces').expect(401);
    expect((await request(base).get('/v1/traces').set(auth).expect(405)).headers['allow']).toBe('POST');
    expect((await request(base).get('/v1/traces/').set(auth).expect(405)).headers['allow']).toBe('POST');
    // With a trailing slash, an export reaches the receiver too (its 400, not a 404).
    await request(base)
      .post('/v1/traces/')
      .set(auth)
      .set('content-type', 'application/json')
      .send('{"resourceSpans":5}')
      .expect(400);
    const bad = {
      resourceSpans: [
        { scopeSpans: [{ spans: [{ traceId: 'xyz', spanId: '00f067aa0ba902b7', name: 'x' }] }] },
      ],
    };
    await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .send(JSON.stringify(bad))
      .expect(400);
  });

  const SPAN = 'resourceSpans[0].scopeSpans[0].spans[0]';
  it.each([
    ['a kind that is not an enum value', { kind: 1.5 }, 'kind', 'must be an integer from 0 to 5'],
    ['a name that is not a string', { name: { x: 1 } }, 'name', 'must be a string'],
    [
      'a start past the year 9999',
      { startTimeUnixNano: '99999999999999999999999999' },
      'startTimeUnixNano',
      'is outside 1970 to 9999',
    ],
    [
      'a start that is no whole number',
      { startTimeUnixNano: 'abc' },
      'startTimeUnixNano',
      'must be a whole number of nanoseconds since 1970',
    ],
    [
      'an end of a fraction of a nanosecond',
      { endTimeUnixNano: 1.5 },
      'endTimeUnixNano',
      'must be a whole number of nanoseconds since 1970',
    ],
    ['a status code out of range', { status: { code: 7 } }, 'status.code', 'must be an integer from 0 to 2'],
    [
      'a trace id that is a number',
      { traceId: 123 },
      'traceId',
      'must be 16 bytes (32 hex digits), not all zero',
    ],
    [
      'a trace id of zeros',
      { traceId: '0'.repeat(32) },
      'traceId',
      'must be 16 bytes (32 hex digits), not all zero',
    ],
    [
      'a span id of zeros',
      { spanId: '0'.repeat(16) },
      'spanId',
      'must be 8 bytes (16 hex digits), not all zero',
    ],
    ['a status that is a list', { status: [1] }, 'status', 'must be an object'],
    ['attributes that are no list', { attributes: 5 }, 'attributes', 'must be an array'],
  ])('refuses a span with %s as 400 naming it, storing nothing', async (_, fields, field, message) => {
    const traceId = randomBytes(16).toString('hex');
    const span = {
      traceId,
      spanId: '00f067aa0ba902b7',
      name: 'x',
      startTimeUnixNano: '1',
      endTimeUnixNano: '2',
      ...fields,
    };
    const res = await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .send(JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [span] }] }] }))
      .expect(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.errors).toEqual([{ field: `${SPAN}.${field}`, message }]);
    expect(res.body.detail).toBe(`Not a valid OTLP ExportTraceServiceRequest: ${SPAN}.${field}: ${message}`);
    await request(base).get(`/api/v1/traces/${traceId}`).set('x-api-key', ADMIN).expect(404);
  });

  it.each([
    ['resourceSpans', { resourceSpans: { a: 1 } }, 'must be an array'],
    ['resourceSpans[0]', { resourceSpans: [7] }, 'must be an object'],
    [
      'resourceSpans[0].resource.attributes',
      { resourceSpans: [{ resource: { attributes: 5 } }] },
      'must be an array',
    ],
    ['resourceSpans[0].scopeSpans', { resourceSpans: [{ scopeSpans: 'spans' }] }, 'must be an array'],
    [
      'resourceSpans[0].scopeSpans[0].spans[0]',
      { resourceSpans: [{ scopeSpans: [{ spans: [null, 1] }] }] },
      'must be an object',
    ],
  ])('refuses an export whose %s is not what OTLP says, naming it', async (field, body, message) => {
    const res = await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .send(JSON.stringify(body))
      .expect(400);
    expect(res.body.errors).toEqual([{ field, message }]);
  });

  it('stores a span whose strings hold NUL characters, which Postgres cannot, with U+FFFD in their place', async () => {
    const traceId = randomBytes(16).toString('hex');
    const span = {
      traceId,
      spanId: '00f067aa0ba902b7',
      name: 'a\u0000b',
      startTimeUnixNano: '1700000000000000000',
      endTimeUnixNano: '1700000000001000000',
      attributes: [{ key: 'k\u0000', value: { stringValue: 'v\u0000' } }],
      status: { code: 2, message: 'm\u0000' },
    };
    await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .send(JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [span] }] }] }))
      .expect(200);
    const res = await request(base).get(`/api/v1/traces/${traceId}`).set('x-api-key', ADMIN).expect(200);
    expect(JSON.stringify(res.body)).not.toContain('\\u0000');
    expect(JSON.stringify(res.body)).toContain('a\ufffdb');
    expect(JSON.stringify(res.body)).toContain('"k\ufffd":"v\ufffd"');
  });

  it('stores a span whose strings hold lone UTF-16 surrogates (half an emoji), with U+FFFD in their place', async () => {
    const traceId = randomBytes(16).toString('hex');
    const lone = (s: string) => ({ stringValue: s });
    const span = {
      traceId,
      spanId: '00f067aa0ba902b7',
      name: 'cut emoji \ud83d',
      startTimeUnixNano: '1700000000000000000',
      endTimeUnixNano: '1700000000001000000',
      attributes: [
        { key: 'plain', value: lone('x\udc00y') },
        { key: 'key \ud83d', value: lone('ok') },
        { key: 'list', value: { arrayValue: { values: [lone('\udc00a'), lone('whole \ud83d\ude00')] } } },
        { key: 'map', value: { kvlistValue: { values: [{ key: 'in\udc00', value: lone('\ud83d') }] } } },
      ],
      events: [{ name: 'event \ud83d', attributes: [{ key: 'e', value: lone('\udc00') }] }],
      links: [{ traceId, spanId: '00f067aa0ba902b8', attributes: [{ key: 'l', value: lone('\ud83d') }] }],
      status: { code: 2, message: 'failed \udc00' },
    };
    const resource = { attributes: [{ key: 'service.name', value: lone('svc \ud83d') }] };
    const scope = { name: 'scope \ud83d', attributes: [{ key: 's', value: lone('\udc00') }] };
    await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      // JSON.stringify writes each lone surrogate as its \u escape, as a client's JSON encoder does.
      .send(JSON.stringify({ resourceSpans: [{ resource, scopeSpans: [{ scope, spans: [span] }] }] }))
      .expect(200);
    const res = await request(base).get(`/api/v1/traces/${traceId}`).set('x-api-key', ADMIN).expect(200);
    expect(res.body).toMatchObject({ traceId, spanCount: 1, services: ['svc \ufffd'] });
    expect(res.body.roots[0]).toMatchObject({
      service: 'svc \ufffd',
      name: 'cut emoji \ufffd',
      status: { code: 2, message: 'failed \ufffd' },
      attributes: {
        plain: 'x\ufffdy',
        'key \ufffd': 'ok',
        list: ['\ufffda', 'whole \ud83d\ude00'],
        map: { 'in\ufffd': '\ufffd' },
      },
    });
  });

  it.each([
    ['protobuf', () => new ProtoExporter({ url: `${base}/v1/traces`, headers: auth })],
    ['JSON', () => new HttpJsonExporter({ url: `${base}/v1/traces`, headers: auth })],
  ])('stores half an emoji sent by the OpenTelemetry %s exporter as U+FFFD', async (_, exporter) => {
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'cut' }),
      spanProcessors: [new SimpleSpanProcessor(exporter())],
    });
    const span = provider
      .getTracer('test')
      .startSpan('cut emoji \ud83d', { attributes: { 'x\udc00': 'x\udc00y', list: ['\ud83d'] } });
    span.end();
    await provider.forceFlush();
    await provider.shutdown();
    const { traceId } = span.spanContext();
    const res = await request(base).get(`/api/v1/traces/${traceId}`).set('x-api-key', ADMIN).expect(200);
    expect(res.body.roots[0]).toMatchObject({
      name: 'cut emoji \ufffd',
      attributes: { 'x\ufffd': 'x\ufffdy', list: ['\ufffd'] },
    });
  });

  it('reads back a trace whose parents loop or nest deep as trees, every span once', async () => {
    const traceId = randomBytes(16).toString('hex');
    const id = (n: number) => n.toString(16).padStart(16, '0');
    const span = (n: number, parent: number | null) => ({
      traceId,
      spanId: id(n),
      ...(parent === null ? {} : { parentSpanId: id(parent) }),
      name: `s${n}`,
      startTimeUnixNano: String(1_700_000_000_000_000_000n + BigInt(n) * 1_000_000n),
      endTimeUnixNano: String(1_700_000_000_000_000_000n + BigInt(n) * 1_000_000n + 1n),
    });
    const spans = [
      span(1, 1), // its own parent
      span(2, 3), // 2 and 3: each other's
      span(3, 2),
      // A chain 300 deep from a root.
      span(100, null),
      ...Array.from({ length: 299 }, (_, i) => span(101 + i, 100 + i)),
    ];
    await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .send(JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans }] }] }))
      .expect(200);
    const res = await request(base).get(`/api/v1/traces/${traceId}`).set('x-api-key', ADMIN).expect(200);
    expect(res.body).toMatchObject({ spanCount: 303, truncated: false });
    interface Node {
      name: string;
      children: Node[];
    }
    const seen: string[] = [];
    let deepest = 0;
    const walk = (node: Node, depth: number) => {
      seen.push(node.name);
      deepest = Math.max(deepest, depth);
      for (const child of node.children) walk(child, depth + 1);
    };
    for (const root of res.body.roots as Node[]) walk(root, 1);
    expect(seen.sort()).toEqual(spans.map((s) => s.name).sort());
    expect(deepest).toBe(64);
    // The chain's root, then s1 and s2 (the first of the loops), then the rest of the chain, cut
    // every 64 spans.
    expect((res.body.roots as Node[]).map((r) => r.name)).toEqual([
      's100',
      's1',
      's2',
      's164',
      's228',
      's292',
      's356',
    ]);
  });

  it('answers 404 for an unknown trace and 400 for a malformed id', async () => {
    await request(base)
      .get(`/api/v1/traces/${'a'.repeat(32)}`)
      .set('x-api-key', ADMIN)
      .expect(404);
    await request(base).get('/api/v1/traces/not-a-trace').set('x-api-key', ADMIN).expect(400);
    await request(base)
      .get(`/api/v1/traces/${'a'.repeat(32)}`)
      .expect(401);
  });
});

/** A raw POST to /v1/traces: writes `body` in pieces (chunked unless `length` is given) and reads the answer. */
function rawExport(
  at: string,
  pieces: Buffer[],
  headers: Record<string, string> = {},
): {
  answer: Promise<{ status: number; headers: Record<string, unknown>; body: string }>;
  req: ClientRequest;
} {
  const req = httpRequest(`${at}/v1/traces`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/x-protobuf', ...headers },
  });
  const answer = new Promise<{ status: number; headers: Record<string, unknown>; body: string }>(
    (resolve, reject) => {
      req.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      });
      req.on('error', reject);
    },
  );
  (async () => {
    for (const piece of pieces) {
      if (req.destroyed) return;
      if (!req.write(piece)) await new Promise((resolve) => req.once('drain', resolve));
    }
  })().catch(() => undefined);
  return { answer, req };
}

describe('POST /v1/traces limits', () => {
  const MIB = 1024 * 1024;

  /** Posts OTLP/JSON spans of one resource; returns the response. */
  const postSpans = (resource: Record<string, string>, spans: object[]) =>
    request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .send(
        JSON.stringify({
          resourceSpans: [
            {
              resource: {
                attributes: Object.entries(resource).map(([key, v]) => ({ key, value: { stringValue: v } })),
              },
              scopeSpans: [{ spans }],
            },
          ],
        }),
      );

  it('refuses, before decoding it, an export of millions of empty attributes that gzip makes small', async () => {
    /** A length-delimited protobuf field. */
    const field = (id: number, bytes: Buffer) => {
      const length: number[] = [];
      for (let n = bytes.length; ; n >>>= 7) {
        if (n < 128) {
          length.push(n);
          break;
        }
        length.push((n & 127) | 128);
      }
      return Buffer.concat([Buffer.from([(id << 3) | 2, ...length]), bytes]);
    };
    // One span holding 3,000,000 empty attributes (field 9, length 0): 6 MB, ~6 kB gzipped.
    const span = Buffer.alloc(6_000_000);
    for (let i = 0; i < span.length; i += 2) span[i] = (9 << 3) | 2;
    const exportRequest = field(1, field(2, field(2, span)));
    const zipped = gzipSync(exportRequest);
    expect(zipped.length).toBeLessThan(64 * 1024);
    const res = await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/x-protobuf')
      .set('content-encoding', 'gzip')
      .send(zipped)
      .expect(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.errors).toEqual([
      { field: 'body', message: 'must hold at most 262144 spans, attributes, values and links in all' },
    ]);
    // The same as OTLP/JSON: objects counted before they are parsed.
    const json = `{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[${'{},'.repeat(600_000)}{}]}]}]}]}`;
    const parsed = await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .send(json)
      .expect(400);
    expect(parsed.body.errors).toEqual([
      { field: 'body', message: 'must hold at most 524288 objects in all' },
    ]);
    // And an ordinary export still goes through.
    await postSpans({ 'service.name': 'after' }, []).expect(200);
  });

  it('keeps what a span keeps of an export that sends more, cut and marked, counted on /metrics', async () => {
    const traceId = randomBytes(16).toString('hex');
    const nested = (depth: number): object =>
      depth === 0
        ? { stringValue: 'leaf' }
        : { kvlistValue: { values: [{ key: 'in', value: nested(depth - 1) }] } };
    const wide = {
      traceId,
      spanId: '00f067aa0ba902b7',
      // A name 5,000 characters long whose 1,024th character is the first half of an emoji.
      name: `${'n'.repeat(1_023)}\u{1F600}${'n'.repeat(3_975)}`,
      startTimeUnixNano: '1700000000000000000',
      endTimeUnixNano: '1700000000001000000',
      attributes: [
        { key: 'big', value: { stringValue: 'v'.repeat(100_000) } },
        { key: 'deep', value: nested(10) },
        {
          key: 'list',
          value: { arrayValue: { values: Array.from({ length: 1_000 }, () => ({ intValue: '1' })) } },
        },
        ...Array.from({ length: 300 }, (_, i) => ({ key: `a${i}`, value: { intValue: String(i) } })),
      ],
    };
    const small = {
      ...wide,
      spanId: '00f067aa0ba902b8',
      name: 'fine',
      attributes: [{ key: 'k', value: { boolValue: true } }],
    };
    await postSpans({ 'service.name': 's'.repeat(1_000_000) }, [wide, small]).expect(200);
    const res = await request(base).get(`/api/v1/traces/${traceId}`).set('x-api-key', ADMIN).expect(200);
    const spans = res.body.roots as { name: string; service: string; attributes: Record<string, unknown> }[];
    const cut = spans.find((span) => span.name.startsWith('n'))!;
    const kept = spans.find((span) => span.name === 'fine')!;
    expect(cut.service).toBe('s'.repeat(256));
    expect(cut.name).toBe('n'.repeat(1_023));
    expect(cut.attributes['big']).toBe('v'.repeat(4_096));
    expect(JSON.stringify(cut.attributes['deep'])).toBe('{"in":{"in":{"in":{"in":null}}}}');
    expect((cut.attributes['list'] as unknown[]).length).toBe(128);
    expect(Object.keys(cut.attributes).length).toBeLessThanOrEqual(129);
    expect(JSON.stringify(cut.attributes).length).toBeLessThan(20_000);
    expect(cut.attributes['gateway.truncated']).toBe(true);
    expect(kept.attributes).toEqual({ k: true });
    const metrics = await request(base).get('/metrics').set('x-api-key', ADMIN).expect(200);
    expect(metrics.text).toMatch(/^gateway_spans_truncated_total{[^}]*} [1-9]/m);
  });

  it('keeps only values of the type their field names: an object, a list or a long string given as a bool, int or double is dropped', async () => {
    const traceId = randomBytes(16).toString('hex');
    const span = {
      traceId,
      spanId: '00f067aa0ba902b7',
      name: 'typed',
      startTimeUnixNano: '1700000000000000000',
      endTimeUnixNano: '1700000000001000000',
      attributes: [
        { key: 'bool', value: { boolValue: { x: 'y'.repeat(2_000_000) } } },
        { key: 'double', value: { doubleValue: 'DEEP' } },
        { key: 'int', value: { intValue: ['1'] } },
        { key: 'longInt', value: { intValue: '1'.repeat(50) } },
        { key: 'ok.bool', value: { boolValue: false } },
        { key: 'ok.int', value: { intValue: '-42' } },
        { key: 'ok.double', value: { doubleValue: 2.5 } },
        { key: 'ok.nan', value: { doubleValue: 'NaN' } },
      ],
    };
    // A list nested 100,000 deep (Postgres' jsonb would refuse it: stack depth limit exceeded).
    const body = JSON.stringify({
      resourceSpans: [{ resource: { attributes: [] }, scopeSpans: [{ spans: [span] }] }],
    }).replace('"DEEP"', `${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/json')
      .send(body)
      .expect(200);
    const res = await request(base).get(`/api/v1/traces/${traceId}`).set('x-api-key', ADMIN).expect(200);
    expect(res.body.roots[0].attributes).toEqual({
      bool: null,
      double: null,
      int: null,
      longInt: null,
      'ok.bool': false,
      'ok.int': -42,
      'ok.double': 2.5,
      'ok.nan': 'NaN',
    });
  });

  it('takes times sent as JSON numbers (past 2^53, whole) and null as absent', async () => {
    const traceId = randomBytes(16).toString('hex');
    const start = Date.now() - 60_000;
    await postSpans({ 'service.name': 'numbers' }, [
      {
        traceId,
        spanId: '00f067aa0ba902b7',
        name: 'numeric times',
        startTimeUnixNano: start * 1_000_000,
        endTimeUnixNano: (start + 250) * 1_000_000,
        kind: null,
      },
    ]).expect(200);
    const res = await request(base).get(`/api/v1/traces/${traceId}`).set('x-api-key', ADMIN).expect(200);
    expect(res.body.roots[0].name).toBe('numeric times');
    // A double holds such a time to about 0.3 µs: not to the nanosecond, as the decimal string does.
    expect(res.body.roots[0].durationMs).toBeCloseTo(250, 1);
  });

  it('refuses an export with a span starting more than a day ahead (it would outlive retention)', async () => {
    const ahead = BigInt(Date.now() + 2 * 86_400_000) * 1_000_000n;
    const res = await postSpans({ 'service.name': 'edge' }, [
      {
        traceId: randomBytes(16).toString('hex'),
        spanId: '00f067aa0ba902b7',
        name: 'from the future',
        startTimeUnixNano: String(ahead),
        endTimeUnixNano: String(ahead + 1_000_000n),
      },
    ]).expect(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.errors[0]).toEqual({
      field: 'resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano',
      message: "is more than a day ahead of the gateway's clock",
    });
  });

  it('answers an export over 8 MiB with a 413 problem, whether it says its length, streams it, or inflates to it', async () => {
    const declared = rawExport(base, [Buffer.alloc(1024)], { 'content-length': String(9 * MIB) });
    const streamed = rawExport(
      base,
      Array.from({ length: 12 }, () => Buffer.alloc(MIB)),
    );
    const bomb = rawExport(base, [gzipSync(Buffer.alloc(64 * MIB))], { 'content-encoding': 'gzip' });
    for (const { answer, req } of [declared, streamed, bomb]) {
      const res = await answer;
      expect(res.status).toBe(413);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(JSON.parse(res.body).errors).toEqual([
        { field: 'body', message: 'The body is larger than the 8388608-byte limit.' },
      ]);
      req.destroy();
    }
  });

  it('reads at most four exports at once and asks the fifth to retry; a key over its rate gets 429', async () => {
    const slow = Array.from({ length: 4 }, () =>
      rawExport(base, [Buffer.from([0x0a])], { 'content-length': '1000' }),
    );
    // Four bodies started and stalled: the fifth export is refused until one of them ends.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const fifth = await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/x-protobuf')
      .send(Buffer.alloc(0))
      .expect(503);
    expect(fifth.headers['retry-after']).toBe('1');
    for (const { req, answer } of slow) {
      req.destroy();
      await answer.catch(() => undefined);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    await request(base)
      .post('/v1/traces')
      .set(auth)
      .set('content-type', 'application/x-protobuf')
      .send(Buffer.alloc(0))
      .expect(200);

    const limited = createTestGateway(database, {
      GATEWAY_ADMIN_KEY: ADMIN,
      GATEWAY_OTLP_KEY: OTLP_KEY,
      GATEWAY_RATE_LIMIT: '1',
      GATEWAY_RATE_BURST: '1',
    });
    const send = () =>
      request(limited.handler)
        .post('/v1/traces')
        .set(auth)
        .set('content-type', 'application/x-protobuf')
        .send(Buffer.alloc(0));
    await send().expect(200);
    const throttled = await send().expect(429);
    expect(Number(throttled.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(throttled.headers['content-type']).toContain('application/problem+json');
    const metrics = await request(limited.app).get('/metrics').expect(200);
    expect(metrics.text).toMatch(/gateway_otlp_requests_total\{[^}]*outcome="throttled"[^}]*\} 1\n/);
    await limited.close();
  });
});
