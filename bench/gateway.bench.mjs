// npm run bench:gateway: requests/s, p50/p99 and CPU per request, side by side in one run:
// direct to a small JSON upstream; nginx as the proxy (if installed); Express + http-proxy-middleware
// (the common Node peer); a bare node:http + undici proxy (the floor of any Node proxy); and this
// gateway with auth, rate limits, request records and tracing on.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { Client } from 'undici';
import {
  cpuMeter,
  fmt,
  freePort,
  percentile,
  printTable,
  root,
  sleep,
  startPostgres,
  startService,
} from './lib/harness.mjs';

const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const ADMIN = 'bench-admin-key-0123456789abcdefghij';

async function child(script, env, name) {
  return startService(name, { ...env }, script);
}

function run(url, connections, duration, headers) {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections, duration, headers, pipelining: 1 }, (error, result) =>
      error ? reject(error) : resolve(result),
    );
  });
}

/** Sequential requests on one keep-alive connection, timed in microseconds (autocannon rounds to ms). */
async function oneConnection(url, headers, count = 10_000, warmUp = 2_000) {
  const { origin, pathname } = new URL(url);
  const client = new Client(origin, { pipelining: 1 });
  const micros = [];
  try {
    for (let i = 0; i < count + warmUp; i++) {
      const started = process.hrtime.bigint();
      const res = await client.request({ path: pathname, method: 'GET', headers });
      await res.body.dump();
      if (i >= warmUp) micros.push(Number(process.hrtime.bigint() - started) / 1_000);
    }
  } finally {
    await client.close();
  }
  return { p50: percentile(micros, 50), p99: percentile(micros, 99) };
}

async function measure(name, url, pid, headers = {}) {
  await run(url, CONNECTIONS, 2, headers); // warm up
  const used = cpuMeter({ proxy: pid });
  const loaded = await run(url, CONNECTIONS, DURATION, headers);
  const cpu = used().proxy / loaded.requests.total;
  // Then latency, on a settled machine: right after the load Postgres is still vacuuming and the
  // proxy still flushing records and spans, which would time the load phase's aftermath.
  await sleep(3_000);
  const single = await oneConnection(url, headers);
  // A stray connection error while a proxy warms up is noise; anything more is a failure.
  if (loaded.non2xx > 0 || loaded.errors > loaded.requests.total / 1000)
    throw new Error(`${name}: ${loaded.non2xx} non-2xx, ${loaded.errors} errors`);
  return {
    name,
    rps: loaded.requests.average,
    p50: loaded.latency.p50,
    p99: loaded.latency.p99,
    p50one: single.p50,
    p99one: single.p99,
    cpu,
  };
}

const services = [];
const results = [];
const postgres = await startPostgres();
try {
  const upstreamPort = freePort();
  const upstream = await child('bench/lib/upstream.cjs', { PORT: String(upstreamPort) }, 'upstream');
  services.push(upstream);
  process.stderr.write('direct...\n');
  results.push(await measure('direct to upstream', `${upstream.url}/v1/gpus`));

  let nginx;
  let dir;
  try {
    execFileSync('nginx', ['-v'], { stdio: 'ignore' });
    dir = mkdtempSync(path.join(tmpdir(), 'bench-nginx-'));
    const port = freePort();
    writeFileSync(
      path.join(dir, 'nginx.conf'),
      `worker_processes 1; daemon off; pid ${dir}/nginx.pid; error_log ${dir}/error.log;
       events { worker_connections 1024; }
       http { access_log off; upstream up { server 127.0.0.1:${upstreamPort}; keepalive 64; }
         server { listen 127.0.0.1:${port}; location /api/v1/gpus { proxy_pass http://up/v1/gpus; proxy_http_version 1.1; proxy_set_header Connection ""; } } }`,
    );
    nginx = spawn('nginx', ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { stdio: 'ignore' });
    await sleep(500);
    const worker = execFileSync('pgrep', ['-P', String(nginx.pid)])
      .toString()
      .trim()
      .split('\n')[0];
    process.stderr.write('nginx...\n');
    results.push(
      await measure('nginx (reference ceiling)', `http://127.0.0.1:${port}/api/v1/gpus`, Number(worker)),
    );
  } catch (error) {
    process.stderr.write(
      `nginx skipped (${error.code === 'ENOENT' ? 'not installed: apt-get install nginx to compare' : error.message})\n`,
    );
  } finally {
    nginx?.kill();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }

  // The Node proxies, each as its own process in front of the same upstream.
  for (const [script, label, name] of [
    ['bench/lib/hpm-proxy.cjs', 'http-proxy-middleware', 'Express + http-proxy-middleware (Node peer)'],
    [
      'bench/lib/bare-proxy.cjs',
      'bare node:http + undici',
      'bare node:http + undici (floor of a Node proxy)',
    ],
  ]) {
    const proxy = await child(
      script,
      { PORT: String(freePort()), UPSTREAM: upstream.url },
      path.basename(script, '.cjs'),
    );
    services.push(proxy);
    process.stderr.write(`${label}...\n`);
    results.push(await measure(name, `${proxy.url}/api/v1/gpus`, proxy.pid));
  }

  const sink = await child('bench/lib/sink.cjs', { PORT: String(freePort()) }, 'sink');
  services.push(sink);
  const url = await postgres.createDatabase('bench_gateway', true);
  // Limits high enough never to refuse a benchmark request: they are still checked on every one.
  const gatewayEnv = {
    DATABASE_URL: url,
    HOST: '127.0.0.1',
    GATEWAY_ADMIN_KEY: ADMIN,
    GATEWAY_STREAMER_URLS: upstream.url,
    GATEWAY_RATE_LIMIT: '1000000',
    GATEWAY_RATE_BURST: '1000000',
  };
  const tracing = {
    OTEL_SDK_DISABLED: 'false',
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.url,
    NODE_OPTIONS: `--import ${path.join(root, 'apps/gateway/dist/instrumentation.js')}`,
  };
  // Every feature on; then without tracing (what tracing costs); then without request records,
  // whose Postgres inserts share this machine's cores with the proxy (what they cost the tail).
  for (const [name, env] of [
    ['gpu-telemetry gateway (auth, limits, records, tracing)', tracing],
    ['gpu-telemetry gateway, tracing off', {}],
    ['gpu-telemetry gateway, request records off', { ...tracing, GATEWAY_RECORDS: 'false' }],
  ]) {
    const gateway = await startService('gateway', { ...gatewayEnv, ...env, PORT: String(freePort()) });
    services.push(gateway);
    process.stderr.write(`${name}...\n`);
    results.push(await measure(name, `${gateway.url}/api/v1/gpus`, gateway.pid, { 'x-api-key': ADMIN }));
  }
} finally {
  for (const service of services.reverse()) await service.stop();
  process.on('uncaughtException', () => undefined);
  await postgres.stop();
}

const direct = results[0];
const nginx = results.find((r) => r.name.startsWith('nginx'));
const peer = results.find((r) => r.name.startsWith('Express'));
printTable(
  `Proxying small JSON: autocannon, ${CONNECTIONS} connections for ${DURATION}s; then, once settled, 10,000 sequential requests on 1 connection after 2,000 to warm up (µs)`,
  [
    'path',
    'req/s',
    'p50 ms',
    'p99 ms',
    '1-conn p50 µs',
    '1-conn p99 µs',
    'added p50 / p99 µs',
    'CPU µs/req',
    'req/s vs direct',
    'vs nginx',
    'vs Node peer',
  ],
  results.map((r) => [
    r.name,
    fmt(r.rps),
    fmt(r.p50, 2),
    fmt(r.p99, 2),
    fmt(r.p50one, 0),
    fmt(r.p99one, 0),
    r === direct ? '-' : `${fmt(r.p50one - direct.p50one, 0)} / ${fmt(r.p99one - direct.p99one, 0)}`,
    fmt(r.cpu, 0),
    fmt(r.rps / direct.rps, 2),
    nginx ? fmt(r.rps / nginx.rps, 2) : '-',
    fmt(r.rps / peer.rps, 2),
  ]),
);
process.exit(0);
