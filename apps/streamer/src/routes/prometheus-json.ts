import { formatSampleValue, formatValue, type Labels, type QueryResult } from '@gpu-telemetry/promql';
import type { Response } from 'express';

const metricJson = (labels: Labels) => {
  let out = '{';
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i] as Labels[number];
    out += `${i ? ',' : ''}${JSON.stringify(l.name)}:${JSON.stringify(l.value)}`;
  }
  return `${out}}`;
};
/** A vector or matrix point; a scalar's value is written as Prometheus' Scalar is, never in exponent form. */
const point = (ms: number, value: number, format = formatSampleValue) => `[${ms / 1000},"${format(value)}"]`;

/** Resolves when the response can take more, or is gone; leaves no listener behind. */
function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** Bytes gathered before a write: large answers go out in pieces, with backpressure. */
const PIECE = 256 * 1024;

/**
 * Sends a query's answer in Prometheus' envelope (`{"status":"success","data":{resultType,
 * result},"warnings"?}`, values as strings), written as it is serialised: an answer of millions of points
 * never becomes one string (V8 caps strings at 512 MiB) nor an object per point.
 */
export async function sendQueryResult(
  res: Response,
  result: QueryResult & { warnings?: string[] },
): Promise<void> {
  res.status(200).type('application/json');
  let pending = `{"status":"success","data":{"resultType":"${result.resultType}","result":`;
  const flush = async (force = false) => {
    if (!force && pending.length < PIECE) return;
    const ok = res.write(pending);
    pending = '';
    if (!ok && !res.destroyed) await drained(res);
  };
  switch (result.resultType) {
    case 'scalar':
    case 'string':
      pending +=
        result.resultType === 'scalar'
          ? point(result.result.t, result.result.value, formatValue)
          : `[${result.result.t / 1000},${JSON.stringify(result.result.value)}]`;
      break;
    case 'vector':
      pending += '[';
      for (let i = 0; i < result.result.length; i++) {
        const s = result.result[i] as (typeof result.result)[number];
        pending += `${i ? ',' : ''}{"metric":${metricJson(s.labels)},"value":${point(s.t, s.value)}}`;
        await flush();
      }
      pending += ']';
      break;
    case 'matrix':
      pending += '[';
      for (let i = 0; i < result.result.length; i++) {
        const s = result.result[i] as (typeof result.result)[number];
        pending += `${i ? ',' : ''}{"metric":${metricJson(s.labels)},"values":[`;
        for (let k = 0; k < s.timestamps.length; k++) {
          pending += `${k ? ',' : ''}${point(s.timestamps[k] as number, s.values[k] as number)}`;
          if (pending.length >= PIECE) await flush();
        }
        pending += ']}';
      }
      pending += ']';
      break;
  }
  pending += '}';
  if (result.warnings?.length) pending += `,"warnings":${JSON.stringify(result.warnings)}`;
  pending += '}';
  await flush(true);
  res.end();
}
