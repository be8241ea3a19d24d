import { type Kysely, sql } from 'kysely';
import type { CollectorDatabase } from '../collector.tables';

export interface ApiTarget {
  id: string;
  url: string;
  createdAt: Date;
}

export async function listApiTargets(db: Kysely<CollectorDatabase>): Promise<ApiTarget[]> {
  const rows = await db
    .selectFrom('collector_targets')
    .select(['id', 'url', 'created_at'])
    .orderBy('created_at')
    .execute();
  return rows.map((row) => ({ id: row.id, url: row.url, createdAt: row.created_at }));
}

/** Returns the new target, or undefined when the URL is already registered. */
export async function insertApiTarget(
  db: Kysely<CollectorDatabase>,
  url: string,
): Promise<ApiTarget | undefined> {
  const row = await db
    .insertInto('collector_targets')
    .values({ url })
    .onConflict((oc) => oc.column('url').doNothing())
    .returning(['id', 'url', 'created_at'])
    .executeTakeFirst();
  return row && { id: row.id, url: row.url, createdAt: row.created_at };
}

export async function deleteApiTarget(
  db: Kysely<CollectorDatabase>,
  id: string,
): Promise<ApiTarget | undefined> {
  const row = await db
    .deleteFrom('collector_targets')
    .where('id', '=', id)
    .returning(['id', 'url', 'created_at'])
    .executeTakeFirst();
  return row && { id: row.id, url: row.url, createdAt: row.created_at };
}

export async function deleteStatus(db: Kysely<CollectorDatabase>, url: string): Promise<void> {
  await db.deleteFrom('collector_target_status').where('url', '=', url).execute();
}

export interface TargetStatus {
  url: string;
  owner: string;
  lastScrapeAt: Date;
  lastSuccessAt: Date | null;
  lastError: string | null;
  lastDurationMs: number;
  lastSamples: number;
  consecutiveFailures: number;
}

/** Writes the round's results in one statement; failures keep the last success time. */
export async function saveStatuses(db: Kysely<CollectorDatabase>, statuses: TargetStatus[]): Promise<void> {
  if (statuses.length === 0) return;
  await sql`
    INSERT INTO collector_target_status AS s
      (url, owner, last_scrape_at, last_success_at, last_error, last_duration_ms, last_samples, consecutive_failures)
    SELECT url, owner, last_scrape_at, last_success_at, last_error, last_duration_ms, last_samples, consecutive_failures
    FROM jsonb_to_recordset(${JSON.stringify(
      statuses.map((s) => ({
        url: s.url,
        owner: s.owner,
        last_scrape_at: s.lastScrapeAt.toISOString(),
        last_success_at: s.lastSuccessAt?.toISOString() ?? null,
        last_error: s.lastError,
        last_duration_ms: s.lastDurationMs,
        last_samples: s.lastSamples,
        consecutive_failures: s.consecutiveFailures,
      })),
    )}::jsonb) AS x(url text, owner text, last_scrape_at timestamptz, last_success_at timestamptz, last_error text,
                    last_duration_ms float8, last_samples int, consecutive_failures int)
    ORDER BY url
    ON CONFLICT (url) DO UPDATE SET
      owner = excluded.owner,
      last_scrape_at = excluded.last_scrape_at,
      last_success_at = coalesce(excluded.last_success_at, s.last_success_at),
      last_error = excluded.last_error,
      last_duration_ms = excluded.last_duration_ms,
      last_samples = excluded.last_samples,
      consecutive_failures = CASE WHEN excluded.last_error IS NULL THEN 0 ELSE s.consecutive_failures + 1 END
  `.execute(db);
}

export async function listStatuses(db: Kysely<CollectorDatabase>): Promise<Map<string, TargetStatus>> {
  const rows = await db.selectFrom('collector_target_status').selectAll().execute();
  return new Map(
    rows.map((row) => [
      row.url,
      {
        url: row.url,
        owner: row.owner,
        lastScrapeAt: row.last_scrape_at,
        lastSuccessAt: row.last_success_at,
        lastError: row.last_error,
        lastDurationMs: row.last_duration_ms,
        lastSamples: row.last_samples,
        consecutiveFailures: row.consecutive_failures,
      },
    ]),
  );
}
