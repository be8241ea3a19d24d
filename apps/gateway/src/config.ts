import { loadConfig, serviceEnv } from '@gpu-telemetry/config';
import { z } from 'zod';

export const gatewayEnv = z.object({
  ...serviceEnv(8080),
});

export type GatewayConfig = z.output<typeof gatewayEnv>;

export function loadGatewayConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  return loadConfig(gatewayEnv, env);
}
