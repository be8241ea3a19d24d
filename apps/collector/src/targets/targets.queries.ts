import { type Kysely, sql } from 'kysely';
import type { CollectorDatabase } from '../collector.tables';
import type { TargetSource } from './target-registry';

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

/**
 * Writes the round's results in one statement; failures keep the last success time. The status of
 * a target added through the API is written only while it is still one, checked in the same
 * statement: a target deleted while it was being scraped does not come back as a status.
 */
export async function saveStatuses(
  db: Kysely<CollectorDatabase>,
  statuses: (TargetStatus & { source: TargetSource })[],
): Promise<void> {
  if (statuses.length === 0) return;
  await sql`
    INSERT INTO collector_target_status AS s
      (url, owner, last_scrape_at, last_success_at, last_error, last_duration_ms, last_samples, consecutive_failures)
    SELECT url, owner, last_scrape_at, last_success_at, last_error, last_duration_ms, last_samples, consecutive_failures
    FROM jsonb_to_recordset(${JSON.stringify(
      statuses.map((s) => ({
        url: s.url,
        api: s.source === 'api',
        owner: s.owner,
        last_scrape_at: s.lastScrapeAt.toISOString(),
        last_success_at: s.lastSuccessAt?.toISOString() ?? null,
        last_error: s.lastError,
        last_duration_ms: s.lastDurationMs,
        last_samples: s.lastSamples,
        consecutive_failures: s.consecutiveFailures,
      })),
    )}::jsonb) AS x(url text, api boolean, owner text, last_scrape_at timestamptz, last_success_at timestamptz,
                    last_error text, last_duration_ms float8, last_samples int, consecutive_failures int)
    WHERE NOT x.api OR EXISTS (SELECT 1 FROM collector_targets t WHERE t.url = x.url)
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

/** The most status rows one prune deletes: a round's worth of work, the rest left to the next. */
export const PRUNE_BATCH = 1000;

/**
 * Deletes the status rows of targets that are no longer targets: neither in `configured` (the
 * targets from the environment and DNS) nor added through the API (checked in the statement, so
 * a target added meanwhile keeps its row). At most PRUNE_BATCH rows a call; returns how many.
 */
export async function pruneStatuses(db: Kysely<CollectorDatabase>, configured: string[]): Promise<number> {
  const result = await sql`
    DELETE FROM collector_target_status
    WHERE url IN (
      SELECT s.url FROM collector_target_status s
      WHERE NOT (s.url = ANY(${configured}::text[]))
        AND NOT EXISTS (SELECT 1 FROM collector_targets t WHERE t.url = s.url)
      LIMIT ${PRUNE_BATCH}
    )
  `.execute(db);
  return Number(result.numAffectedRows ?? 0);
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
