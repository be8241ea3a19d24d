import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { Express } from 'express';
import type { Logger } from 'pino';
import { createLogger } from './logger';
import { serviceAuthorization } from './service-auth';

export { type DocumentedResponses, documentedResponses } from './documented-responses';

/** A logger of `service` from `level` up whose lines are parsed into `lines`, for tests that read what was logged. */
export function linesLogger(service: string, level: string, lines: Record<string, unknown>[]): Logger {
  return createLogger(
    service,
    level,
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString('utf8')));
        done();
      },
    }),
  );
}

/** The service token every test app is built with. */
export const TEST_SERVICE_TOKEN = 'test-service-token-0123456789abcdefghijklmnop';

/**
 * `handler` called as one of the system's services calls it: with the service token, unless the
 * request brings its own Authorization header.
 */
export function asService(handler: RequestListener, token = TEST_SERVICE_TOKEN): RequestListener {
  return (req, res) => {
    req.headers['authorization'] ??= serviceAuthorization(token);
    handler(req, res);
  };
}

/** Every method and path the Express app routes, with `:params`, nested routers included. */
export function routedPaths(app: Express): { method: string; path: string }[] {
  const found: { method: string; path: string }[] = [];
  const walk = (stack: RouterLayer[]) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const method of Object.keys(layer.route.methods)) found.push({ method, path: layer.route.path });
      } else if (layer.handle?.stack) {
        walk(layer.handle.stack);
      }
    }
  };
  walk((app as unknown as { router: { stack: RouterLayer[] } }).router.stack);
  return found;
}

interface RouterLayer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: RouterLayer[] };
}

const OPEN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

export interface CredentialProbe {
  method: string;
  path: string;
  /** Status without any credential, with a wrong token, and with the right one. */
  missing: number;
  wrong: number;
  right: number;
  problemJson: boolean;
}

/**
 * Calls every route of `app` except the open probes (/healthz, /readyz, /metrics) three ways:
 * without a credential, with a wrong token and with the right one. Path parameters get a
 * placeholder; bodies are empty, so the right token typically meets a 400, never a 401.
 */
export async function probeCredentials(app: Express, token = TEST_SERVICE_TOKEN): Promise<CredentialProbe[]> {
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const call = async (method: string, path: string, authorization?: string) => {
    const res = await fetch(base + path, {
      method: method.toUpperCase(),
      headers: {
        ...(authorization ? { authorization } : {}),
        ...(method === 'get' || method === 'head' ? {} : { 'content-type': 'application/json' }),
      },
      body: method === 'get' || method === 'head' ? undefined : '{}',
    });
    const type = res.headers.get('content-type') ?? '';
    await res.arrayBuffer();
    return { status: res.status, type };
  };
  try {
    const probes: CredentialProbe[] = [];
    for (const { method, path: pattern } of routedPaths(app)) {
      if (OPEN_PATHS.has(pattern)) continue;
      const path = pattern.replace(/:[A-Za-z]+/g, '00000000-0000-4000-8000-000000000000');
      const missing = await call(method, path);
      const wrong = await call(method, path, serviceAuthorization(`${token}-wrong`));
      const right = await call(method, path, serviceAuthorization(token));
      probes.push({
        method,
        path: pattern,
        missing: missing.status,
        wrong: wrong.status,
        right: right.status,
        problemJson: missing.type.includes('problem+json') && wrong.type.includes('problem+json'),
      });
    }
    return probes;
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}
