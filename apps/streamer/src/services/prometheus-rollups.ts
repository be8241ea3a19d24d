import type { SelectHints } from '@gpu-telemetry/promql';
import type { PoolClient } from 'pg';

export interface RollupPlan {
  bucketMs: number;
}

export function planRollups(_hints: SelectHints): RollupPlan | null {
  return null;
}

export async function readRollupSeries(
  _client: PoolClient,
  _args: { plan: RollupPlan; series: number[][]; startMs: number; endMs: number },
): Promise<({ timestamps: Float64Array; values: Float64Array } | null)[]> {
  return [];
}
