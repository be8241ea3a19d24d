import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DcgmSimulator, SIMULATED_METRICS } from './dcgm-simulator';

const SAMPLE =
  /^(DCGM_FI_[A-Z0-9_]+)\{gpu="(\d+)",UUID="(GPU-[0-9a-f-]{36})",pci_bus_id="[0-9A-F:.]+",device="nvidia\d+",modelName="([^"]+)",Hostname="([^"]+)",DCGM_FI_DRIVER_VERSION="[^"]+"\} (-?\d+(?:\.\d{6})?)$/;

describe('DcgmSimulator', () => {
  const simulator = new DcgmSimulator({ hosts: 3, gpusPerHost: 2, now: () => 1_700_000_000_000 });
  let server: Server;
  let base: string;

  beforeAll(async () => {
    server = createServer(simulator.handle);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it("serves each host's page in dcgm-exporter's layout: HELP and TYPE per family, one sample per GPU", async () => {
    const res = await fetch(`${base}/hosts/2/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const lines = (await res.text()).trimEnd().split('\n');
    expect(lines.filter((line) => line.startsWith('# HELP '))).toHaveLength(SIMULATED_METRICS);
    expect(lines.filter((line) => /^# TYPE \S+ (gauge|counter)$/.test(line))).toHaveLength(SIMULATED_METRICS);
    const samples = lines.filter((line) => !line.startsWith('#'));
    expect(samples).toHaveLength(SIMULATED_METRICS * 2);
    for (const line of samples) expect(line).toMatch(SAMPLE);
    expect(new Set(samples.map((line) => SAMPLE.exec(line)?.[5]))).toEqual(new Set(['sim-node-002']));
  });

  it('names the same GPUs on every page and in its inventory', async () => {
    const uuids = new Set<string>();
    for (const host of [1, 2, 3]) {
      for (const line of simulator.render(host).split('\n')) {
        const uuid = SAMPLE.exec(line)?.[3];
        if (uuid) uuids.add(uuid);
      }
    }
    expect(
      simulator
        .inventory()
        .map((gpu) => gpu.uuid)
        .sort(),
    ).toEqual([...uuids].sort());
    expect(simulator.inventory()).toHaveLength(6);
    expect(new DcgmSimulator({ hosts: 3, gpusPerHost: 2 }).inventory()).toEqual(simulator.inventory());
  });

  it('serves host 1 at /metrics, as a single exporter does', async () => {
    expect(await fetch(`${base}/metrics`).then((res) => res.text())).toBe(simulator.render(1));
  });

  it('answers /healthz, 404 for a host it does not simulate, 405 for anything but GET', async () => {
    const health = await fetch(`${base}/healthz`);
    expect(await health.json()).toEqual({ status: 'ok', service: 'dcgm-simulator' });
    expect((await fetch(`${base}/hosts/4/metrics`)).status).toBe(404);
    expect((await fetch(`${base}/hosts/0/metrics`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });
});
