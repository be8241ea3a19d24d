// The compatibility suite's parts, for suites that compare other ways in (the streamer's HTTP API
// through the gateway) with a real Prometheus on the same data.
export { type ApiAnswer, compareAnswers, type CompareOptions, sameValue } from './compare';
export {
  DATASET_END_MS,
  DATASET_SAMPLES,
  DATASET_START_MS,
  type DatasetSeries,
  generateDataset,
  SCRAPE_INTERVAL_MS,
} from './dataset';
export { type PrometheusServer, startPrometheus } from './prometheus-server';
export {
  COMPAT_QUERIES,
  type CompatQuery,
  DCGM_DASHBOARD,
  INSTANT_TIMES,
  LANGUAGE,
  PROJECT_DASHBOARD,
  RANGE_CASES,
  RANGES,
} from './queries';
export { remoteWrite, remoteWriteDataset, type WriteSeries } from './remote-write';
