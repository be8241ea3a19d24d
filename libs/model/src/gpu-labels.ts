/**
 * dcgm-exporter's labels that name a GPU and where it runs: the labels the collector turns into a
 * TelemetrySample's typed fields, and the streamer into a series' GPU columns. Both the current and
 * the older exporter spellings.
 */
export const GPU_ID_LABELS = ['UUID', 'uuid'];
export const HOSTNAME_LABELS = ['Hostname', 'hostname'];
export const CONTAINER_LABELS = ['container', 'container_name'];
export const POD_LABELS = ['pod', 'pod_name'];
export const NAMESPACE_LABELS = ['namespace', 'pod_namespace'];
export const GPU_TYPED_LABELS: ReadonlySet<string> = new Set([
  ...GPU_ID_LABELS,
  ...HOSTNAME_LABELS,
  ...CONTAINER_LABELS,
  ...POD_LABELS,
  ...NAMESPACE_LABELS,
  'gpu',
  'device',
  'modelName',
]);

/**
 * What a GPU id may be: the exporter's UUIDs (GPU-…, MIG-…) and their like, 1-128 letters, digits
 * and `_ . : -`. It is a path segment of the REST API, so a UUID label outside it names no GPU: a
 * scrape leaves such samples out, remote write keeps the series with its labels only (for PromQL).
 */
export const GPU_ID = /^[\w.:-]{1,128}$/;
export const GPU_ID_MESSAGE =
  'must be a GPU id (1-128 letters, digits and _ . : -) such as GPU-5fd4f087-86f3-7a43-b711-4771313afc50';

/** The GPU a label set names: its first non-empty UUID label, if that is a GPU id; else null. */
export function gpuIdOf(labels: Record<string, string>): string | null {
  const id = firstLabel(labels, GPU_ID_LABELS);
  return id !== null && GPU_ID.test(id) ? id : null;
}

/** The first of `names` with a non-empty value. */
export function firstLabel(labels: Record<string, string>, names: readonly string[]): string | null {
  for (const name of names) {
    const value = labels[name];
    if (value !== undefined && value !== '') return value;
  }
  return null;
}

/** Where a GPU series' samples come from, besides its UUID: the descriptive GPU columns. */
export interface GpuFields {
  gpuIndex: number | null;
  device: string | null;
  modelName: string | null;
  hostname: string | null;
  container: string | null;
  pod: string | null;
  namespace: string | null;
}

/** A series' GPU columns, and the labels that are not one of them. */
export interface GpuColumns extends GpuFields {
  gpuId: string;
  /** Every other label. */
  labels: Record<string, string>;
}

/**
 * The GPU columns of a label set, the way the collector reads a dcgm-exporter scrape; null when the
 * labels name no GPU (no UUID, or one that is no GPU id), so the series is stored with its labels only.
 */
export function gpuColumnsOf(labels: Record<string, string>): GpuColumns | null {
  const gpuId = gpuIdOf(labels);
  if (gpuId === null) return null;
  const rest: Record<string, string> = {};
  for (const key in labels) {
    if (!GPU_TYPED_LABELS.has(key)) rest[key] = labels[key] as string;
  }
  const gpu = labels['gpu'];
  return {
    gpuId,
    gpuIndex: gpu !== undefined && /^\d{1,5}$/.test(gpu) && Number(gpu) <= 65_535 ? Number(gpu) : null,
    device: firstLabel(labels, ['device']),
    modelName: firstLabel(labels, ['modelName']),
    hostname: firstLabel(labels, HOSTNAME_LABELS),
    container: firstLabel(labels, CONTAINER_LABELS),
    pod: firstLabel(labels, POD_LABELS),
    namespace: firstLabel(labels, NAMESPACE_LABELS),
    labels: rest,
  };
}

/**
 * The Prometheus label set of a series stored from GPU columns (a scrape made by the collector),
 * in dcgm-exporter's current spellings; empty values are no label. The SQL function
 * telemetry_gpu_labels() computes the same for the series stored before label sets were kept.
 */
export function labelsOfGpuColumns(
  columns: Omit<GpuColumns, 'gpuId'> & { gpuId: string | null },
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key in columns.labels) {
    const value = columns.labels[key] as string;
    if (value !== '') out[key] = value;
  }
  const typed: [string, string | number | null][] = [
    ['UUID', columns.gpuId],
    ['gpu', columns.gpuIndex],
    ['device', columns.device],
    ['modelName', columns.modelName],
    ['Hostname', columns.hostname],
    ['container', columns.container],
    ['pod', columns.pod],
    ['namespace', columns.namespace],
  ];
  for (const [name, value] of typed) {
    if (value !== null && value !== '') out[name] = String(value);
  }
  return out;
}
