import type { Kysely } from 'kysely';
import type { GatewayDatabase } from '../gateway.tables';

export interface ApiKeyRow {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  topics: string[] | null;
  createdAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

const COLUMNS = [
  'id',
  'name',
  'prefix',
  'scopes',
  'topics',
  'created_at',
  'revoked_at',
  'last_used_at',
] as const;

function toRow(row: {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  topics: string[] | null;
  created_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
}): ApiKeyRow {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes,
    topics: row.topics,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
  };
}

/** The active (not revoked) key with this SHA-256 digest. A read: authentication writes nothing. */
export async function findActiveKey(
  db: Kysely<GatewayDatabase>,
  digest: Buffer,
): Promise<{ id: string; scopes: string[]; topics: string[] | null } | undefined> {
  return db
    .selectFrom('gateway_api_keys')
    .select(['id', 'scopes', 'topics'])
    .where('key_hash', '=', digest)
    .where('revoked_at', 'is', null)
    .executeTakeFirst();
}

/** Marks keys as used at `at`, in one statement; an older time never overwrites a newer one. */
export async function touchKeys(db: Kysely<GatewayDatabase>, ids: string[], at: Date): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable('gateway_api_keys')
    .set({ last_used_at: at })
    .where('id', 'in', ids)
    .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', at)]))
    .execute();
}

export async function insertKey(
  db: Kysely<GatewayDatabase>,
  key: { name: string; prefix: string; digest: Buffer; scopes: string[]; topics: string[] | null },
): Promise<ApiKeyRow> {
  const row = await db
    .insertInto('gateway_api_keys')
    .values({
      name: key.name,
      prefix: key.prefix,
      key_hash: key.digest,
      scopes: key.scopes,
      topics: key.topics,
    })
    .returning(COLUMNS)
    .executeTakeFirstOrThrow();
  return toRow(row);
}

export async function listKeys(db: Kysely<GatewayDatabase>): Promise<ApiKeyRow[]> {
  const rows = await db.selectFrom('gateway_api_keys').select(COLUMNS).orderBy('created_at').execute();
  return rows.map(toRow);
}

/** Revokes an active key; returns it with its digest (to drop it from caches), or undefined. */
export async function revokeKey(
  db: Kysely<GatewayDatabase>,
  id: string,
  at: Date,
): Promise<(ApiKeyRow & { digest: Buffer }) | undefined> {
  const row = await db
    .updateTable('gateway_api_keys')
    .set({ revoked_at: at })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .returning([...COLUMNS, 'key_hash'])
    .executeTakeFirst();
  return row && { ...toRow(row), digest: row.key_hash };
}
