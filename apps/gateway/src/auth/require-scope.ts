import { AppError } from '@gpu-telemetry/model';
import type { NextFunction, Request, Response } from 'express';
import { type ApiKeysService, keyFrom, type Scope } from './api-keys.service';

/** Express guard for the gateway's own routes: a key with `scope` (or admin), unless auth is off. */
export function requireScope(keys: ApiKeysService, auth: boolean, scope: Scope) {
  return async (req: Request, _res: Response, next: NextFunction) => {
    if (!auth) return next();
    const key = keyFrom(req.headers);
    const principal = key ? await keys.authenticate(key) : null;
    if (!principal) {
      return next(
        new AppError(401, 'Send an API key: Authorization: Bearer <key>, or X-API-Key.', {
          headers: { 'www-authenticate': 'Bearer' },
        }),
      );
    }
    if (!principal.scopes.has(scope) && !principal.scopes.has('admin')) {
      return next(new AppError(403, `This needs the "${scope}" scope.`));
    }
    next();
  };
}
