import { duration, loadConfig, serviceEnv } from '@gpu-telemetry/config';
import { z } from 'zod';

export const collectorEnv = z.object({
  ...serviceEnv(8083),
  /** Base URL of the queue service. */
  QUEUE_URL: z.string().url('must be a URL such as http://localhost:8081').default('http://localhost:8081'),
  COLLECT_INTERVAL: duration('30s', { min: '100ms' }),
});

export type CollectorConfig = z.output<typeof collectorEnv>;

export function loadCollectorConfig(env: Record<string, string | undefined> = process.env): CollectorConfig {
  return loadConfig(collectorEnv, env);
}
