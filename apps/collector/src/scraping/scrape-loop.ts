import { getTracer, type Logger, withSpan } from '@gpu-telemetry/service-kit';
import { type Span, SpanStatusCode } from '@opentelemetry/api';
import type { Kysely } from 'kysely';
import type { Dispatcher } from 'undici';
import type { CollectorMetrics } from '../collector.metrics';
import type { CollectorDatabase } from '../collector.tables';
import { MessageBuilder, metadataMessages } from '../publishing/message-builder';
import type { Publisher } from '../publishing/publisher';
import type { Target, TargetRegistry, TargetSource } from '../targets/target-registry';
import type { TargetPolicy } from '../targets/target-url';
import { pruneStatuses, saveStatuses, type TargetStatus } from '../targets/targets.queries';
import { EventLoopBudget } from './event-loop-budget';
import { ScrapeError, type ScrapeResult, scrapeTarget } from './scraper';

export interface ScrapeLoopOptions {
  db: Kysely<CollectorDatabase>;
  registry: TargetRegistry;
  publisher: Publisher;
  dispatcher: Dispatcher;
  policy: TargetPolicy;
  logger: Logger;
  metrics: CollectorMetrics;
  intervalMs: number;
  timeoutMs: number;
  maxBytes: number;
  /** Most samples one scrape may hold (Prometheus's sample_limit); past it the scrape fails. */
  sampleLimit: number;
  /** Most labels on one sample (Prometheus's label_limit); past it the scrape fails. */
  labelLimit: number;
  concurrency: number;
  /** How long the store keeps samples (TELEMETRY_RETENTION): older exporter timestamps are left out. */
  retentionMs?: number;
  /** Delay before the first round; by default a random part of the interval, so replicas spread out. */
  firstDelayMs?: number;
  now?: () => number;
}

const tracer = getTracer('collector');
/** How often a target's unchanged metadata is sent again. */
const METADATA_RESEND_MS = 10 * 60_000;
/** How long a round waits for the target list (DNS, Postgres) before it scrapes those last listed. */
const LIST_WAIT_MS = 500;

type RoundStatus = TargetStatus & { source: TargetSource };

/**
 * Every interval, scrapes each target this replica owns, at most `concurrency` at a time, each
 * within its own timeout, so a slow or dead target costs only its own slot. Rounds never overlap:
 * one that overruns the interval is followed by the next at once (and logged).
 */
export class ScrapeLoop {
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;
  private stopped = true;
  /** Set by stop(): a round under way starts no new scrape. (Rounds run by hand before start() run whole.) */
  private halted = false;
  private readonly failures = new Map<string, number>();
  /** Per target, the metadata last sent and when: sent again when it changes, or after a while. */
  private readonly metadataSent = new Map<string, { text: string; at: number }>();
  /** Targets with a last-success series exported. */
  private readonly succeeded = new Set<string>();
  /** Targets warned of samples the store cannot take, until their scrapes are clean again. */
  private readonly unstorableWarned = new Set<string>();
  /** Parsing of every scrape shares the event loop through it. */
  private readonly budget = new EventLoopBudget();
  /** The target listing in flight, if any. */
  private listing: Promise<Target[]> | undefined;
  /** The status save in flight, if any, and the statuses waiting for the next one. */
  private saving: Promise<void> | undefined;
  private readonly unsaved = new Map<string, RoundStatus>();

  constructor(private readonly options: ScrapeLoopOptions) {}

  start(): void {
    this.stopped = false;
    this.halted = false;
    const first = this.options.firstDelayMs ?? Math.random() * Math.min(this.options.intervalMs, 10_000);
    this.schedule(first);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.halted = true;
    clearTimeout(this.timer);
    await this.round;
    await this.saving;
  }

  /** One round now, resolving once its statuses are saved (or could not be). */
  async runRound(): Promise<void> {
    await this.scrapeRound();
    await this.saving;
  }

  /**
   * One round: what the timer runs. It waits on the database for nothing: the targets are those
   * last listed when listing them is slow, and statuses are saved beside the next scrapes.
   */
  private async scrapeRound(): Promise<void> {
    const started = Date.now();
    const { logger, metrics } = this.options;
    await withSpan(tracer, 'collector.round', {}, async (span) => {
      const targets = await this.listTargets();
      metrics.targets.set(targets.length);
      this.forgetAllBut(new Set(targets.map((t) => t.url)));
      span.setAttribute('collector.targets', targets.length);
      const statuses: RoundStatus[] = [];
      let next = 0;
      // Once stopped, no new scrape starts: the stop waits only for those in flight.
      const worker = async () => {
        while (next < targets.length && !this.halted) {
          const target = targets[next++] as Target;
          statuses.push({ ...(await this.scrapeOne(target)), source: target.source });
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.options.concurrency, targets.length) }, worker));
      this.saveStatuses(statuses);
      const samples = statuses.reduce((sum, s) => sum + s.lastSamples, 0);
      const failed = statuses.filter((s) => s.lastError !== null).length;
      span.setAttribute('collector.failed', failed);
      metrics.roundDuration.observe((Date.now() - started) / 1000);
      logger.info({ targets: targets.length, failed, samples, ms: Date.now() - started }, 'scrape round');
    });
  }

  /**
   * The targets this replica owns, listed afresh (one listing at a time) when that takes at most
   * LIST_WAIT_MS; else, or when it fails, those last listed, so that a Postgres that does not
   * answer (or a slow DNS) delays no scrape.
   */
  private async listTargets(): Promise<Target[]> {
    const { registry, logger } = this.options;
    if (!this.listing) {
      const listing = registry.owned().finally(() => {
        if (this.listing === listing) this.listing = undefined;
      });
      listing.catch(() => undefined); // handled below, or by a later round
      this.listing = listing;
    }
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<undefined>(
      (resolve) => (timer = setTimeout(() => resolve(undefined), LIST_WAIT_MS)),
    );
    try {
      const listed = await Promise.race([this.listing, waited]);
      if (listed) return listed;
      logger.info({ ms: LIST_WAIT_MS }, 'listing targets is slow; scraping those last listed');
    } catch (error) {
      logger.warn({ err: error }, 'could not list targets; scraping those last listed');
    } finally {
      clearTimeout(timer);
    }
    return registry.lastOwned();
  }

  /**
   * Saves the statuses beside the rounds: one save in flight at most; statuses of rounds that end
   * meanwhile wait for it, the newest of each target kept. Then deletes the status rows of targets
   * no longer listed, a bounded number at a time.
   */
  private saveStatuses(statuses: RoundStatus[]): void {
    for (const status of statuses) this.unsaved.set(status.url, status);
    if (this.saving || this.unsaved.size === 0) return;
    this.saving = this.saveUnsaved().finally(() => (this.saving = undefined));
  }

  private async saveUnsaved(): Promise<void> {
    const { db, registry, logger } = this.options;
    while (this.unsaved.size > 0) {
      const batch = [...this.unsaved.values()];
      this.unsaved.clear();
      try {
        await saveStatuses(db, batch);
        const pruned = await pruneStatuses(db, registry.configured());
        if (pruned > 0) logger.info({ rows: pruned }, 'deleted the status of targets no longer listed');
      } catch (error) {
        // The next round's statuses are saved in their place.
        logger.warn({ err: error, targets: batch.length }, 'could not save target statuses');
        return;
      }
    }
  }

  /**
   * Forgets what it kept of targets it no longer scrapes (removed, or now another replica's): their
   * failure counts, metadata, and last-success series, which would otherwise be exported for good.
   */
  private forgetAllBut(owned: Set<string>): void {
    for (const url of this.metadataSent.keys()) if (!owned.has(url)) this.metadataSent.delete(url);
    for (const url of this.failures.keys()) if (!owned.has(url)) this.failures.delete(url);
    for (const url of this.unstorableWarned) if (!owned.has(url)) this.unstorableWarned.delete(url);
    for (const url of this.succeeded) {
      if (owned.has(url)) continue;
      this.succeeded.delete(url);
      this.options.metrics.lastSuccess.remove({ target: url });
    }
  }

  private scrapeOne(target: Target): Promise<TargetStatus> {
    return withSpan(tracer, 'collector.scrape', { 'url.full': target.url }, (span) =>
      this.scrapeAndPublish(target, span),
    );
  }

  private async scrapeAndPublish(target: Target, span: Span): Promise<TargetStatus> {
    const { metrics, logger, publisher } = this.options;
    const now = this.options.now ?? Date.now;
    const scrapedAt = now();
    const status: TargetStatus = {
      url: target.url,
      owner: this.options.registry.replicaName,
      lastScrapeAt: new Date(scrapedAt),
      lastSuccessAt: null,
      lastError: null,
      lastDurationMs: 0,
      lastSamples: 0,
      consecutiveFailures: 0,
    };
    const started = performance.now();
    // Samples are serialised as they are parsed; a failed scrape drops them all, unpublished.
    const messages = new MessageBuilder(target.url, scrapedAt);
    try {
      const result = await scrapeTarget(target.url, {
        dispatcher: this.options.dispatcher,
        timeoutMs: this.options.timeoutMs,
        maxBytes: this.options.maxBytes,
        sampleLimit: this.options.sampleLimit,
        labelLimit: this.options.labelLimit,
        policy: this.options.policy,
        budget: this.budget,
        onSample: (sample) => messages.add(sample),
        now: () => scrapedAt,
        retentionMs: this.options.retentionMs,
      });
      metrics.scrapes.inc({ outcome: 'success' });
      metrics.parseErrors.inc(result.parseErrors);
      metrics.samplesScraped.inc(result.samples);
      metrics.lastSuccess.set({ target: target.url }, scrapedAt / 1000);
      this.succeeded.add(target.url);
      if (result.samples > 0) publisher.enqueue(messages.finish());
      this.sendMetadata(target.url, scrapedAt, result.metadata);
      if (result.unstorable > 0) {
        metrics.dropped.inc({ reason: 'unstorable' }, result.unstorable);
        // Warned once a target until its samples are storable again: an exporter does not fix
        // itself between scrapes.
        if (!this.unstorableWarned.has(target.url)) {
          this.unstorableWarned.add(target.url);
          logger.warn(
            { target: target.url, samples: result.unstorable, first: result.firstUnstorable },
            'left out samples the store cannot take',
          );
        }
      } else this.unstorableWarned.delete(target.url);
      if (result.parseErrors > 0) {
        logger.debug(
          { target: target.url, errors: result.parseErrors, first: result.firstParseError },
          'skipped unparsable lines',
        );
      }
      status.lastSuccessAt = new Date(scrapedAt);
      status.lastSamples = result.samples;
      this.failures.delete(target.url);
      span.setAttributes({
        'collector.scrape.outcome': 'success',
        'collector.scrape.samples': result.samples,
      });
    } catch (error) {
      const outcome = error instanceof ScrapeError ? error.outcome : 'connection_error';
      metrics.scrapes.inc({ outcome });
      const message = `${outcome}: ${error instanceof Error ? error.message : String(error)}`;
      // What a target sends (a redirect's location) must not fill the status table.
      status.lastError = message.length > 500 ? `${message.slice(0, 500)}…` : message;
      span.setAttribute('collector.scrape.outcome', outcome);
      span.setStatus({ code: SpanStatusCode.ERROR, message: status.lastError });
      const failures = (this.failures.get(target.url) ?? 0) + 1;
      this.failures.set(target.url, failures);
      status.consecutiveFailures = failures;
      // Log the first failure and then every tenth, not every interval of a dead node.
      if (failures === 1 || failures % 10 === 0)
        logger.warn({ target: target.url, outcome, failures, err: error }, 'scrape failed');
    }
    status.lastDurationMs = performance.now() - started;
    metrics.scrapeDuration.observe(status.lastDurationMs / 1000);
    return status;
  }

  /**
   * A target's metadata goes on the telemetry topic when it differs from what was last sent for
   * it, and again every METADATA_RESEND_MS (a streamer's store may have been restored since).
   */
  private sendMetadata(url: string, at: number, entries: ScrapeResult['metadata']): void {
    if (entries.length === 0) return;
    const text = JSON.stringify(entries);
    const last = this.metadataSent.get(url);
    if (last && last.text === text && at - last.at < METADATA_RESEND_MS) return;
    const sent = { text, at };
    this.metadataSent.set(url, sent);
    // Dropped unpublished (the queue down past the buffer): sent again with the next scrape.
    const forget = () => {
      if (this.metadataSent.get(url) === sent) this.metadataSent.delete(url);
    };
    this.options.publisher.enqueue(
      metadataMessages(url, String(at), entries).map((message) => ({ ...message, onDropped: forget })),
    );
    this.options.metrics.metadataSent.inc(entries.length);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      const started = Date.now();
      this.round = this.scrapeRound()
        .catch((error: unknown) => this.options.logger.error({ err: error }, 'scrape round failed'))
        .finally(() => {
          const elapsed = Date.now() - started;
          if (elapsed > this.options.intervalMs) {
            this.options.logger.warn(
              { ms: elapsed, intervalMs: this.options.intervalMs },
              'scrape round took longer than the interval',
            );
          }
          this.schedule(Math.max(0, this.options.intervalMs - elapsed));
        });
    }, delayMs);
  }
}
