import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** The fleet to simulate; hosts are named `<hostPrefix>-001` on, and `now()` (ms) drives the values. */
export interface SimulatorOptions {
  hosts: number;
  gpusPerHost: number;
  hostPrefix?: string;
  modelName?: string;
  driverVersion?: string;
  now?: () => number;
}

interface GpuState {
  index: number;
  uuid: string;
  pciBusId: string;
  phase: number;
}

type Kind = 'gauge' | 'counter';
type Metric = [
  name: string,
  kind: Kind,
  help: string,
  value: (load: number, gpu: GpuState, t: number) => number,
  float?: boolean,
];

// The 25 default-counters.csv fields (the driver version is a label), plus 15 commonly enabled ones: 40.
const METRICS: Metric[] = [
  ['DCGM_FI_DEV_SM_CLOCK', 'gauge', 'SM clock frequency (in MHz).', (l) => Math.round(345 + l * 16.35)],
  ['DCGM_FI_DEV_MEM_CLOCK', 'gauge', 'Memory clock frequency (in MHz).', () => 2619],
  ['DCGM_FI_DEV_MEMORY_TEMP', 'gauge', 'Memory temperature (in C).', (l) => Math.round(30 + l * 0.35)],
  ['DCGM_FI_DEV_GPU_TEMP', 'gauge', 'GPU temperature (in C).', (l) => Math.round(28 + l * 0.5)],
  [
    'DCGM_FI_DEV_POWER_USAGE',
    'gauge',
    'Power draw (in W).',
    (l, g, t) => 70 + l * 6 + Math.sin(t / 7 + g.phase) * 3,
    true,
  ],
  [
    'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION',
    'counter',
    'Total energy consumption since boot (in mJ).',
    (l, g, t) => Math.round(t * 250_000 + g.phase * 1e9),
  ],
  ['DCGM_FI_DEV_PCIE_REPLAY_COUNTER', 'counter', 'Total number of PCIe retries.', () => 0],
  ['DCGM_FI_DEV_GPU_UTIL', 'gauge', 'GPU utilization (in %).', (l) => Math.round(l)],
  ['DCGM_FI_DEV_MEM_COPY_UTIL', 'gauge', 'Memory utilization (in %).', (l) => Math.round(l * 0.6)],
  ['DCGM_FI_DEV_ENC_UTIL', 'gauge', 'Encoder utilization (in %).', () => 0],
  ['DCGM_FI_DEV_DEC_UTIL', 'gauge', 'Decoder utilization (in %).', () => 0],
  ['DCGM_FI_DEV_XID_ERRORS', 'gauge', 'Value of the last XID error encountered.', () => 0],
  ['DCGM_FI_DEV_FB_FREE', 'gauge', 'Framebuffer memory free (in MiB).', (l) => Math.round(81_000 - l * 770)],
  ['DCGM_FI_DEV_FB_USED', 'gauge', 'Framebuffer memory used (in MiB).', (l) => Math.round(4 + l * 770)],
  ['DCGM_FI_DEV_FB_RESERVED', 'gauge', 'Framebuffer memory reserved (in MiB).', () => 535],
  [
    'DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL',
    'counter',
    'Total number of NVLink bandwidth counters for all lanes.',
    (l, g, t) => Math.round(t * 1e6),
  ],
  ['DCGM_FI_DEV_VGPU_LICENSE_STATUS', 'gauge', 'vGPU License status', () => 0],
  [
    'DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS',
    'counter',
    'Number of remapped rows for uncorrectable errors',
    () => 0,
  ],
  [
    'DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS',
    'counter',
    'Number of remapped rows for correctable errors',
    () => 0,
  ],
  ['DCGM_FI_DEV_ROW_REMAP_FAILURE', 'gauge', 'Whether remapping of rows has failed', () => 0],
  [
    'DCGM_FI_PROF_GR_ENGINE_ACTIVE',
    'gauge',
    'Ratio of time the graphics engine is active.',
    (l) => l / 100,
    true,
  ],
  [
    'DCGM_FI_PROF_PIPE_TENSOR_ACTIVE',
    'gauge',
    'Ratio of cycles the tensor (HMMA) pipe is active.',
    (l) => (l / 100) * 0.7,
    true,
  ],
  [
    'DCGM_FI_PROF_DRAM_ACTIVE',
    'gauge',
    'Ratio of cycles the device memory interface is active sending or receiving data.',
    (l) => (l / 100) * 0.5,
    true,
  ],
  [
    'DCGM_FI_PROF_PCIE_TX_BYTES',
    'gauge',
    'The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second.',
    (l) => Math.round(l * 2e6),
  ],
  [
    'DCGM_FI_PROF_PCIE_RX_BYTES',
    'gauge',
    'The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second.',
    (l) => Math.round(l * 3e6),
  ],
  [
    'DCGM_FI_PROF_SM_ACTIVE',
    'gauge',
    'The ratio of cycles an SM has at least 1 warp assigned.',
    (l) => (l / 100) * 0.9,
    true,
  ],
  [
    'DCGM_FI_PROF_SM_OCCUPANCY',
    'gauge',
    'The ratio of number of warps resident on an SM.',
    (l) => (l / 100) * 0.4,
    true,
  ],
  ['DCGM_FI_PROF_PIPE_FP64_ACTIVE', 'gauge', 'Ratio of cycles the fp64 pipes are active.', () => 0, true],
  [
    'DCGM_FI_PROF_PIPE_FP32_ACTIVE',
    'gauge',
    'Ratio of cycles the fp32 pipes are active.',
    (l) => (l / 100) * 0.2,
    true,
  ],
  [
    'DCGM_FI_PROF_PIPE_FP16_ACTIVE',
    'gauge',
    'Ratio of cycles the fp16 pipes are active.',
    (l) => (l / 100) * 0.3,
    true,
  ],
  [
    'DCGM_FI_PROF_NVLINK_TX_BYTES',
    'gauge',
    'The rate of data transmitted over NVLink, not including protocol headers, in bytes per second.',
    (l) => Math.round(l * 5e7),
  ],
  [
    'DCGM_FI_PROF_NVLINK_RX_BYTES',
    'gauge',
    'The rate of data received over NVLink, not including protocol headers, in bytes per second.',
    (l) => Math.round(l * 5e7),
  ],
  [
    'DCGM_FI_DEV_POWER_VIOLATION',
    'counter',
    'Throttling duration due to power constraints (in us).',
    () => 0,
  ],
  [
    'DCGM_FI_DEV_THERMAL_VIOLATION',
    'counter',
    'Throttling duration due to thermal constraints (in us).',
    () => 0,
  ],
  ['DCGM_FI_DEV_ECC_SBE_VOL_TOTAL', 'counter', 'Total number of single-bit volatile ECC errors.', () => 0],
  ['DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', 'counter', 'Total number of double-bit volatile ECC errors.', () => 0],
  ['DCGM_FI_DEV_ECC_SBE_AGG_TOTAL', 'counter', 'Total number of single-bit persistent ECC errors.', () => 0],
  ['DCGM_FI_DEV_ECC_DBE_AGG_TOTAL', 'counter', 'Total number of double-bit persistent ECC errors.', () => 0],
  ['DCGM_FI_DEV_RETIRED_PENDING', 'counter', 'Number of pages pending retirement.', () => 0],
  ['DCGM_FI_DEV_CLOCK_THROTTLE_REASONS', 'gauge', 'Current clock throttle reasons.', (l) => (l > 95 ? 4 : 0)],
];

export const SIMULATED_METRICS = METRICS.length;

/**
 * A stand-in for NVIDIA dcgm-exporter: every simulated host serves `/hosts/<n>/metrics` in the
 * exact text layout of the real exporter (HELP/TYPE per family, labels in its order, `%f`
 * floats), with values that change over time. `npm start` points the collector at it.
 */
export class DcgmSimulator {
  private readonly hostNames: string[];
  private readonly gpus: GpuState[][];

  constructor(private readonly options: SimulatorOptions) {
    const prefix = options.hostPrefix ?? 'sim-node';
    const width = String(options.hosts).length < 3 ? 3 : String(options.hosts).length;
    this.hostNames = Array.from(
      { length: options.hosts },
      (_, h) => `${prefix}-${String(h + 1).padStart(width, '0')}`,
    );
    this.gpus = this.hostNames.map((host) =>
      Array.from({ length: options.gpusPerHost }, (_, index) => {
        const hash = createHash('sha1').update(`${host}/${index}`).digest('hex');
        return {
          index,
          uuid: `GPU-${hash.slice(0, 8)}-${hash.slice(8, 12)}-${hash.slice(12, 16)}-${hash.slice(16, 20)}-${hash.slice(20, 32)}`,
          pciBusId: `00000000:${(0x18 + index * 0x10).toString(16).toUpperCase().padStart(2, '0')}:00.0`,
          phase: (parseInt(hash.slice(32, 40), 16) / 0xffffffff) * Math.PI * 2,
        };
      }),
    );
  }

  get hosts(): number {
    return this.hostNames.length;
  }

  /** All GPUs, as a test or a load check expects them back from the query API. */
  inventory(): { host: string; index: number; uuid: string }[] {
    return this.hostNames.flatMap((host, h) =>
      (this.gpus[h] ?? []).map((g) => ({ host, index: g.index, uuid: g.uuid })),
    );
  }

  /** The exporter's page for host `host` (1-based). */
  render(host: number): string {
    const name = this.hostNames[host - 1];
    const gpus = this.gpus[host - 1];
    if (!name || !gpus) throw new RangeError(`no host ${host}`);
    const t = (this.options.now ?? Date.now)() / 1000;
    const model = this.options.modelName ?? 'NVIDIA H100 80GB HBM3';
    const driver = this.options.driverVersion ?? '535.129.03';
    const loads = gpus.map((g) =>
      Math.max(0, Math.min(100, 50 + 45 * Math.sin(t / 60 + g.phase) + 5 * Math.sin(t / 3 + g.phase * 7))),
    );
    const lines: string[] = [];
    for (const [metric, kind, help, value, float] of METRICS) {
      lines.push(`# HELP ${metric} ${help}`, `# TYPE ${metric} ${kind}`);
      gpus.forEach((g, i) => {
        const v = value(loads[i] ?? 0, g, t);
        lines.push(
          `${metric}{gpu="${g.index}",UUID="${g.uuid}",pci_bus_id="${g.pciBusId}",device="nvidia${g.index}",modelName="${model}",Hostname="${name}",DCGM_FI_DRIVER_VERSION="${driver}"} ${float ? v.toFixed(6) : String(v)}`,
        );
      });
    }
    return lines.join('\n') + '\n';
  }

  /** GET /hosts/<n>/metrics (and /metrics for host 1); GET /healthz. */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const match = /^\/hosts\/(\d+)\/metrics$/.exec(path);
    const host = path === '/metrics' ? 1 : match ? Number(match[1]) : undefined;
    if (req.method !== 'GET') {
      res.writeHead(405).end();
    } else if (path === '/healthz') {
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: 'ok', service: 'dcgm-simulator' }));
    } else if (host !== undefined && host >= 1 && host <= this.hosts) {
      res
        .writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
        .end(this.render(host));
    } else {
      res
        .writeHead(404, { 'content-type': 'text/plain' })
        .end(`no such page; hosts are /hosts/1/metrics .. /hosts/${this.hosts}/metrics\n`);
    }
  };
}
