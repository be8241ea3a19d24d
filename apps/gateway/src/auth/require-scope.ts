import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { AppError } from '@gpu-telemetry/model';
import type { ApiKeysService, Principal, Scope } from './api-keys.service';
import type { ClientAddressOf } from './client-address';
import { clientOf, type RateLimiter, takeToken } from './rate-limiter';

/** The checks in front of the gateway's own routes: keys (unless auth is off) and rate limits. */
export interface Edge {
  keys: ApiKeysService;
  auth: boolean;
  /** The limiter the proxied routes use too: one budget a client. */
  limiter: RateLimiter;
  clientAddress: ClientAddressOf;
  /** Counts a refusal (gateway_rejected_total), as the proxy does. */
  onRateLimited?: () => void;
}

/** What the key check in front of every route found (res.locals), so that a route's own check does not take a second token. */
interface Admission {
  principal: Principal | undefined;
}
const ADMISSION = 'gatewayAdmission';

/** The gateway's own paths that answer without a key: its API documentation. */
const OPEN_PATH = /^\/(openapi\.json|docs(\/.*)?)$/;
const KEYS_PATH = /^\/api\/v1\/keys(\/|$)/;

/**
 * The scope a request to the gateway's own routes needs, from its method and path alone (before
 * anything says whether the route exists or takes the method): admin for the keys, and for every
 * method but GET and HEAD (as on the proxied routes: a read key gets a 403 where an admin key gets
 * the 405); read for the rest.
 */
export function ownRouteScope(method: string, path: string): Scope {
  if (KEYS_PATH.test(path)) return 'admin';
  return method === 'GET' || method === 'HEAD' ? 'read' : 'admin';
}

/** The key check (unless auth is off), then a token from the client's rate-limit bucket. */
async function admit(edge: Edge, req: Request, res: Response, scope: Scope): Promise<Admission> {
  let principal: Principal | undefined;
  if (edge.auth) principal = await edge.keys.authorize(req, { scope }, `${req.method} ${req.path}`);
  const wait = takeToken(edge.limiter, res, clientOf(req, principal, edge.clientAddress));
  if (wait !== undefined) {
    edge.onRateLimited?.();
    throw new AppError(429, 'Rate limit exceeded; slow down.', {
      headers: { 'retry-after': String(wait) },
    });
  }
  return { principal };
}

/**
 * Express guard in front of everything the gateway's own app answers but /healthz, /readyz,
 * /metrics and the documentation (mounted as the service kit's `authenticate`): the key, with the
 * scope ownRouteScope names, and a rate-limit token, before the method, the media type or the
 * body is looked at. Without a valid key a request is a 401 (counted against its address by the
 * failed-auth throttle) whatever it sends; with the wrong scope, a 403 before any 405, 415 or 400.
 */
export function requireKeyFirst(edge: Edge): RequestHandler {
  return async (req, res, next) => {
    if (OPEN_PATH.test(req.path)) return next();
    res.locals[ADMISSION] = await admit(edge, req, res, ownRouteScope(req.method, req.path));
    next();
  };
}

const covers = (principal: Principal, scope: Scope) =>
  principal.scopes.has(scope) || principal.scopes.has('admin');

/**
 * Whether the request was admitted with the admin scope, or with keys off (everyone is then an
 * admin): for routes that show more to an admin than to a reader. Behind requireKeyFirst.
 */
export function admittedAsAdmin(res: Response): boolean {
  const admitted = res.locals[ADMISSION] as Admission | undefined;
  return (
    admitted !== undefined && (admitted.principal === undefined || admitted.principal.scopes.has('admin'))
  );
}

/**
 * Express guard for one of the gateway's own routes: a key with `scope` (or admin), unless auth is
 * off, then a token from the client's rate-limit bucket. Keys limited to queue topics are refused
 * here: these routes are not the queue's. Behind requireKeyFirst, which did both already, only a
 * scope the route asks beyond the one checked there is checked again.
 */
export function requireScope(edge: Edge, scope: Scope) {
  return async (req: Request, res: Response, next: NextFunction) => {
    try {
      const admitted = res.locals[ADMISSION] as Admission | undefined;
      if (!admitted) await admit(edge, req, res, scope);
      else if (admitted.principal && !covers(admitted.principal, scope))
        await edge.keys.authorize(req, { scope }, `${req.method} ${req.path}`);
      next();
    } catch (error) {
      next(error);
    }
  };
}
