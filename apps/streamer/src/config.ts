import { int, loadConfig, serviceEnv } from '@gpu-telemetry/config';
import { z } from 'zod';

export const streamerEnv = z.object({
  ...serviceEnv(8082),
  /** Base URL of the queue service. */
  QUEUE_URL: z.string().url('must be a URL such as http://localhost:8081').default('http://localhost:8081'),
  STREAMER_CONCURRENCY: int(2, 1, 64),
  STREAMER_BATCH: int(50, 1, 1000),
});

export type StreamerConfig = z.output<typeof streamerEnv>;

export function loadStreamerConfig(env: Record<string, string | undefined> = process.env): StreamerConfig {
  return loadConfig(streamerEnv, env);
}
