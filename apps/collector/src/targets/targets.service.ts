import { ConflictError, NotFoundError } from '@gpu-telemetry/model';
import type { Kysely } from 'kysely';
import type { CollectorDatabase } from '../collector.tables';
import type { TargetRegistry, TargetSource } from './target-registry';
import { parseTargetUrl, type TargetPolicy } from './target-url';
import { deleteApiTarget, deleteStatus, insertApiTarget, listStatuses } from './targets.queries';

export interface TargetView {
  id: string | null;
  url: string;
  source: TargetSource;
  /** Replica ordinal that scrapes it. */
  owner: number;
  up: boolean | null;
  lastScrapeAt: string | null;
  lastSuccessAt: string | null;
  lastError: string | null;
  lastDurationMs: number | null;
  lastSamples: number | null;
  consecutiveFailures: number;
}

export class TargetsService {
  constructor(
    private readonly deps: { db: Kysely<CollectorDatabase>; registry: TargetRegistry; policy: TargetPolicy },
  ) {}

  async list(): Promise<TargetView[]> {
    const [targets, statuses] = await Promise.all([this.deps.registry.all(), listStatuses(this.deps.db)]);
    return targets.map((target) => {
      const status = statuses.get(target.url);
      return {
        id: target.id ?? null,
        url: target.url,
        source: target.source,
        owner: this.deps.registry.ownerOf(target.url),
        up: status ? status.lastError === null : null,
        lastScrapeAt: status?.lastScrapeAt.toISOString() ?? null,
        lastSuccessAt: status?.lastSuccessAt?.toISOString() ?? null,
        lastError: status?.lastError ?? null,
        lastDurationMs: status ? Math.round(status.lastDurationMs * 10) / 10 : null,
        lastSamples: status?.lastSamples ?? null,
        consecutiveFailures: status?.consecutiveFailures ?? 0,
      };
    });
  }

  async add(input: string): Promise<{ id: string; url: string; source: 'api'; createdAt: string }> {
    const url = parseTargetUrl(input, this.deps.policy);
    const existing = (await this.deps.registry.all()).find((target) => target.url === url);
    if (existing) throw new ConflictError(`${url} is already a target (${existing.source}).`, { url });
    const created = await insertApiTarget(this.deps.db, url);
    if (!created) throw new ConflictError(`${url} is already a target (api).`, { url });
    return { id: created.id, url: created.url, source: 'api', createdAt: created.createdAt.toISOString() };
  }

  /** Removes the target and its last scrape status together. */
  async remove(id: string): Promise<void> {
    const removed = await this.deps.db.transaction().execute(async (trx) => {
      const target = await deleteApiTarget(trx, id);
      if (target) await deleteStatus(trx, target.url);
      return target;
    });
    if (!removed) throw new NotFoundError(`No target with id ${id} was added through the API.`);
  }
}
