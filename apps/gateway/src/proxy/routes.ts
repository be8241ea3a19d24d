import { TELEMETRY_TOPIC } from '@gpu-telemetry/model';
import type { Access, Scope } from '../auth/api-keys.service';
import { type GatewayConfig, longPollLimits } from '../config';
import type { GatewayMetrics } from './gateway.metrics';
import { createUpstream, type ProxyRoute, type Upstream } from './proxy';
import { SlotBudget } from './slot-budget';

const read = (method: string): Scope | undefined =>
  method === 'GET' || method === 'HEAD' ? 'read' : undefined;
const READ: Access = { scope: 'read' };
const ADMIN: Access = { scope: 'admin' };
/** GPUs and targets: reading is `read`, anything else `admin`. */
const readOrAdmin = (method: string): Access => (read(method) ? READ : ADMIN);

/** The topic a queue path names, decoded as the queue decodes it; null for the listing. */
function topicOf(path: string): string | null {
  const segment = path.split('/')[1] ?? '';
  if (segment === '') return null;
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // not a topic name, so no limited key is allowed it
  }
}

/**
 * Queue: reading is `read`; publishing is `publish`; leasing, acking, nacking, extending and
 * releasing are `consume`; settings and dead-letter surgery are `admin`. Every call names its topic
 * (or none, for the listing) so keys limited to topics can be checked.
 */
function queueAccess(method: string, path: string): Access {
  const topic = topicOf(path);
  if (read(method)) return { scope: 'read', topic };
  // Only the calls the queue has: another method on the same path is no publish or consume.
  if (method === 'POST' && /^\/[^/]+\/messages$/.test(path)) return { scope: 'publish', topic };
  if (
    method === 'POST' &&
    (/^\/[^/]+\/(leases|acks|nacks)$/.test(path) || /^\/[^/]+\/leases\/[^/]+\/(extend|release)$/.test(path))
  )
    return { scope: 'consume', topic };
  return { scope: 'admin', topic };
}

/**
 * Prometheus remote write: the samples go to the telemetry topic, so writing them is publishing
 * there (`publish`, and a key limited to topics must include `telemetry`). Only that POST: any
 * other method or path under the prefix is admin's, as everywhere else.
 */
const WRITE: Access = { scope: 'publish', topic: TELEMETRY_TOPIC };
const writeAccess = (method: string, path: string): Access =>
  method === 'POST' && (path === '' || path === '/') ? WRITE : ADMIN;

/**
 * The Prometheus HTTP API is read with GET or a form-encoded POST (`read`); any other method is
 * admin's, so a read key never reaches the streamer with one.
 */
const prometheusAccess = (method: string): Access => (read(method) || method === 'POST' ? READ : ADMIN);

/** The proxied routes' names, as their requests are recorded (and filtered in the analytics). */
export const ROUTE_NAMES = ['gpus', 'storage', 'topics', 'prometheus', 'targets', 'write'] as const;

/** The services behind the gateway, each with its instances in its GATEWAY_*_URLS. */
export type Backend = 'streamer' | 'queue' | 'collector';

export function buildRoutes(
  config: GatewayConfig,
  metrics?: GatewayMetrics,
): (ProxyRoute & { name: (typeof ROUTE_NAMES)[number]; backend: Backend })[] {
  // One long-poll budget for the gateway, whichever route and instance a long-poll goes to.
  const limits = longPollLimits(config);
  const longPolls = new SlotBudget(limits.max, limits.perClient, (held) =>
    metrics?.longPollsWaiting.set(held),
  );
  // One upstream per instance of a backend, shared by the backend's routes: an instance has one
  // breaker (and one gateway_breaker_state series), whichever route found it failing. It is named
  // by its backend and its place in that backend's list (`queue-1`): /metrics and the request
  // records, open to more than the operators, never show its address.
  const instances = new Map<string, Upstream>();
  const upstreams = (backend: Backend, urls: string[]) =>
    urls.map((url, i) => {
      const origin = new URL(url).origin;
      let upstream = instances.get(`${backend} ${origin}`);
      if (!upstream) {
        upstream = createUpstream(`${backend}-${i}`, origin, {
          connectTimeoutMs: config.GATEWAY_CONNECT_TIMEOUT,
          breakerFailures: config.GATEWAY_BREAKER_FAILURES,
          breakerCooldownMs: config.GATEWAY_BREAKER_COOLDOWN,
          maxLongPolls: limits.max,
          metrics,
        });
        instances.set(`${backend} ${origin}`, upstream);
      }
      return upstream;
    });
  return [
    {
      name: 'gpus',
      prefix: '/api/v1/gpus',
      target: '/v1/gpus',
      backend: 'streamer',
      upstreams: upstreams('streamer', config.GATEWAY_STREAMER_URLS),
      timeoutMs: config.GATEWAY_TIMEOUT,
      access: readOrAdmin,
    },
    {
      name: 'storage',
      prefix: '/api/v1/storage',
      target: '/v1/storage',
      backend: 'streamer',
      upstreams: upstreams('streamer', config.GATEWAY_STREAMER_URLS),
      timeoutMs: config.GATEWAY_TIMEOUT,
      access: readOrAdmin,
    },
    // Lease long-polls wait up to 60 s upstream: allow for that on top of the usual timeout.
    {
      name: 'topics',
      prefix: '/api/v1/topics',
      target: '/v1/topics',
      backend: 'queue',
      upstreams: upstreams('queue', config.GATEWAY_QUEUE_URLS),
      timeoutMs: config.GATEWAY_TIMEOUT + 60_000,
      access: queueAccess,
      // Every lease may wait (its waitSeconds is in the body, still unread when the slot is taken).
      longPoll: {
        matches: (method, path) => method === 'POST' && /^\/[^/]+\/leases$/.test(path.split('?')[0] ?? ''),
        budget: longPolls,
      },
    },
    // The Prometheus HTTP API, for Grafana's Prometheus data source and promtool: queries sent as
    // form-encoded POSTs are reads too (prometheusAccess).
    {
      name: 'prometheus',
      prefix: '/prometheus/api/v1',
      target: '/v1/prometheus/api/v1',
      backend: 'streamer',
      upstreams: upstreams('streamer', config.GATEWAY_STREAMER_URLS),
      timeoutMs: config.GATEWAY_PROMQL_TIMEOUT,
      access: prometheusAccess,
    },
    {
      name: 'targets',
      prefix: '/api/v1/targets',
      target: '/v1/targets',
      backend: 'collector',
      upstreams: upstreams('collector', config.GATEWAY_COLLECTOR_URLS),
      timeoutMs: config.GATEWAY_TIMEOUT,
      access: readOrAdmin,
    },
    {
      name: 'write',
      prefix: '/api/v1/write',
      target: '/v1/write',
      backend: 'collector',
      upstreams: upstreams('collector', config.GATEWAY_COLLECTOR_URLS),
      timeoutMs: config.GATEWAY_TIMEOUT,
      access: writeAccess,
    },
  ];
}
