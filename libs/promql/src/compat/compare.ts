import type { PrometheusData } from '../json';

/** A query API answer as Prometheus sends it (and as the engine's answer is shaped for comparison). */
export type ApiAnswer =
  { status: 'success'; data: PrometheusData } | { status: 'error'; errorType: string; error: string };

type Point = [number, string];

export interface CompareOptions {
  /** Compare the order of a vector's elements (sort, sort_desc, topk, bottomk at the top). */
  ordered?: boolean;
  /**
   * The order of equal values too: for an engine set to the tie order (EngineOptions.tieOrder) of
   * the Go release the Prometheus compared with was built with. Otherwise equal values may come in
   * any order, as from a Prometheus built with another Go.
   */
  exactTies?: boolean;
  /** Relative tolerance for float values (exact where both are whole or special). */
  relativeTolerance?: number;
}

/** Whether two API values are equal: NaN equals NaN, infinities exactly, floats within tolerance. */
export function sameValue(expected: string, actual: string, tolerance: number): boolean {
  if (expected === actual) return true;
  const a = Number(expected === '+Inf' ? 'Infinity' : expected === '-Inf' ? '-Infinity' : expected);
  const b = Number(actual === '+Inf' ? 'Infinity' : actual === '-Inf' ? '-Infinity' : actual);
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  if (!Number.isFinite(a) || !Number.isFinite(b)) return a === b;
  return Math.abs(a - b) <= tolerance * Math.max(Math.abs(a), Math.abs(b));
}

function metricKey(metric: Record<string, string>): string {
  return JSON.stringify(Object.entries(metric).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)));
}

/**
 * Every difference between what Prometheus answered (`expected`) and what the engine answered
 * (`actual`): error types, result types, series (by label set), timestamps and values. Empty when
 * they agree.
 */
export function compareAnswers(
  expected: ApiAnswer,
  actual: ApiAnswer,
  options: CompareOptions = {},
): string[] {
  const tolerance = options.relativeTolerance ?? 1e-9;
  if (expected.status === 'error' || actual.status === 'error') {
    if (expected.status === 'error' && actual.status === 'error') {
      return expected.errorType === actual.errorType
        ? []
        : [
            `error type ${actual.errorType} (${actual.error}), Prometheus: ${expected.errorType} (${expected.error})`,
          ];
    }
    return expected.status === 'error'
      ? [`answered, Prometheus failed with ${expected.errorType}: ${expected.error}`]
      : [`failed with ${(actual as { error: string }).error}, Prometheus answered`];
  }
  const e = expected.data;
  const a = actual.data;
  if (e.resultType !== a.resultType) return [`result type ${a.resultType}, Prometheus: ${e.resultType}`];
  const out: string[] = [];
  const point = (what: string, ep: Point, ap: Point) => {
    if (ep[0] !== ap[0]) out.push(`${what}: time ${ap[0]}, Prometheus: ${ep[0]}`);
    else if (!sameValue(ep[1], ap[1], tolerance))
      out.push(`${what} @${ep[0]}: ${ap[1]}, Prometheus: ${ep[1]}`);
  };
  switch (e.resultType) {
    case 'scalar':
    case 'string':
      point('value', e.result as Point, a.result as Point);
      break;
    case 'vector': {
      const av = a.result as typeof e.result;
      const byKey = new Map(av.map((s) => [metricKey(s.metric), s]));
      const expectedKeys = new Set(e.result.map((s) => metricKey(s.metric)));
      for (const s of e.result) {
        const key = metricKey(s.metric);
        const mine = byKey.get(key);
        if (!mine) out.push(`missing series ${key}`);
        else point(`series ${key}`, s.value, mine.value);
      }
      for (const s of av)
        if (!expectedKeys.has(metricKey(s.metric))) out.push(`extra series ${metricKey(s.metric)}`);
      if (options.ordered && out.length === 0)
        out.push(...compareOrder(e.result, av, tolerance, options.exactTies ?? false));
      break;
    }
    case 'matrix': {
      const am = a.result as typeof e.result;
      const byKey = new Map(am.map((s) => [metricKey(s.metric), s]));
      const expectedKeys = new Set(e.result.map((s) => metricKey(s.metric)));
      for (const s of e.result) {
        const key = metricKey(s.metric);
        const mine = byKey.get(key);
        if (!mine) {
          out.push(`missing series ${key}`);
          continue;
        }
        const times = new Map(mine.values.map((p) => [p[0], p]));
        for (const p of s.values) {
          const m = times.get(p[0]);
          if (!m) out.push(`series ${key}: missing point @${p[0]}`);
          else point(`series ${key}`, p, m);
        }
        const expectedTimes = new Set(s.values.map((p) => p[0]));
        for (const p of mine.values)
          if (!expectedTimes.has(p[0])) out.push(`series ${key}: extra point @${p[0]}`);
      }
      for (const s of am)
        if (!expectedKeys.has(metricKey(s.metric))) out.push(`extra series ${metricKey(s.metric)}`);
      break;
    }
  }
  return out;
}

/** Order must match; among equal values only when `exactTies`. */
function compareOrder(
  e: { metric: Record<string, string>; value: Point }[],
  a: { metric: Record<string, string>; value: Point }[],
  tolerance: number,
  exactTies: boolean,
): string[] {
  for (let i = 0; i < e.length; i++) {
    if (metricKey(e[i].metric) === metricKey(a[i].metric)) continue;
    if (!exactTies && sameValue(e[i].value[1], a[i].value[1], tolerance)) continue;
    return [`order differs at ${i}: ${metricKey(a[i].metric)}, Prometheus: ${metricKey(e[i].metric)}`];
  }
  return [];
}
