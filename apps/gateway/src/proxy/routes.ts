import type { Scope } from '../auth/api-keys.service';
import type { GatewayConfig } from '../config';
import type { GatewayMetrics } from './gateway.metrics';
import { createUpstream, type ProxyRoute } from './proxy';

const read = (method: string): Scope | undefined =>
  method === 'GET' || method === 'HEAD' ? 'read' : undefined;

/** Queue: reading is `read`; publishing and consuming are `publish`; settings and dead-letter surgery are `admin`. */
function queueScope(method: string, rest: string): Scope {
  if (read(method)) return 'read';
  if (
    /^\/[^/]+\/(messages|leases|acks|nacks)$/.test(rest) ||
    /^\/[^/]+\/leases\/[^/]+\/(extend|release)$/.test(rest)
  )
    return 'publish';
  return 'admin';
}

export function buildRoutes(config: GatewayConfig, metrics?: GatewayMetrics): ProxyRoute[] {
  const upstreams = (urls: string[]) =>
    urls.map((url) =>
      createUpstream(new URL(url).origin, {
        connectTimeoutMs: config.GATEWAY_CONNECT_TIMEOUT,
        breakerFailures: config.GATEWAY_BREAKER_FAILURES,
        breakerCooldownMs: config.GATEWAY_BREAKER_COOLDOWN,
        metrics,
      }),
    );
  return [
    {
      name: 'gpus',
      prefix: '/api/v1/gpus',
      target: '/v1/gpus',
      upstreams: upstreams(config.GATEWAY_STREAMER_URLS),
      timeoutMs: config.GATEWAY_TIMEOUT,
      scope: (m) => read(m) ?? 'admin',
    },
    // Lease long-polls wait up to 60 s upstream: allow for that on top of the usual timeout.
    {
      name: 'topics',
      prefix: '/api/v1/topics',
      target: '/v1/topics',
      upstreams: upstreams(config.GATEWAY_QUEUE_URLS),
      timeoutMs: config.GATEWAY_TIMEOUT + 60_000,
      scope: queueScope,
    },
    {
      name: 'targets',
      prefix: '/api/v1/targets',
      target: '/v1/targets',
      upstreams: upstreams(config.GATEWAY_COLLECTOR_URLS),
      timeoutMs: config.GATEWAY_TIMEOUT,
      scope: (m) => read(m) ?? 'admin',
    },
  ];
}
