import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { freePort, type ManagedProcess, startProcess } from '@gpu-telemetry/harness';
import { TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';

/**
 * Distributed tracing as users get it: the built gateway, queue and streamer run as their own
 * processes with the OpenTelemetry SDK loaded by `node --import`, each exporting spans to the
 * gateway's OTLP receiver. One request through the gateway is then one trace across the gateway
 * and the queue, and the streamer's batch that stored a published message links to that trace.
 */
const root = path.resolve(__dirname, '../../..');
const ADMIN = 'tracing-e2e-admin-key-0123456789abcdef';
const OTLP_KEY = 'tracing-e2e-span-export-key-0123456789';
let database: TestDatabase;
let gateway: string;
const children: ManagedProcess[] = [];

async function start(service: string, env: Record<string, string>): Promise<string> {
  const child = startProcess({
    name: service,
    args: [
      '--import',
      path.join(root, `apps/${service}/dist/instrumentation.js`),
      path.join(root, `apps/${service}/dist/main.js`),
    ],
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'warn', OTEL_BSP_SCHEDULE_DELAY: '100', ...env },
    stdout: 'keep',
    stderr: 'keep',
  });
  children.push(child);
  const url = `http://127.0.0.1:${env['PORT']}`;
  await child.waitForUrl(`${url}/healthz`, { timeoutMs: 15_000 });
  return url;
}

beforeAll(async () => {
  // The services run from their build, as in production.
  const built = spawnSync(
    process.execPath,
    [
      require.resolve('typescript/bin/tsc'),
      '-b',
      'apps/gateway/tsconfig.app.json',
      'apps/queue/tsconfig.app.json',
      'apps/streamer/tsconfig.app.json',
    ],
    { cwd: root, stdio: 'inherit' },
  );
  if (built.status !== 0) throw new Error('build failed');
  database = await createTestDatabase();
  const [gatewayPort, queuePort] = [await freePort(), await freePort()];
  const common = {
    DATABASE_URL: database.url,
    SERVICE_TOKEN: TEST_SERVICE_TOKEN,
    HOST: '127.0.0.1',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${gatewayPort}`,
    // The receiver takes spans only with a key that has the traces scope.
    OTEL_EXPORTER_OTLP_HEADERS: `authorization=Bearer%20${OTLP_KEY}`,
  };
  // The queue listens on every address (HOST empty), as it does by default: the gateway reaches it
  // over IPv4, which a dual-stack socket shows as ::ffff:127.0.0.1.
  await start('queue', { ...common, HOST: '', PORT: String(queuePort) });
  gateway = await start('gateway', {
    ...common,
    PORT: String(gatewayPort),
    GATEWAY_ADMIN_KEY: ADMIN,
    GATEWAY_OTLP_KEY: OTLP_KEY,
    GATEWAY_QUEUE_URLS: `http://127.0.0.1:${queuePort}`,
  });
  await start('streamer', {
    ...common,
    PORT: String(await freePort()),
    QUEUE_URL: `http://127.0.0.1:${queuePort}`,
    STREAMER_WAIT: '1s',
  });
}, 120_000);

afterAll(async () => {
  await Promise.all(children.map((child) => child.stop()));
  await database?.drop();
});

interface SpanNode {
  service: string;
  name: string;
  attributes: Record<string, unknown>;
  children: SpanNode[];
}

interface Trace {
  services: string[];
  roots: SpanNode[];
  linkedFrom: { traceId: string; service: string; name: string }[];
}

/** The trace as the gateway serves it, once `done` says it has arrived whole (10 s at most). */
async function traceOnce(traceId: string, done: (trace: Trace) => boolean): Promise<Trace | undefined> {
  let trace: Trace | undefined;
  for (let i = 0; i < 100 && !(trace && done(trace)); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const found = await fetch(`${gateway}/api/v1/traces/${traceId}`, { headers: { 'x-api-key': ADMIN } });
    if (found.ok) trace = (await found.json()) as Trace;
  }
  return trace;
}

describe('a request through the gateway', () => {
  it('is one trace with the gateway hop, the queue request and its database calls under the caller’s trace id', async () => {
    const traceId = 'abcdef0123456789abcdef0123456789';
    const res = await fetch(`${gateway}/api/v1/topics/traced/messages`, {
      method: 'POST',
      headers: {
        'x-api-key': ADMIN,
        'content-type': 'application/json',
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
      },
      body: JSON.stringify({ payload: { hello: 'trace' } }),
    });
    expect(res.status).toBe(201);
    const trace = await traceOnce(traceId, (t) => t.services.length === 2);
    expect(trace?.services).toEqual(['gateway', 'queue']);
    const [hop] = trace?.roots ?? [];
    expect(hop).toMatchObject({ service: 'gateway', name: 'POST /api/v1/topics' });
    const names = (node: SpanNode): string[] => [
      `${node.service}:${node.name}`,
      ...node.children.flatMap(names),
    ];
    expect(names(hop as SpanNode)).toEqual(
      expect.arrayContaining([
        'queue:POST',
        'queue:queue.publish',
        expect.stringMatching(/^queue:pg\.query:queue_insert/),
      ]),
    );
    // The queue's server span names its peer, the gateway, as plain IPv4.
    const all = (node: SpanNode): SpanNode[] => [node, ...node.children.flatMap(all)];
    const served = all(hop as SpanNode).find((node) => node.service === 'queue' && node.name === 'POST');
    expect(served?.attributes).toMatchObject({ 'network.peer.address': '127.0.0.1' });
  });

  it('of telemetry is linked from the streamer batch that stored it, in a trace of its own', async () => {
    const traceId = '0123456789abcdef0123456789abcdef';
    const sample = {
      gpuId: 'GPU-traced-e2e',
      gpuIndex: 0,
      device: 'nvidia0',
      modelName: 'NVIDIA H100 80GB HBM3',
      hostname: 'node-traced',
      metricName: 'DCGM_FI_DEV_GPU_UTIL',
      value: 42,
      timestamp: new Date().toISOString(),
      container: null,
      pod: null,
      namespace: null,
      labels: {},
    };
    const res = await fetch(`${gateway}/api/v1/topics/telemetry/messages`, {
      method: 'POST',
      headers: {
        'x-api-key': ADMIN,
        'content-type': 'application/json',
        traceparent: `00-${traceId}-00f067aa0ba902b7-01`,
      },
      body: JSON.stringify({ payload: { source: 'http://node-traced:9400/metrics', samples: [sample] } }),
    });
    expect(res.status).toBe(201);
    const trace = await traceOnce(traceId, (t) => t.linkedFrom.length > 0);
    expect(trace?.linkedFrom).toEqual([
      expect.objectContaining({ service: 'streamer', name: 'streamer.batch' }),
    ]);
    const batch = trace?.linkedFrom[0]?.traceId as string;
    expect(batch).not.toBe(traceId);
    const stored = await traceOnce(batch, (t) => t.roots.length > 0);
    expect(stored?.roots[0]).toMatchObject({ service: 'streamer', name: 'streamer.batch' });
  });
});
