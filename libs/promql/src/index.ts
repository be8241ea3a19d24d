export * from './ast';
export { parseExpr, parseMetricSelector } from './parser';
export {
  PromQLEngine,
  type EngineOptions,
  type QueryOptions,
  type QueryResult,
  type InstantSample,
  type RangeSeries,
} from './engine';
export {
  BadDataError,
  ExecutionError,
  PromQLError,
  type PromErrorType,
  type PrometheusErrorBody,
  QueryCanceledError,
  QueryTimeoutError,
  TooManySamplesError,
  toPrometheusError,
} from './errors';
export { toPrometheusData, type PrometheusData } from './json';
export * from './labels';
export { compileMatcher, type CompiledMatcher, type Matcher, type MatchType, setMatches } from './matchers';
export {
  isStaleMarker,
  MemorySeriesSource,
  type SampleInput,
  type SelectHints,
  type SeriesSamples,
  type SeriesSource,
  writeStaleMarker,
} from './source';
export { formatSampleValue, formatValue } from './format';
export type { TieOrder } from './go-sort';
export { parseDuration, formatDuration } from './duration';
