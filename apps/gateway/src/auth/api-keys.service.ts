import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { AppError, NotFoundError } from '@gpu-telemetry/model';
import { type Logger, peerAddress } from '@gpu-telemetry/service-kit';
import type { Kysely } from 'kysely';
import type { GatewayDatabase } from '../gateway.tables';
import { type ApiKeyRow, findActiveKey, insertKey, listKeys, revokeKey, touchKeys } from './api-keys.queries';
import { addressGroup, type ClientAddressOf } from './client-address';
import { FailureThrottle } from './failure-throttle';
import { type TopicLimit, topicLimit } from './topic-patterns';

/**
 * read: query; publish: publish messages; consume: lease, ack, nack, extend and release; admin:
 * everything; traces: send spans only.
 */
export const SCOPES = ['read', 'publish', 'consume', 'admin', 'traces'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  keyId: string;
  scopes: ReadonlySet<Scope>;
  /** The queue topics the key is limited to; absent when it is not limited. */
  topics?: TopicLimit;
}

/** What a request asks for. */
export interface Access {
  scope: Scope;
  /**
   * On the queue routes, the topic (its path segment, decoded) or null for every topic (the
   * listing); absent on every other route.
   */
  topic?: string | null;
}

export interface ApiKeyView {
  id: string;
  name: string;
  prefix: string;
  scopes: Scope[];
  topics: string[] | null;
  createdAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

export type AuthFailureReason = 'missing' | 'invalid' | 'scope' | 'topic' | 'throttled';

/** A request the key check refused, with why (for the auth-failure metric). */
export class AuthError extends AppError {
  constructor(
    status: 401 | 403 | 429,
    detail: string,
    readonly reason: AuthFailureReason,
    headers?: Record<string, string>,
  ) {
    super(status, detail, { headers });
  }
}

/** A request's key and where it came from: a node:http or Express request. */
export type KeyedRequest = Pick<IncomingMessage, 'headers' | 'socket'>;

export interface ApiKeysOptions {
  db: Kysely<GatewayDatabase>;
  logger: Logger;
  /** The bootstrap admin key, and the one it replaces while clients move over (both work). */
  adminKey?: string;
  adminKeyPrevious?: string;
  /** The span-export key (scope `traces` only), and the one it replaces. */
  otlpKey?: string;
  otlpKeyPrevious?: string;
  /** Failed authentications allowed per client address: a minute's refill, and the burst; 0: no limit. */
  failuresPerMinute?: number;
  failureBurst?: number;
  clientAddress?: ClientAddressOf;
  /** Called once per refused request, with why. */
  onFailure?: (reason: AuthFailureReason) => void;
  /** Called when a request used a previous (rotated-out) environment key. */
  onPreviousKey?: (key: 'admin' | 'otlp') => void;
  /** How long a request waits for its key's lookup before a 503 (default 5 s). */
  lookupTimeoutMs?: number;
  now?: () => number;
}

const hash = (key: string) => createHash('sha256').update(key).digest();
const CACHE_MS = 30_000;
/** last_used_at is written at most this often per key (per replica). */
const TOUCH_MS = 60_000;
const TOUCH_DELAY_MS = 1_000;
/** Unknown keys remembered at most; the oldest is forgotten first. */
const NEGATIVE_CACHE_SIZE = 10_000;
const PREVIOUS_KEY_LOG_MS = 60_000;

interface StaticKey {
  digest: Buffer;
  principal: Principal;
  previous?: 'admin' | 'otlp';
}

/**
 * API keys: random 32-byte keys shown once, stored as SHA-256. A key is looked up with one SELECT
 * and cached for 30 s (a revoked key stops working on this replica at once, on others within the
 * cache time); valid and unknown keys are cached apart, so a flood of unknown keys, which can only
 * fill the small negative cache, never evicts a valid one. `last_used_at` is written in the
 * background, at most once a minute per key. Failed authentications are throttled per client
 * address before any lookup, and each lookup holds one of the address's tokens while it runs, so
 * requests sent all at once reach the database no more often than failures one by one. The
 * bootstrap admin key and the span-export key come from the environment, each with an optional
 * previous value for rotation, and are compared in constant time.
 */
export class ApiKeysService {
  private readonly db: Kysely<GatewayDatabase>;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly staticKeys: StaticKey[] = [];
  private readonly staticPrincipals = new WeakSet<Principal>();
  private readonly valid = new Map<string, { principal: Principal; until: number }>();
  private readonly unknown = new Map<string, number>();
  private readonly lookups = new Map<string, Promise<Principal | null>>();
  private readonly throttle: FailureThrottle;
  private readonly touched = new Map<string, number>();
  private pendingTouches = new Set<string>();
  private touchTimer: NodeJS.Timeout | undefined;
  private touching: Promise<void> = Promise.resolve();
  private readonly previousLoggedAt = { admin: -Infinity, otlp: -Infinity };
  private readonly failuresPerMinute: number;
  /** Moved by every revocation: a lookup begun before one does not cache what it found. */
  private revocations = 0;

  constructor(private readonly options: ApiKeysOptions) {
    this.db = options.db;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
    this.failuresPerMinute = options.failuresPerMinute ?? 0;
    this.throttle = new FailureThrottle(this.failuresPerMinute, options.failureBurst ?? 1, 100_000, this.now);
    const admin = (keyId: string) => ({ keyId, scopes: new Set<Scope>(SCOPES) });
    const otlp = (keyId: string) => ({ keyId, scopes: new Set<Scope>(['traces']) });
    const add = (key: string | undefined, principal: Principal, previous?: 'admin' | 'otlp') => {
      if (!key) return;
      this.staticKeys.push({ digest: hash(key), principal, previous });
      this.staticPrincipals.add(principal);
    };
    add(options.adminKey, admin('bootstrap'));
    add(options.adminKeyPrevious, admin('bootstrap-previous'), 'admin');
    add(options.otlpKey, otlp('otlp'));
    add(options.otlpKeyPrevious, otlp('otlp-previous'), 'otlp');
  }

  /** The principal behind a key, or null for an unknown or revoked one. Not throttled. */
  async authenticate(key: string): Promise<Principal | null> {
    const digest = hash(key);
    return this.known(digest) ?? (await (this.joined(digest) ?? this.startLookup(digest)));
  }

  /**
   * The principal behind a request's key, if it may do what `access` asks (admin has every scope);
   * otherwise an AuthError: 401 without or with a bad key, 429 when this client address has failed
   * too often (refused before any lookup), 403 with the wrong scope or topic. `action` names what
   * was asked.
   */
  async authorize(req: KeyedRequest, access: Access, action: string): Promise<Principal> {
    const key = keyFrom(req.headers);
    if (!key) {
      throw this.failed(
        req,
        new AuthError(401, 'Send an API key: Authorization: Bearer <key>, or X-API-Key.', 'missing', {
          'www-authenticate': 'Bearer',
        }),
      );
    }
    const digest = hash(key);
    let principal = this.known(digest);
    if (!principal) {
      const group = this.group(req);
      // A request that shares a running lookup, or hits the cache of unknown keys, costs the
      // database nothing: it is counted once it fails. One that starts a lookup is throttled first
      // and takes a failure token before it runs, given back once the key is found (or the lookup
      // cannot be made): an address's lookups in flight at once count against its burst, not only
      // those that have already failed.
      const joined = this.joined(digest);
      const started = joined === undefined;
      if (started) {
        const throttled = this.throttled(group);
        if (throttled) throw this.refused(throttled);
      }
      const answer = joined ?? this.startLookup(digest);
      const emptied = started && this.throttle.fail(group);
      try {
        principal = (await answer) ?? undefined;
      } catch (error) {
        if (started) this.throttle.refund(group);
        throw error;
      }
      if (principal && started) this.throttle.refund(group);
      if (!principal) {
        const invalid = new AuthError(401, 'The API key is not valid (unknown or revoked).', 'invalid', {
          'www-authenticate': 'Bearer error="invalid_token"',
        });
        if (!started) throw this.failed(req, invalid);
        if (emptied) this.warnThrottled(group);
        throw this.refused(invalid);
      }
    }
    const { scope, topic } = access;
    if (!principal.scopes.has(scope) && !principal.scopes.has('admin')) {
      throw this.refused(
        new AuthError(403, `This API key lacks the "${scope}" scope needed for ${action}.`, 'scope'),
      );
    }
    if (principal.topics) {
      if (topic === undefined || topic === null) {
        throw this.refused(
          new AuthError(
            403,
            topic === null
              ? 'This API key is limited to some topics; listing every topic needs a key that is not.'
              : `This API key is limited to some queue topics; it cannot be used for ${action}.`,
            'topic',
          ),
        );
      }
      if (!principal.topics.allows(topic)) {
        throw this.refused(
          new AuthError(403, `This API key is limited to other topics than "${topic}".`, 'topic'),
        );
      }
    }
    if (!this.staticPrincipals.has(principal)) this.touch(principal.keyId);
    return principal;
  }

  async create(
    name: string,
    scopes: Scope[],
    topics: string[] | null = null,
  ): Promise<ApiKeyView & { key: string }> {
    const key = `gt_${randomBytes(32).toString('base64url')}`;
    const row = await insertKey(this.db, {
      name,
      prefix: key.slice(0, 10),
      digest: hash(key),
      scopes: [...new Set(scopes)],
      topics: topics && [...new Set(topics)],
    });
    return { ...view(row), key };
  }

  async list(): Promise<ApiKeyView[]> {
    return (await listKeys(this.db)).map(view);
  }

  async revoke(id: string): Promise<ApiKeyView> {
    // Moved before and after: a lookup begun before the revocation commits may have read the key
    // as active, whether it began before this call or during it.
    this.revocations++;
    const row = await revokeKey(this.db, id, new Date(this.now()));
    if (!row) throw new NotFoundError(`No active API key with id ${id}.`);
    this.revocations++;
    this.valid.delete(row.digest.toString('base64'));
    this.lookups.delete(row.digest.toString('base64'));
    this.touched.delete(id);
    return view(row);
  }

  /** Writes the pending last-used times (on shutdown; otherwise they go within a second). */
  async flush(): Promise<void> {
    clearTimeout(this.touchTimer);
    this.touchTimer = undefined;
    this.writeTouches();
    await this.touching;
  }

  /** Static keys and cached valid keys: no database, no throttle. */
  private known(digest: Buffer): Principal | undefined {
    let match: StaticKey | undefined;
    // Every static key is compared, so the time taken does not tell which one matched.
    for (const candidate of this.staticKeys) {
      if (timingSafeEqual(digest, candidate.digest)) match = candidate;
    }
    if (match) {
      if (match.previous) this.previousUsed(match.previous);
      return match.principal;
    }
    const cached = this.valid.get(digest.toString('base64'));
    if (cached && cached.until > this.now()) return cached.principal;
    return undefined;
  }

  /**
   * The answer for a key that needs no SELECT of its own: a cached unknown key (null), or a lookup
   * of it already running; undefined when one would have to start.
   */
  private joined(digest: Buffer): Promise<Principal | null> | undefined {
    const cacheKey = digest.toString('base64');
    const unknownUntil = this.unknown.get(cacheKey);
    if (unknownUntil !== undefined) {
      if (unknownUntil > this.now()) return Promise.resolve(null);
      this.unknown.delete(cacheKey);
    }
    const pending = this.lookups.get(cacheKey);
    return pending ? this.withinDeadline(pending) : undefined;
  }

  /**
   * A SELECT of the key, for a digest `joined` found neither cached as unknown nor looked up
   * already (so there is one per digest at a time); valid and unknown keys are cached apart.
   */
  private startLookup(digest: Buffer): Promise<Principal | null> {
    const cacheKey = digest.toString('base64');
    const generation = this.revocations;
    const forget = () => {
      // A revocation meanwhile may have put a newer lookup in its place: that one stays.
      if (this.lookups.get(cacheKey) === lookup) this.lookups.delete(cacheKey);
    };
    const lookup: Promise<Principal | null> = (async () => {
      try {
        const row = await findActiveKey(this.db, digest);
        const until = this.now() + CACHE_MS;
        if (!row) {
          if (this.unknown.size >= NEGATIVE_CACHE_SIZE) {
            this.unknown.delete(this.unknown.keys().next().value as string);
          }
          this.unknown.set(cacheKey, until);
          return null;
        }
        const principal: Principal = {
          keyId: row.id,
          scopes: new Set(row.scopes as Scope[]),
          ...(row.topics ? { topics: topicLimit(row.topics) } : {}),
        };
        // Only keys that exist get here, so this map is as large as the set of keys in use. A key
        // revoked while it was looked up is not cached (its revocation could not clear it).
        if (generation === this.revocations) this.valid.set(cacheKey, { principal, until });
        return principal;
      } finally {
        forget();
      }
    })();
    this.lookups.set(cacheKey, lookup);
    return this.withinDeadline(lookup);
  }

  /**
   * The lookup's answer, or a 503 once the wait passes lookupTimeoutMs: a stalled connection or a
   * lock on the keys table would otherwise hold every request of that key (they share the lookup)
   * for as long as it lasts. The lookup itself goes on, and is shared by the next requests.
   */
  private withinDeadline(lookup: Promise<Principal | null>): Promise<Principal | null> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new AppError(503, 'API keys cannot be checked right now; retry shortly.', {
              headers: { 'retry-after': '2' },
            }),
          ),
        this.options.lookupTimeoutMs ?? 5_000,
      );
    });
    return Promise.race([lookup, deadline]).finally(() => clearTimeout(timer));
  }

  private throttled(group: string): AuthError | undefined {
    if (!this.throttle.enabled) return undefined;
    const retryAfter = this.throttle.retryAfterSeconds(group);
    if (retryAfter === 0) return undefined;
    return new AuthError(
      429,
      'Too many failed authentications from this address; retry later with a valid API key.',
      'throttled',
      { 'retry-after': String(retryAfter) },
    );
  }

  /** A missing or invalid key: counted against the client's address (or refused as throttled). */
  private failed(req: KeyedRequest, error: AuthError): AuthError {
    const group = this.group(req);
    const throttled = this.throttled(group);
    if (throttled) return this.refused(throttled);
    if (this.throttle.fail(group)) this.warnThrottled(group);
    return this.refused(error);
  }

  private warnThrottled(group: string): void {
    this.logger.warn(
      { client: group, limitPerMinute: this.failuresPerMinute },
      'failed authentications throttled for this client address',
    );
  }

  private refused(error: AuthError): AuthError {
    this.options.onFailure?.(error.reason);
    return error;
  }

  private group(req: KeyedRequest): string {
    const address = this.options.clientAddress?.(req) ?? peerAddress(req);
    return addressGroup(address);
  }

  private previousUsed(key: 'admin' | 'otlp'): void {
    this.options.onPreviousKey?.(key);
    const now = this.now();
    if (now - this.previousLoggedAt[key] < PREVIOUS_KEY_LOG_MS) return;
    this.previousLoggedAt[key] = now;
    const variable = key === 'admin' ? 'GATEWAY_ADMIN_KEY' : 'GATEWAY_OTLP_KEY';
    this.logger.warn(
      { key },
      `a request used ${variable}_PREVIOUS; move its clients to ${variable}, then unset it (logged at most once a minute)`,
    );
  }

  /** Schedules a last_used_at write for a stored key, unless one was made in the last minute. */
  private touch(keyId: string): void {
    const now = this.now();
    const last = this.touched.get(keyId);
    if (last !== undefined && now - last < TOUCH_MS) return;
    this.touched.set(keyId, now);
    this.pendingTouches.add(keyId);
    this.touchTimer ??= setTimeout(() => {
      this.touchTimer = undefined;
      this.writeTouches();
    }, TOUCH_DELAY_MS).unref();
  }

  private writeTouches(): void {
    if (this.pendingTouches.size === 0) return;
    const ids = [...this.pendingTouches];
    this.pendingTouches = new Set();
    const at = new Date(this.now());
    this.touching = this.touching
      .then(() => touchKeys(this.db, ids, at))
      .catch((error: unknown) =>
        this.logger.warn({ err: error, keys: ids.length }, 'could not record key use'),
      );
  }
}

function view(row: ApiKeyRow): ApiKeyView {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes as Scope[],
    topics: row.topics,
    createdAt: row.createdAt.toISOString(),
    revokedAt: row.revokedAt?.toISOString() ?? null,
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
  };
}

/** The key a request carries: `Authorization: Bearer <key>`, `Authorization: Basic` with the key as password, or `X-API-Key: <key>`. */
function keyFrom(headers: Record<string, string | string[] | undefined>): string | undefined {
  const authorization = headers['authorization'];
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match) return match[1];
    // Basic, with the key as the password (the user name is ignored): what clients that can only
    // send credentials in the URL or as a user and password use, promtool 2.42 among them.
    const basic = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
    if (basic) {
      const decoded = Buffer.from(basic[1] as string, 'base64').toString('utf8');
      const password = decoded.slice(decoded.indexOf(':') + 1);
      if (decoded.includes(':') && password.trim()) return password.trim();
    }
  }
  const header = headers['x-api-key'];
  return typeof header === 'string' && header.trim() ? header.trim() : undefined;
}
