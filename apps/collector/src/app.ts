import { ConfigError } from '@gpu-telemetry/config';
import { pingDatabase } from '@gpu-telemetry/db';
import { ValidationError } from '@gpu-telemetry/model';
import type { QueueClient } from '@gpu-telemetry/queue-client';
import { TELEMETRY_TOPIC } from '@gpu-telemetry/model';
import {
  createMetrics,
  createServiceApp,
  type Logger,
  type ResponseCheck,
  type ServiceMetrics,
  serviceTokenFrom,
  waitAtMost,
} from '@gpu-telemetry/service-kit';
import type { Express } from 'express';
import type { Kysely } from 'kysely';
import type { Pool } from 'pg';
import type { Agent } from 'undici';
import { type CollectorMetrics, createCollectorMetrics } from './collector.metrics';
import type { CollectorDatabase } from './collector.tables';
import { type CollectorConfig, scrapeTimeoutMs } from './config';
import { Publisher } from './publishing/publisher';
import { collectorApi } from './routes/collector.openapi';
import { targetsRoutes } from './routes/targets.routes';
import { writeRoutes } from './routes/write.routes';
import { RemoteWriteService } from './remote-write/remote-write.service';
import { createScrapeAgent } from './scraping/scraper';
import { ScrapeLoop } from './scraping/scrape-loop';
import { CsvReplay } from './sources/csv-replay';
import { ordinalFromHostname } from './targets/ownership';
import { TargetRegistry } from './targets/target-registry';
import { expandRanges, parseTargetUrl } from './targets/target-url';
import { TargetsService } from './targets/targets.service';

export type { CollectorDatabase } from './collector.tables';
export { collectorEnv, loadCollectorConfig } from './config';
export { encodeWriteRequest, type WriteSeries } from './remote-write/write-request';

export interface CollectorAppDeps {
  db: Kysely<CollectorDatabase>;
  pool: Pool;
  logger: Logger;
  queue: QueueClient;
  config: CollectorConfig;
  /** Resolves COLLECT_DNS names (tests inject one). */
  resolve?: (host: string) => Promise<string[]>;
  /** Tests: holds every answer to the OpenAPI document (see createServiceApp). */
  checkResponse?: ResponseCheck;
}

export interface CollectorApp {
  app: Express;
  metrics: ServiceMetrics;
  collectorMetrics: CollectorMetrics;
  publisher: Publisher;
  scrapeLoop: ScrapeLoop;
  csvReplay: CsvReplay | undefined;
  start(): Promise<void>;
  /** Stops scraping (scrapes in flight get half of `timeoutMs`), then publishes what is buffered, within `timeoutMs` in all. */
  stop(timeoutMs: number): Promise<void>;
}

/** Fails start-up, listing every bad URL in COLLECT_TARGETS and COLLECT_DNS. */
function staticTargets(config: CollectorConfig): { targets: string[]; dns: string[] } {
  const policy = { allowLinkLocal: config.COLLECT_ALLOW_LINK_LOCAL };
  const problems: string[] = [];
  const check = (name: string, urls: string[]) =>
    urls.flatMap((url) => {
      try {
        return [parseTargetUrl(url, policy, name)];
      } catch (error) {
        const detail = error instanceof ValidationError ? error.errors?.[0]?.message : String(error);
        problems.push(`${name}: ${url} ${detail}`);
        return [];
      }
    });
  const targets = check(
    'COLLECT_TARGETS',
    config.COLLECT_TARGETS.flatMap((t) => expandRanges(t)),
  );
  const dns = check('COLLECT_DNS', config.COLLECT_DNS);
  if (problems.length) throw new ConfigError(problems);
  return { targets, dns };
}

export function createApp(deps: CollectorAppDeps): CollectorApp {
  const { db, pool, logger, queue, config } = deps;
  const metrics = createMetrics('collector');
  const collectorMetrics = createCollectorMetrics(metrics.registry);
  const policy = { allowLinkLocal: config.COLLECT_ALLOW_LINK_LOCAL };
  const { targets, dns } = staticTargets(config);
  const ordinal =
    config.COLLECTOR_ORDINAL ??
    (config.COLLECTOR_REPLICAS > 1 ? ordinalFromHostname(config.HOSTNAME) : 0) ??
    0;
  if (ordinal >= config.COLLECTOR_REPLICAS) {
    throw new ConfigError([
      `COLLECTOR_ORDINAL ${ordinal} must be below COLLECTOR_REPLICAS ${config.COLLECTOR_REPLICAS}`,
    ]);
  }
  const registry = new TargetRegistry({
    db,
    logger,
    policy,
    staticTargets: targets,
    dnsTargets: dns,
    replicas: config.COLLECTOR_REPLICAS,
    ordinal,
    resolve: deps.resolve,
    metrics: collectorMetrics,
  });
  const publisher = new Publisher({
    client: queue,
    topic: TELEMETRY_TOPIC,
    maxBufferedSamples: config.COLLECT_BUFFER_SAMPLES,
    maxBufferedBytes: config.COLLECT_BUFFER_BYTES,
    messagesPerPublish: config.COLLECT_PUBLISH_BATCH,
    logger,
    metrics: collectorMetrics,
  });
  const dispatcher: Agent = createScrapeAgent(policy);
  const scrapeLoop = new ScrapeLoop({
    db,
    registry,
    publisher,
    dispatcher,
    policy,
    logger,
    metrics: collectorMetrics,
    intervalMs: config.COLLECT_INTERVAL,
    timeoutMs: scrapeTimeoutMs(config),
    maxBytes: config.COLLECT_MAX_BODY,
    sampleLimit: config.COLLECT_SAMPLE_LIMIT,
    labelLimit: config.COLLECT_LABEL_LIMIT,
    concurrency: config.COLLECT_CONCURRENCY,
    retentionMs: config.TELEMETRY_RETENTION,
  });
  const csvReplay = config.COLLECT_CSV
    ? new CsvReplay({
        file: config.COLLECT_CSV,
        rowsPerSecond: config.COLLECT_CSV_RATE,
        loop: config.COLLECT_CSV_LOOP,
        publisher,
        logger,
        metrics: collectorMetrics,
      })
    : undefined;
  const targetsService = new TargetsService({ db, registry, policy });
  const remoteWrite = new RemoteWriteService({
    queue,
    topic: TELEMETRY_TOPIC,
    logger,
    metrics: collectorMetrics,
    maxBodyBytes: config.REMOTE_WRITE_MAX_BODY,
    maxDecompressedBytes: config.REMOTE_WRITE_MAX_DECOMPRESSED,
    maxSeries: config.REMOTE_WRITE_MAX_SERIES,
    maxSamples: config.REMOTE_WRITE_MAX_SAMPLES,
    concurrency: config.REMOTE_WRITE_CONCURRENCY,
    bodyTimeoutMs: config.REMOTE_WRITE_BODY_TIMEOUT,
    retentionMs: config.TELEMETRY_RETENTION,
  });
  const app = createServiceApp({
    service: 'collector',
    logger,
    metrics,
    readiness: [
      { name: 'postgres', check: () => pingDatabase(pool) },
      { name: 'queue', check: () => queue.ready() },
    ],
    serviceToken: serviceTokenFrom(config),
    openapi: collectorApi,
    checkResponse: deps.checkResponse,
    binaryBodyRoutes: (app) => app.use(writeRoutes(remoteWrite)),
    routes: (app) => app.use(targetsRoutes(targetsService)),
  });
  return {
    app,
    metrics,
    collectorMetrics,
    publisher,
    scrapeLoop,
    csvReplay,
    async start() {
      publisher.start();
      scrapeLoop.start();
      await csvReplay?.start();
      logger.info(
        {
          static: targets.length,
          dns: dns.length,
          replica: registry.replicaName,
          intervalMs: config.COLLECT_INTERVAL,
        },
        'collecting',
      );
    },
    async stop(timeoutMs: number) {
      const deadline = performance.now() + timeoutMs;
      csvReplay?.stop();
      // Scrapes in flight get half the time to finish (what one finds later is dropped, counted);
      // the publisher the rest, to publish what is buffered.
      await waitAtMost(scrapeLoop.stop(), timeoutMs / 2);
      await publisher.stop(Math.max(0, deadline - performance.now()));
      // Ends any scrape still in flight.
      await dispatcher.destroy();
    },
  };
}
