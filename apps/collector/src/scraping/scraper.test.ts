import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DcgmSimulator, SIMULATED_METRICS } from '@gpu-telemetry/dcgm-simulator';
import { type ScrapedSample, scrapedSample } from '@gpu-telemetry/model';
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

/** Scrapes with roomy limits, collecting what the scrape hands over. */
async function scrape(url: string, extra: Partial<Parameters<typeof scrapeTarget>[1]> = {}) {
  const samples: ScrapedSample[] = [];
  const result = await scrapeTarget(url, {
    dispatcher: agent,
    timeoutMs: 1_000,
    maxBytes: 1_000_000,
    sampleLimit: 10_000,
    labelLimit: 64,
    policy,
    onSample: (sample) => samples.push(sample),
    ...extra,
  });
  return { ...result, samples };
}

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
    for (const sample of result.samples) expect(scrapedSample.safeParse(sample).success).toBe(true);
    expect(
      result.samples.every(
        (s) => s.timestamp === '2026-03-04T05:06:07.890Z' && s.hostname === 'sim-node-002',
      ),
    ).toBe(true);
  });

  it('returns the type and help of every family it kept samples of', async () => {
    const simulator = new DcgmSimulator({ hosts: 1, gpusPerHost: 2 });
    const base = await serve(simulator.handle);
    const result = await scrape(`${base}/hosts/1/metrics`);
    expect(result.metadata).toHaveLength(SIMULATED_METRICS);
    expect(result.metadata).toContainEqual({
      metric: 'DCGM_FI_DEV_SM_CLOCK',
      type: 'gauge',
      help: 'SM clock frequency (in MHz).',
      unit: '',
    });
    // Families whose samples name no GPU are not kept, nor is what is said of them.
    const other = await serve((_req, res) => {
      res.end('# HELP node_load1 Load.\n# TYPE node_load1 gauge\nnode_load1 0.5\n');
    });
    expect((await scrape(other)).metadata).toEqual([]);
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

  it('leaves out, counts and names the GPU samples the store cannot take, keeping the rest of the scrape', async () => {
    const uuid = 'GPU-6a3f0c1e-0000-4000-8000-000000000001';
    const many = Array.from({ length: 70 }, (_, i) => `l${i}="v"`).join(',');
    const base = await serve((_req, res) =>
      res.end(
        [
          `DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="${uuid}",Hostname="h1"} 41`,
          `DCGM_FI_DEV_GPU_UTIL{gpu="70000",UUID="${uuid}",Hostname="h1"} 5`,
          `DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="${uuid}",${many}} 300`,
          `DCGM_FI_DEV_SM_CLOCK{gpu="0",UUID="${uuid}",device="${'n'.repeat(200)}"} 1410`,
          `DCGM_FI_DEV_MEM_CLOCK{gpu="0",UUID="${uuid}",Hostname="h1"} 1593`,
          '',
        ].join('\n'),
      ),
    );
    const result = await scrape(base, { labelLimit: 128 });
    expect(result.samples.map((s) => s.metricName)).toEqual([
      'DCGM_FI_DEV_GPU_TEMP',
      'DCGM_FI_DEV_MEM_CLOCK',
    ]);
    for (const sample of result.samples) expect(scrapedSample.safeParse(sample).success).toBe(true);
    expect(result.unstorable).toBe(3);
    expect(result.firstUnstorable).toMatch(/^DCGM_FI_DEV_GPU_UTIL: gpuIndex /);
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

/** A server that streams `line` until the client goes away; resolves with what it sent then. */
async function streamForever(line: string, headers: Record<string, string> = {}) {
  let sent = 0;
  let closed: () => void = () => undefined;
  const gone = new Promise<void>((resolve) => (closed = resolve));
  const base = await serve((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', ...headers });
    const chunk = line.repeat(Math.max(1, Math.floor(16_384 / line.length)));
    const write = () => {
      while (!res.destroyed && res.write(chunk)) sent += chunk.length;
      if (!res.destroyed) res.once('drain', write);
    };
    res.on('close', closed);
    write();
  });
  return { url: `${base}/metrics`, gone: gone.then(() => sent) };
}

const gpuLine = (i: number) => `DCGM_FI_DEV_GPU_UTIL{gpu="${i % 8}",UUID="GPU-${i % 8}",i="${i}"} ${i}\n`;

describe('scrapeTarget limits, enforced while the body streams', () => {
  it('fails a scrape past the sample limit, stops reading and closes the connection', async () => {
    const endless = await streamForever(gpuLine(1));
    const error = await failure(scrape(endless.url, { sampleLimit: 500, maxBytes: 1e9 }));
    expect([error.outcome, error.message]).toEqual(['sample_limit', 'more than 500 samples']);
    // Stopped at the limit, not at the body limit: what was sent is socket buffers, not a gigabyte.
    expect(await endless.gone).toBeLessThan(16 * 1024 * 1024);
  });

  it('counts every sample, GPU or not, and accepts exactly the limit', async () => {
    const body = Array.from({ length: 100 }, (_, i) =>
      i % 2 ? gpuLine(i) : `go_goroutines{i="${i}"} 1\n`,
    ).join('');
    const base = await serve((_req, res) => res.writeHead(200).end(body));
    const ok = await scrape(`${base}/metrics`, { sampleLimit: 100 });
    expect([ok.samples.length, ok.skipped]).toEqual([50, 50]);
    expect((await failure(scrape(`${base}/metrics`, { sampleLimit: 99 }))).outcome).toBe('sample_limit');
  });

  it('fails an endless body at the body limit and closes the connection', async () => {
    const endless = await streamForever('# padding padding padding padding padding padding\n');
    const error = await failure(scrape(endless.url, { maxBytes: 2_000_000 }));
    expect([error.outcome, error.message]).toEqual(['too_large', 'body larger than 2000000 bytes']);
    expect(await endless.gone).toBeLessThan(16 * 1024 * 1024);
  });

  it('refuses a body whose declared length is over the limit before reading it', async () => {
    const endless = await streamForever('# x\n', { 'content-length': String(10 * 1024 * 1024) });
    expect((await failure(scrape(endless.url, { maxBytes: 1_000_000 }))).outcome).toBe('too_large');
    await endless.gone;
  });

  it('fails a scrape with a sample over the label limit, without reading all its labels', async () => {
    const labels = Array.from({ length: 5_000 }, (_, i) => `l${i}="v"`).join(',');
    const base = await serve((_req, res) =>
      res.writeHead(200).end(`${gpuLine(0)}m{UUID="GPU-0",${labels}} 1\n`),
    );
    const error = await failure(scrape(`${base}/metrics`, { labelLimit: 64 }));
    expect([error.outcome, error.message]).toEqual([
      'label_limit',
      'a sample has more than 64 labels (line 2)',
    ]);
  });

  it('fails a scrape with a line longer than 64 KiB', async () => {
    const endless = await streamForever('x'.repeat(1_000));
    const error = await failure(scrape(endless.url));
    expect([error.outcome, error.message]).toEqual([
      'line_too_long',
      'line 1 is longer than 65536 characters',
    ]);
    await endless.gone;
  });

  it('reports a body of only unreadable values as a parse error, quickly, however long the digits', async () => {
    const line = `DCGM_FI_DEV_GPU_UTIL{UUID="GPU-1"} ${'7'.repeat(60_000)}\n`;
    const base = await serve((_req, res) => res.writeHead(200).end(line.repeat(50)));
    const started = performance.now();
    const error = await failure(scrape(`${base}/metrics`, { maxBytes: 10_000_000 }));
    expect(error.outcome).toBe('parse_error');
    expect(error.message).toMatch(/line 1: value "7{40}" is out of range$/);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('reads a body split anywhere, multi-byte characters included', async () => {
    const body = `${gpuLine(1).replace('i="1"', 'i="é€😀"')}${gpuLine(2)}`;
    const bytes = Buffer.from(body);
    const base = await serve((_req, res) => {
      res.writeHead(200);
      let at = 0;
      const next = (): void => {
        if (at >= bytes.length) {
          res.end();
          return;
        }
        res.write(bytes.subarray(at, at + 3));
        at += 3;
        setImmediate(next);
      };
      next();
    });
    const result = await scrape(`${base}/metrics`);
    expect(result.samples.map((s) => s.labels['i'])).toEqual(['é€😀', '2']);
    expect(result.bytes).toBe(bytes.length);
  });
});
