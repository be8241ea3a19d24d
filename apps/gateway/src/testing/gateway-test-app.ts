import type { AddressInfo, Server } from 'node:net';
import type { TestDatabase } from '@gpu-telemetry/db/testing';
import { createLogger, listen, type Logger, type RunningServer } from '@gpu-telemetry/service-kit';
import { documentedResponses, linesLogger, TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import { createApp, GATEWAY_SERVE_OPTIONS, type GatewayApp } from '../app';
import { loadGatewayConfig } from '../config';
import type { GatewayDatabase } from '../gateway.tables';
import { gatewayApi } from '../docs/api-docs';

/**
 * Every answer of the gateway's own routes (not the proxied ones) is held to their OpenAPI
 * document: one that does not match is answered as a 500 naming why, and fails the test that
 * caused it.
 */
const responses = documentedResponses(gatewayApi, { undocumentedRoutes: ['/docs', '/docs/start.js'] });
afterEach(() => responses.assertNone());

/** The gateway on a test database, configured from `env` exactly as in production. */
export function createTestGateway(
  database: TestDatabase<GatewayDatabase>,
  env: Record<string, string>,
  logger: Logger = createLogger('gateway', 'silent'),
): GatewayApp {
  return createApp({
    db: database.db,
    pool: database.pool,
    logger,
    config: loadGatewayConfig({ DATABASE_URL: database.url, SERVICE_TOKEN: TEST_SERVICE_TOKEN, ...env }),
    checkResponse: responses.check,
  });
}

/** Listens on a free loopback port (an http server, or a bare TCP one); returns the base URL. */
export async function serve(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * The gateway behind the production server (service-kit `listen`) on a free port: of loopback, or
 * of every address (`host` empty, as HOST unset), reached at 127.0.0.1 either way.
 */
export async function listenGateway(
  gateway: GatewayApp,
  host = '127.0.0.1',
): Promise<{ server: RunningServer; base: string }> {
  const server = await listen(gateway.handler, {
    port: 0,
    host,
    logger: createLogger('gateway', 'silent'),
    ...GATEWAY_SERVE_OPTIONS,
  });
  gateway.attach(server.server);
  return { server, base: `http://127.0.0.1:${server.port}` };
}

/** A gateway listening as in production, every route proxied to one upstream, its warnings kept. */
export interface ListeningGateway {
  gateway: GatewayApp;
  server: RunningServer;
  base: string;
  /** Its log lines at warn and above, parsed. */
  logs: Record<string, unknown>[];
}

/**
 * The gateway behind the production server with every route proxied to `upstreamUrl`, the admin
 * key `admin`, request records off and `env` on top; its warnings and errors kept in `logs`.
 */
export async function listenGatewayTo(
  database: TestDatabase<GatewayDatabase>,
  upstreamUrl: string,
  admin: string,
  env: Record<string, string>,
): Promise<ListeningGateway> {
  const logs: Record<string, unknown>[] = [];
  const logger = linesLogger('gateway', 'warn', logs);
  const gateway = createTestGateway(
    database,
    {
      GATEWAY_ADMIN_KEY: admin,
      GATEWAY_STREAMER_URLS: upstreamUrl,
      GATEWAY_QUEUE_URLS: upstreamUrl,
      GATEWAY_COLLECTOR_URLS: upstreamUrl,
      GATEWAY_RECORDS: 'false',
      ...env,
    },
    logger,
  );
  const { server, base } = await listenGateway(gateway);
  return { gateway, server, base, logs };
}
