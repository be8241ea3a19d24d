import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { telemetrySample } from '@gpu-telemetry/model';
import { DcgmSimulator, SIMULATED_METRICS } from '../simulator/dcgm-simulator';
import { createScrapeAgent, ScrapeError, scrapeTarget } from './scraper';

const policy = { allowLinkLocal: false };
const agent = createScrapeAgent(policy);
const servers: Server[] = [];

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  await agent.close();
});

const scrape = (url: string, extra: Partial<Parameters<typeof scrapeTarget>[1]> = {}) =>
  scrapeTarget(url, { dispatcher: agent, timeoutMs: 1_000, maxBytes: 1_000_000, policy, ...extra });

async function failure(promise: Promise<unknown>): Promise<ScrapeError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ScrapeError);
  return error as ScrapeError;
}

describe('scrapeTarget', () => {
  it('reads every GPU sample of a simulated dcgm-exporter host, stamped with the scrape time', async () => {
    const simulator = new DcgmSimulator({ hosts: 2, gpusPerHost: 8 });
    const base = await serve(simulator.handle);
    const result = await scrape(`${base}/hosts/2/metrics`, {
      now: () => Date.parse('2026-03-04T05:06:07.890Z'),
    });
    expect(result.samples).toHaveLength(8 * SIMULATED_METRICS);
    expect(result.parseErrors).toBe(0);
    expect(new Set(result.samples.map((s) => s.gpuId))).toEqual(
      new Set(
        simulator
          .inventory()
          .filter((g) => g.host === 'sim-node-002')
          .map((g) => g.uuid),
      ),
    );
    for (const sample of result.samples) expect(telemetrySample.safeParse(sample).success).toBe(true);
    expect(
      result.samples.every(
        (s) => s.timestamp === '2026-03-04T05:06:07.890Z' && s.hostname === 'sim-node-002',
      ),
    ).toBe(true);
  });

  it('gives up on a target that never answers within the timeout', async () => {
    const base = await serve(() => undefined);
    const started = Date.now();
    expect((await failure(scrape(`${base}/metrics`, { timeoutMs: 300 }))).outcome).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('gives up on a target that starts answering and then stalls', async () => {
    const base = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('DCGM_FI_DEV_GPU_UTIL{UUID="GPU-1"} 1\n');
    });
    expect((await failure(scrape(`${base}/metrics`, { timeoutMs: 300 }))).outcome).toBe('timeout');
  });

  it('reports garbage as a parse error, not as an empty success', async () => {
    const base = await serve((_req, res) =>
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end('<html><body>Welcome to nginx!</body></html>\n'),
    );
    const error = await failure(scrape(`${base}/metrics`));
    expect(error.outcome).toBe('parse_error');
    expect(error.message).toContain('not the Prometheus text format');
  });

  it('refuses a body over the size limit', async () => {
    const base = await serve((_req, res) => res.writeHead(200).end('m{UUID="GPU-1"} 1\n'.repeat(10_000)));
    expect((await failure(scrape(`${base}/metrics`, { maxBytes: 1_000 }))).outcome).toBe('too_large');
  });

  it('reports HTTP errors and does not follow redirects', async () => {
    const base = await serve((req, res) => {
      if (req.url === '/redirect')
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      else res.writeHead(500).end('boom');
    });
    expect((await failure(scrape(`${base}/broken`))).message).toBe('HTTP 500');
    const redirect = await failure(scrape(`${base}/redirect`));
    expect(redirect.outcome).toBe('http_error');
    expect(redirect.message).toContain('not followed');
  });

  it('never connects to a metadata or link-local address', async () => {
    expect((await failure(scrape('http://169.254.169.254/latest/meta-data/'))).outcome).toBe('blocked');
    expect((await failure(scrape('http://[fe80::1]:9400/metrics'))).outcome).toBe('blocked');
  });

  it('reports a refused connection', async () => {
    const base = await serve(() => undefined);
    servers.at(-1)?.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await failure(scrape(`${base}/metrics`))).outcome).toBe('connection_error');
  });
});
