import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { Counter, type Registry } from 'prom-client';
import { peerAddress } from './peer-address';
import { sendProblem } from './problem';

/**
 * The shared secret the system's services present to each other. `previous` is accepted too
 * (never sent) while a rotation rolls out, so replicas with the old and new token keep talking.
 */
export interface ServiceToken {
  current: string;
  previous?: string;
}

/** The service token a service's configuration holds (`SERVICE_TOKEN`, `SERVICE_TOKEN_PREVIOUS`). */
export function serviceTokenFrom(config: {
  SERVICE_TOKEN: string;
  SERVICE_TOKEN_PREVIOUS?: string;
}): ServiceToken {
  return { current: config.SERVICE_TOKEN, previous: config.SERVICE_TOKEN_PREVIOUS };
}

/** The header value a service sends on every call to another one. */
export function serviceAuthorization(token: string): string {
  return `Bearer ${token}`;
}

const digest = (text: string) => createHash('sha256').update(text).digest();
const BEARER = /^Bearer +(\S+) *$/i;

/**
 * Express guard: every request must carry `Authorization: Bearer <SERVICE_TOKEN>`; otherwise a
 * 401 problem, counted in `service_auth_failures_total{reason}` and logged as a warning. Mounted
 * after /healthz, /readyz and /metrics, which stay open to probes and Prometheus. Tokens are
 * compared as SHA-256 digests in constant time.
 */
export function requireServiceToken(token: ServiceToken, registry: Registry) {
  const accepted = [token.current, token.previous].filter((t): t is string => Boolean(t)).map(digest);
  const failures = new Counter({
    name: 'service_auth_failures_total',
    help: 'Requests refused for a missing or wrong service credential (Authorization: Bearer <SERVICE_TOKEN>).',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  failures.inc({ reason: 'missing' }, 0);
  failures.inc({ reason: 'invalid' }, 0);
  return (req: Request, res: Response, next: NextFunction) => {
    const reason = refusal(req, accepted);
    if (!reason) return next();
    failures.inc({ reason });
    req.log.warn({ reason, remoteAddress: peerAddress(req) }, 'service credential refused');
    sendProblem(
      res,
      401,
      reason === 'missing'
        ? 'This service answers only the system’s own services: send Authorization: Bearer <SERVICE_TOKEN>.'
        : 'The service credential is not valid.',
      {
        headers: {
          'www-authenticate': `Bearer realm="gpu-telemetry"${reason === 'invalid' ? ', error="invalid_token"' : ''}`,
        },
      },
    );
  };
}

function refusal(req: IncomingMessage, accepted: Buffer[]): 'missing' | 'invalid' | undefined {
  const header = req.headers['authorization'];
  const presented = typeof header === 'string' ? BEARER.exec(header)?.[1] : undefined;
  if (!presented) return 'missing';
  const candidate = digest(presented);
  // Every accepted token is compared, so the time taken does not say which one matched.
  let ok = false;
  for (const known of accepted) ok = timingSafeEqual(candidate, known) || ok;
  return ok ? undefined : 'invalid';
}
