import { type Labels, labelsFromRecord } from '../labels';
import { writeStaleMarker } from '../source';

/** A series of the data set: labels, sample times (ms), values with stale markers as bits. */
export interface DatasetSeries {
  labels: Labels;
  timestamps: number[];
  values: Float64Array;
}

export const SCRAPE_INTERVAL_MS = 15_000;
/** 2024-06-03T00:00:00Z: a fixed start keeps every run's answers the same. */
export const DATASET_START_MS = Date.UTC(2024, 5, 3);
export const DATASET_SAMPLES = 481; // two hours at 15 s
export const DATASET_END_MS = DATASET_START_MS + (DATASET_SAMPLES - 1) * SCRAPE_INTERVAL_MS;

/** host-2 stops answering for ten minutes: a stale marker at sample 300, nothing until 340. */
export const GAP_FROM = 300;
export const GAP_TO = 340;
/** host-3's GPU 3 is removed at sample 400 (stale marker, then nothing). */
export const REMOVED_AT = 400;
/** The exporter on host-1 restarts at sample 200: its counters start again from zero. */
export const RESET_AT = 200;

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Kind = 'gauge' | 'counter';
interface MetricSpec {
  name: string;
  kind: Kind;
  /** The value (gauge) or increment (counter) at sample i. */
  next: (r: () => number, i: number, prev: number) => number;
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;

const METRICS: MetricSpec[] = [
  { name: 'DCGM_FI_DEV_GPU_UTIL', kind: 'gauge', next: (r) => Math.floor(r() * 101) },
  {
    name: 'DCGM_FI_DEV_GPU_TEMP',
    kind: 'gauge',
    next: (r, _i, p) => Math.max(30, Math.min(92, (p || 55) + Math.floor(r() * 5) - 2)),
  },
  {
    name: 'DCGM_FI_DEV_MEMORY_TEMP',
    kind: 'gauge',
    next: (r, _i, p) => Math.max(30, Math.min(95, (p || 60) + Math.floor(r() * 5) - 2)),
  },
  { name: 'DCGM_FI_DEV_POWER_USAGE', kind: 'gauge', next: (r) => round(60 + r() * 640, 3) },
  { name: 'DCGM_FI_DEV_FB_USED', kind: 'gauge', next: (r) => Math.floor(r() * 81_000) },
  { name: 'DCGM_FI_DEV_FB_FREE', kind: 'gauge', next: (r) => Math.floor(r() * 81_000) },
  { name: 'DCGM_FI_DEV_SM_CLOCK', kind: 'gauge', next: (r) => 210 + 15 * Math.floor(r() * 120) },
  { name: 'DCGM_FI_DEV_MEM_CLOCK', kind: 'gauge', next: (r) => (r() < 0.9 ? 2619 : 1593) },
  { name: 'DCGM_FI_PROF_GR_ENGINE_ACTIVE', kind: 'gauge', next: (r) => round(r(), 6) },
  { name: 'DCGM_FI_PROF_PIPE_TENSOR_ACTIVE', kind: 'gauge', next: (r) => round(r() * 0.8, 6) },
  {
    name: 'DCGM_FI_DEV_XID_ERRORS',
    kind: 'gauge',
    next: (r) => (r() < 0.01 ? [13, 31, 43, 48, 79][Math.floor(r() * 5)] : 0),
  },
  {
    name: 'DCGM_FI_DEV_CLOCK_THROTTLE_REASONS',
    kind: 'gauge',
    next: (r) => [0, 0, 0, 1, 4, 8, 32, 64][Math.floor(r() * 8)],
  },
  {
    name: 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION',
    kind: 'counter',
    next: (r) => Math.floor(15_000 * (60 + r() * 640)),
  },
  { name: 'DCGM_FI_PROF_PCIE_TX_BYTES', kind: 'counter', next: (r) => Math.floor(r() * 4e9) },
  { name: 'DCGM_FI_PROF_PCIE_RX_BYTES', kind: 'counter', next: (r) => Math.floor(r() * 6e9) },
  { name: 'DCGM_FI_PROF_NVLINK_TX_BYTES', kind: 'counter', next: (r) => Math.floor(r() * 3e10) },
  { name: 'DCGM_FI_PROF_NVLINK_RX_BYTES', kind: 'counter', next: (r) => Math.floor(r() * 3e10) },
  { name: 'DCGM_FI_DEV_ECC_SBE_VOL_TOTAL', kind: 'counter', next: (r) => (r() < 0.05 ? 1 : 0) },
  { name: 'DCGM_FI_DEV_ECC_DBE_VOL_TOTAL', kind: 'counter', next: (r) => (r() < 0.005 ? 1 : 0) },
  {
    name: 'DCGM_FI_DEV_PCIE_REPLAY_COUNTER',
    kind: 'counter',
    next: (r) => (r() < 0.1 ? Math.floor(r() * 3) : 0),
  },
];

const HOSTS = ['host-0', 'host-1', 'host-2', 'host-3'];
const GPUS_PER_HOST = 4;
const BUCKETS = ['0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '+Inf'];

/** Whether host/gpu has a sample (and which kind) at index i. */
function presence(host: string, gpu: number, i: number): 'sample' | 'stale' | 'none' {
  if (host === 'host-2') {
    if (i === GAP_FROM) return 'stale';
    if (i > GAP_FROM && i < GAP_TO) return 'none';
  }
  if (host === 'host-3' && gpu === 3) {
    if (i === REMOVED_AT) return 'stale';
    if (i > REMOVED_AT) return 'none';
  }
  return 'sample';
}

function build(
  labels: Record<string, string>,
  host: string,
  gpu: number,
  value: (i: number) => number,
): DatasetSeries {
  const timestamps: number[] = [];
  const kinds: ('sample' | 'stale')[] = [];
  const raw: number[] = [];
  for (let i = 0; i < DATASET_SAMPLES; i++) {
    const p = presence(host, gpu, i);
    const v = value(i);
    if (p === 'none') continue;
    timestamps.push(DATASET_START_MS + i * SCRAPE_INTERVAL_MS);
    kinds.push(p);
    raw.push(v);
  }
  const values = new Float64Array(raw);
  kinds.forEach((k, j) => {
    if (k === 'stale') writeStaleMarker(values, j);
  });
  return { labels: labelsFromRecord(labels), timestamps, values };
}

/**
 * A dcgm-exporter-like fleet: 4 hosts with 4 GPUs each (H100s and A100s, host-3 split with MIG),
 * 20 DCGM gauges and counters per GPU, a scrape-duration histogram per host, every 15 s for two
 * hours; with a ten-minute outage (stale markers), a removed GPU, a counter reset, and one NaN.
 */
export function generateDataset(seed = 42): DatasetSeries[] {
  const r = mulberry32(seed);
  const out: DatasetSeries[] = [];
  for (const [h, host] of HOSTS.entries()) {
    for (let gpu = 0; gpu < GPUS_PER_HOST; gpu++) {
      const model = h % 2 === 0 ? 'NVIDIA H100 80GB HBM3' : 'NVIDIA A100-SXM4-40GB';
      const base: Record<string, string> = {
        job: 'dcgm-exporter',
        instance: `${host}:9400`,
        Hostname: host,
        gpu: String(gpu),
        UUID: `GPU-${h}${gpu}${'0'.repeat(6)}-aaaa-bbbb-cccc-${String(h * 10 + gpu).padStart(12, '0')}`,
        device: `nvidia${gpu}`,
        modelName: model,
        DCGM_FI_DRIVER_VERSION: '535.129.03',
      };
      if (host === 'host-3') {
        base.GPU_I_ID = String(gpu % 2);
        base.GPU_I_PROFILE = '3g.40gb';
      }
      for (const m of METRICS) {
        const values: number[] = [];
        let prev = 0;
        for (let i = 0; i < DATASET_SAMPLES; i++) {
          if (m.kind === 'gauge') {
            prev = m.next(r, i, prev);
          } else {
            const reset = host === 'host-1' && i === RESET_AT;
            prev = reset ? m.next(r, i, 0) % 1000 : prev + m.next(r, i, prev);
          }
          values.push(prev);
        }
        if (m.name === 'DCGM_FI_DEV_POWER_USAGE' && host === 'host-0' && gpu === 0) values[100] = NaN;
        out.push(build({ ...base, __name__: m.name }, host, gpu, (i) => values[i]));
      }
    }
    // A classic histogram per host: cumulative bucket counters, _sum and _count.
    const counts = new Array<number>(BUCKETS.length).fill(0);
    const bucketValues = BUCKETS.map(() => [] as number[]);
    const sums: number[] = [];
    const totals: number[] = [];
    let sum = 0;
    let total = 0;
    for (let i = 0; i < DATASET_SAMPLES; i++) {
      for (let k = 0; k < 20; k++) {
        const d = Math.exp(-6 + r() * 6) * 0.4;
        sum += d;
        total++;
        BUCKETS.forEach((b, j) => {
          if (b === '+Inf' || d <= Number(b)) counts[j]++;
        });
      }
      BUCKETS.forEach((_, j) => bucketValues[j].push(counts[j]));
      sums.push(round(sum, 6));
      totals.push(total);
    }
    const hl = { job: 'dcgm-exporter', instance: `${host}:9400`, Hostname: host };
    BUCKETS.forEach((le, j) =>
      out.push(
        build(
          { ...hl, __name__: 'dcgm_scrape_duration_seconds_bucket', le },
          host,
          -1,
          (i) => bucketValues[j][i],
        ),
      ),
    );
    out.push(build({ ...hl, __name__: 'dcgm_scrape_duration_seconds_sum' }, host, -1, (i) => sums[i]));
    out.push(build({ ...hl, __name__: 'dcgm_scrape_duration_seconds_count' }, host, -1, (i) => totals[i]));
  }
  return out;
}
