import type { NextFunction, Request, Response } from 'express';
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

/**
 * Express guard for the gateway's own routes: a key with `scope` (or admin), unless auth is off,
 * then a token from the client's rate-limit bucket. Keys limited to queue topics are refused here:
 * these routes are not the queue's.
 */
export function requireScope(edge: Edge, scope: Scope) {
  return async (req: Request, res: Response, next: NextFunction) => {
    try {
      let principal: Principal | undefined;
      if (edge.auth) principal = await edge.keys.authorize(req, { scope }, `${req.method} ${req.path}`);
      const wait = takeToken(edge.limiter, res, clientOf(req, principal, edge.clientAddress));
      if (wait !== undefined) {
        edge.onRateLimited?.();
        throw new AppError(429, 'Rate limit exceeded; slow down.', {
          headers: { 'retry-after': String(wait) },
        });
      }
      next();
    } catch (error) {
      next(error);
    }
  };
}
