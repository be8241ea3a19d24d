import type { QueryResult } from './engine';
import { formatSampleValue, formatValue, toApiTimestamp } from './format';
import { labelsToRecord } from './labels';

type ApiPoint = [number, string];

/** The `data` of Prometheus's query API response: `{resultType, result}`, values as strings. */
export type PrometheusData =
  | { resultType: 'vector'; result: { metric: Record<string, string>; value: ApiPoint }[] }
  | { resultType: 'matrix'; result: { metric: Record<string, string>; values: ApiPoint[] }[] }
  | { resultType: 'scalar'; result: ApiPoint }
  | { resultType: 'string'; result: [number, string] };

export function toPrometheusData(r: QueryResult): PrometheusData {
  switch (r.resultType) {
    case 'vector':
      return {
        resultType: 'vector',
        result: r.result.map((s) => ({
          metric: labelsToRecord(s.labels),
          value: [toApiTimestamp(s.t), formatSampleValue(s.value)],
        })),
      };
    case 'matrix':
      return {
        resultType: 'matrix',
        result: r.result.map((s) => ({
          metric: labelsToRecord(s.labels),
          values: s.timestamps.map((t, i): ApiPoint => [toApiTimestamp(t), formatSampleValue(s.values[i])]),
        })),
      };
    case 'scalar':
      return { resultType: 'scalar', result: [toApiTimestamp(r.result.t), formatValue(r.result.value)] };
    case 'string':
      return { resultType: 'string', result: [toApiTimestamp(r.result.t), r.result.value] };
  }
}
