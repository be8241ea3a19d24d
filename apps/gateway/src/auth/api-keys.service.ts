import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Database } from '@gpu-telemetry/db';
import { AppError, NotFoundError } from '@gpu-telemetry/model';
import type { Kysely } from 'kysely';

/** read: query; publish: write to topics and targets; admin: everything; traces: send spans only. */
export const SCOPES = ['read', 'publish', 'admin', 'traces'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  keyId: string;
  scopes: ReadonlySet<Scope>;
}

export interface ApiKeyView {
  id: string;
  name: string;
  prefix: string;
  scopes: Scope[];
  createdAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

/** A request the key check refused, with why (for the auth-failure metric). */
export class AuthError extends AppError {
  constructor(
    status: 401 | 403,
    detail: string,
    readonly reason: 'missing' | 'invalid' | 'scope',
    headers?: Record<string, string>,
  ) {
    super(status, detail, { headers });
  }
}

const hash = (key: string) => createHash('sha256').update(key).digest();
const CACHE_MS = 30_000;

/**
 * API keys: random 32-byte keys shown once, stored as SHA-256. Lookups are cached for 30 s
 * (a revoked key stops working on this replica at once, on others within the cache time); the
 * bootstrap admin key and the span-export key (scope `traces` only) come from the environment and
 * are compared in constant time.
 */
export class ApiKeysService {
  private readonly cache = new Map<string, { principal: Principal | null; until: number }>();
  private readonly staticKeys: { digest: Buffer; principal: Principal }[] = [];

  constructor(
    private readonly db: Kysely<Database>,
    bootstrapKey?: string,
    otlpKey?: string,
  ) {
    if (bootstrapKey) {
      this.staticKeys.push({
        digest: hash(bootstrapKey),
        principal: { keyId: 'bootstrap', scopes: new Set(SCOPES) },
      });
    }
    if (otlpKey) {
      this.staticKeys.push({
        digest: hash(otlpKey),
        principal: { keyId: 'otlp', scopes: new Set(['traces']) },
      });
    }
  }

  async authenticate(key: string): Promise<Principal | null> {
    const digest = hash(key);
    for (const { digest: known, principal } of this.staticKeys) {
      if (timingSafeEqual(digest, known)) return principal;
    }
    const cacheKey = digest.toString('base64');
    const cached = this.cache.get(cacheKey);
    if (cached && cached.until > Date.now()) return cached.principal;
    const row = await this.db
      .updateTable('gateway_api_keys')
      .set({ last_used_at: new Date() })
      .where('key_hash', '=', digest)
      .where('revoked_at', 'is', null)
      .returning(['id', 'scopes'])
      .executeTakeFirst();
    const principal = row ? { keyId: row.id, scopes: new Set(row.scopes as Scope[]) } : null;
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(cacheKey, { principal, until: Date.now() + CACHE_MS });
    return principal;
  }

  /**
   * The principal behind a request's key, if it has `scope` (admin has every scope); otherwise an
   * AuthError: 401 without or with a bad key, 403 with the wrong scope. `action` names what was asked.
   */
  async authorize(
    headers: Record<string, string | string[] | undefined>,
    scope: Scope,
    action: string,
  ): Promise<Principal> {
    const key = keyFrom(headers);
    if (!key) {
      throw new AuthError(401, 'Send an API key: Authorization: Bearer <key>, or X-API-Key.', 'missing', {
        'www-authenticate': 'Bearer',
      });
    }
    const principal = await this.authenticate(key);
    if (!principal) {
      throw new AuthError(401, 'The API key is not valid (unknown or revoked).', 'invalid', {
        'www-authenticate': 'Bearer error="invalid_token"',
      });
    }
    if (!principal.scopes.has(scope) && !principal.scopes.has('admin')) {
      throw new AuthError(403, `This API key lacks the "${scope}" scope needed for ${action}.`, 'scope');
    }
    return principal;
  }

  async create(name: string, scopes: Scope[]): Promise<ApiKeyView & { key: string }> {
    const key = `gt_${randomBytes(32).toString('base64url')}`;
    const row = await this.db
      .insertInto('gateway_api_keys')
      .values({ name, prefix: key.slice(0, 10), key_hash: hash(key), scopes: [...new Set(scopes)] })
      .returningAll()
      .executeTakeFirstOrThrow();
    return { ...view(row), key };
  }

  async list(): Promise<ApiKeyView[]> {
    return (await this.db.selectFrom('gateway_api_keys').selectAll().orderBy('created_at').execute()).map(
      view,
    );
  }

  async revoke(id: string): Promise<ApiKeyView> {
    const row = await this.db
      .updateTable('gateway_api_keys')
      .set({ revoked_at: new Date() })
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new NotFoundError(`No active API key with id ${id}.`);
    this.cache.clear();
    return view(row);
  }
}

function view(row: {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  created_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
}): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes as Scope[],
    createdAt: row.created_at.toISOString(),
    revokedAt: row.revoked_at?.toISOString() ?? null,
    lastUsedAt: row.last_used_at?.toISOString() ?? null,
  };
}

/** The key a request carries: `Authorization: Bearer <key>` or `X-API-Key: <key>`. */
export function keyFrom(headers: Record<string, string | string[] | undefined>): string | undefined {
  const authorization = headers['authorization'];
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match) return match[1];
  }
  const header = headers['x-api-key'];
  return typeof header === 'string' && header.trim() ? header.trim() : undefined;
}
