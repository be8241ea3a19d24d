import type { NextFunction, Request, Response } from 'express';
import type { ApiKeysService, Scope } from './api-keys.service';

/**
 * Express guard for the gateway's own routes: a key with `scope` (or admin), unless auth is off.
 * Keys limited to queue topics are refused here: these routes are not the queue's.
 */
export function requireScope(keys: ApiKeysService, auth: boolean, scope: Scope) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    if (!auth) return next();
    try {
      await keys.authorize(req, { scope }, `${req.method} ${req.path}`);
      next();
    } catch (error) {
      next(error);
    }
  };
}
