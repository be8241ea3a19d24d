import type { RequestListener, Server } from 'node:http';
import { pingDatabase } from '@gpu-telemetry/db';
import {
  answeredMissingHost,
  checkResponses,
  createMetrics,
  createServiceApp,
  LARGE_REQUEST_HEADERS,
  type Logger,
  type ResponseCheck,
  type ServiceMetrics,
  writeProblem,
} from '@gpu-telemetry/service-kit';
import type { Express } from 'express';
import type { Kysely } from 'kysely';
import type { Pool } from 'pg';
import { request } from 'undici';
import { ApiKeysService } from './auth/api-keys.service';
import { clientAddressOf, forwardingOf, trustingEveryone } from './auth/client-address';
import { clientOf, RateLimiter, takeToken } from './auth/rate-limiter';
import { type Edge, requireKeyFirst } from './auth/require-scope';
import { concurrencyLimits, type GatewayConfig } from './config';
import type { GatewayDatabase } from './gateway.tables';
import { createGatewayMetrics } from './proxy/gateway.metrics';
import { Proxy } from './proxy/proxy';
import { buildRoutes } from './proxy/routes';
import { AnalyticsService } from './records/analytics.service';
import { RequestRecorder } from './records/request-recorder';
import { GatewayRetention } from './records/retention';
import { analyticsRoutes } from './routes/analytics.routes';
import { docsRoutes, gatewayApi } from './docs/api-docs';
import { keysRoutes } from './routes/keys.routes';
import { tracesRoutes } from './routes/traces.routes';
import { createOtlpReceiver, OTLP_CONCURRENCY, OTLP_MAX_BODY } from './traces/otlp-receiver';
import { withServerSpan } from './traces/server-span';
import { TracesService } from './traces/traces.service';

export { gatewayEnv, loadGatewayConfig } from './config';
export type { GatewayDatabase } from './gateway.tables';

export interface GatewayAppDeps {
  db: Kysely<GatewayDatabase>;
  pool: Pool;
  logger: Logger;
  config: GatewayConfig;
  /** The clock of the key caches and the failure throttle. */
  now?: () => number;
  /** Tests: holds every answer of the gateway's own routes to their OpenAPI document (see createServiceApp). */
  checkResponse?: ResponseCheck;
}

export interface GatewayApp {
  /**
   * The server's handler: /api/v1/{gpus,storage,topics,targets,write} and /prometheus/api/v1 on the lean
   * proxy path, POST /v1/traces to
   * the OTLP receiver, the rest on Express.
   */
  handler: RequestListener;
  /**
   * Takes over the server's Expect handling: `100-continue` is sent to a proxied request only once
   * it has passed the key check, limits and body-size check (others get it at once, as Node
   * would); any other expectation gets 417.
   */
  attach(server: Server): void;
  app: Express;
  metrics: ServiceMetrics;
  keys: ApiKeysService;
  recorder: RequestRecorder | undefined;
  retention: GatewayRetention;
  /** Starts background housekeeping (retention). */
  start(): void;
  /** Writes the last key-use times and request records, and closes the upstream pools. */
  close(): Promise<void>;
}

/**
 * What the gateway's server takes beyond the defaults (service-kit `listen`): request lines and
 * headers up to 1 MiB, as Prometheus does, so that Grafana's label-value lists with a multi-value
 * variable's every value in the URL pass (the streamer behind it takes as much).
 */
export const GATEWAY_SERVE_OPTIONS = { maxHeaderBytes: LARGE_REQUEST_HEADERS } as const;

export function createApp(deps: GatewayAppDeps): GatewayApp {
  const { db, pool, logger, config, now } = deps;
  const metrics = createMetrics('gateway');
  const gatewayMetrics = createGatewayMetrics(metrics.registry);
  // One walk of X-Forwarded-For per request, whoever asks (limits, throttle, forwarded headers).
  const forwarding = forwardingOf(config.GATEWAY_TRUSTED_PROXIES);
  const clientAddress = clientAddressOf(forwarding);
  const everyone = trustingEveryone(config.GATEWAY_TRUSTED_PROXIES);
  if (everyone.length)
    logger.warn(
      { trustedProxies: everyone },
      'GATEWAY_TRUSTED_PROXIES trusts every address: any client can choose its own address in X-Forwarded-For (rate limits, failed-authentication throttling, what the services are told); list only the proxies in front of the gateway',
    );
  const keys = new ApiKeysService({
    db,
    logger,
    adminKey: config.GATEWAY_ADMIN_KEY,
    adminKeyPrevious: config.GATEWAY_ADMIN_KEY_PREVIOUS,
    otlpKey: config.GATEWAY_OTLP_KEY,
    otlpKeyPrevious: config.GATEWAY_OTLP_KEY_PREVIOUS,
    failuresPerMinute: config.GATEWAY_AUTH_FAILURE_LIMIT,
    failureBurst: config.GATEWAY_AUTH_FAILURE_BURST,
    clientAddress,
    onFailure: (reason) => gatewayMetrics.authFailures.inc({ reason }),
    onPreviousKey: (key) => gatewayMetrics.previousKeyUses.inc({ key }),
    now,
  });
  const routes = buildRoutes(config, gatewayMetrics);
  const recorder = config.GATEWAY_RECORDS
    ? new RequestRecorder({
        pool,
        logger,
        maxBuffered: config.GATEWAY_RECORDS_BUFFER,
        flushIntervalMs: config.GATEWAY_RECORDS_FLUSH,
        dropped: gatewayMetrics.recordsDropped,
        buffered: gatewayMetrics.recordsBuffered,
        written: gatewayMetrics.recordsWritten,
      })
    : undefined;
  recorder?.start();
  const retention = new GatewayRetention({
    db,
    logger,
    retentionMs: config.GATEWAY_RETENTION,
    failures: gatewayMetrics.retentionFailures,
  });
  const traces = new TracesService({ db, pool });
  const limiter = new RateLimiter(config.GATEWAY_RATE_LIMIT, config.GATEWAY_RATE_BURST);
  const otlpReceiver = createOtlpReceiver({
    traces,
    authorize: config.GATEWAY_AUTH
      ? (req) => keys.authorize(req, { scope: 'traces' }, 'sending spans')
      : undefined,
    throttle: (req, res, principal) => {
      const wait = takeToken(limiter, res, clientOf(req, principal, clientAddress));
      if (wait !== undefined) gatewayMetrics.rejected.inc({ reason: 'rate_limit' });
      return wait;
    },
    logger,
    limit: Math.min(config.GATEWAY_BODY_LIMIT, OTLP_MAX_BODY),
    concurrency: OTLP_CONCURRENCY,
    received: gatewayMetrics.otlpRequests,
    spans: gatewayMetrics.spansStored,
    truncated: gatewayMetrics.spansTruncated,
  });
  const receiveTraces = deps.checkResponse ? checkResponses(otlpReceiver, deps.checkResponse) : otlpReceiver;
  const edge: Edge = {
    keys,
    auth: config.GATEWAY_AUTH,
    limiter,
    clientAddress,
    onRateLimited: () => gatewayMetrics.rejected.inc({ reason: 'rate_limit' }),
  };
  const proxy = new Proxy({
    routes,
    keys,
    limiter,
    auth: config.GATEWAY_AUTH,
    bodyLimit: config.GATEWAY_BODY_LIMIT,
    maxConcurrency: config.GATEWAY_MAX_CONCURRENCY,
    maxConcurrencyPerClient: concurrencyLimits(config).perClient,
    logger,
    metrics: gatewayMetrics,
    clientAddress,
    forwarding,
    recorder,
    serviceToken: config.SERVICE_TOKEN,
  });
  // Ready while any instance of a route answers: the first good answer settles it, so one stalled
  // replica (which the proxy skips) neither fails the check nor delays it. The error says why each
  // failed, address and all, for the log (/readyz shows `failed` alone).
  const upstreamCheck = (route: (typeof routes)[number]) => async () => {
    try {
      await Promise.any(
        route.upstreams.map(async (u) => {
          try {
            const response = await request(`${u.origin}/healthz`, { signal: AbortSignal.timeout(1_500) });
            await response.body.dump();
            if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`);
          } catch (error) {
            const why = (error as { message?: unknown } | undefined)?.message ?? error;
            throw new Error(`${u.name} (${u.origin}): ${String(why)}`);
          }
        }),
      );
    } catch (error) {
      const why = (error as AggregateError).errors.map((e: Error) => e.message).join('; ');
      throw new Error(`no ${route.backend} instance answers: ${why}`);
    }
  };
  const app = createServiceApp({
    service: 'gateway',
    logger,
    metrics,
    readiness: [
      { name: 'postgres', check: () => pingDatabase(pool) },
      // One check per backend, by its first route: routes to the same one (targets and write,
      // gpus and prometheus) share it. Reported, never a 503: the gateway serves the routes whose
      // backend answers (and its own, from Postgres) while another is down.
      ...routes
        .filter((route, i) => routes.findIndex((r) => r.backend === route.backend) === i)
        .map((route) => ({ name: route.backend, check: upstreamCheck(route), required: false })),
    ],
    // /readyz faces the internet here: a failed check's error (an upstream's or Postgres' address,
    // Postgres' own words) goes to the log, and the answer says `failed`.
    readinessDetail: 'brief',
    // Every route of the gateway's own needs its key before its method, media type or body is
    // looked at (the documentation aside).
    authenticate: requireKeyFirst(edge),
    routes: (app) => {
      app.use(keysRoutes(keys, edge));
      app.use(analyticsRoutes(new AnalyticsService(db), edge));
      app.use(tracesRoutes(traces, edge));
      app.use(docsRoutes(routes, config.SERVICE_TOKEN));
    },
    methodsOf: gatewayApi,
    checkResponse: deps.checkResponse,
  });
  // The proxied routes trace themselves (Proxy.handle); span exports are never traced.
  const ownRoutes = withServerSpan(app);
  const handler: RequestListener = (req, res) => {
    const route = proxy.match(req.url);
    if (route) void proxy.handle(req, res, route);
    else if (/^\/v1\/traces\/?$/.test(req.url?.split('?')[0] ?? '')) void receiveTraces(req, res);
    else ownRoutes(req, res);
  };
  // Node calls these instead of the request listener: they make the Host check listen() makes.
  const checkContinue: RequestListener = (req, res) => {
    if (answeredMissingHost(req, res)) return;
    const route = proxy.match(req.url);
    if (route) return void proxy.handle(req, res, route, true);
    res.writeContinue();
    handler(req, res);
  };
  const checkExpectation: RequestListener = (req, res) => {
    if (answeredMissingHost(req, res)) return;
    gatewayMetrics.rejected.inc({ reason: 'expectation' });
    req.resume();
    writeProblem(res, 417, 'The only expectation this server meets is "Expect: 100-continue".', {
      headers: { connection: 'close' },
    });
  };
  return {
    handler,
    attach: (server) => {
      server.on('checkContinue', checkContinue);
      server.on('checkExpectation', checkExpectation);
    },
    app,
    metrics,
    keys,
    recorder,
    retention,
    start: () => retention.start(),
    close: async () => {
      retention.stop();
      await keys.flush();
      await recorder?.stop();
      await proxy.close();
    },
  };
}
