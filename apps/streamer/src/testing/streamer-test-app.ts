import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { createLogger } from '@gpu-telemetry/service-kit';
import { documentedResponses, TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import { createApp, type StreamerApp, type StreamerAppDeps } from '../app';
import { streamerApi } from '../routes/gpus.openapi';
import { ChunkCompactor, type CompactorDeps } from '../services/chunk-compactor';
import { type MaintainerDeps, TelemetryMaintainer } from '../services/telemetry-maintainer';
import type { StreamerDatabase } from '../streamer.database';

export const STREAMER_TEST_CONFIG: StreamerAppDeps['config'] = {
  STREAMER_CONCURRENCY: 2,
  STREAMER_BATCH: 20,
  STREAMER_VISIBILITY: 30_000,
  STREAMER_MAX_HANDLE: 600_000,
  STREAMER_WAIT: 1_000,
  TELEMETRY_RETENTION: 7 * 86_400_000,
  TELEMETRY_MAINTENANCE_INTERVAL: 3_600_000,
  TELEMETRY_CHUNK: 3_600_000,
  SERVICE_TOKEN: TEST_SERVICE_TOKEN,
};

/**
 * Every answer of the test apps is held to the OpenAPI document: one that does not match is
 * answered as a 500 naming why, and fails the test that caused it.
 */
const responses = documentedResponses(streamerApi);
afterEach(() => responses.assertNone());

/** The streamer's HTTP app and ingest on a fresh database; its queue is whatever `queueUrl` points at. */
export async function startStreamerTestApp(
  options: { queueUrl?: string; config?: Partial<StreamerAppDeps['config']> } = {},
): Promise<
  StreamerApp & { database: TestDatabase<StreamerDatabase>; queue: QueueClient; close(): Promise<void> }
> {
  const database = await createTestDatabase<StreamerDatabase>();
  const queue = new QueueClient({ url: options.queueUrl ?? 'http://127.0.0.1:9', token: TEST_SERVICE_TOKEN });
  const app = createApp({
    pool: database.pool,
    logger: createLogger('streamer', process.env['TEST_LOG_LEVEL'] ?? 'silent'),
    queue,
    config: { ...STREAMER_TEST_CONFIG, ...options.config },
    checkResponse: responses.check,
  });
  await app.maintainer.runOnce();
  return {
    ...app,
    database,
    queue,
    close: async () => {
      await app.stop();
      await queue.close();
      await database.drop();
    },
  };
}

/**
 * A maintainer of a test app's database with the retentions a test sets (ms), hourly chunks, and
 * the app's compactor and metrics.
 */
export function maintainerWith(
  app: Awaited<ReturnType<typeof startStreamerTestApp>>,
  retentions: Pick<MaintainerDeps, 'retentionMs' | 'retention1mMs' | 'retention1hMs'>,
): TelemetryMaintainer {
  return new TelemetryMaintainer({
    pool: app.database.pool,
    logger: createLogger('streamer', 'silent'),
    metrics: app.streamerMetrics,
    compactor: app.compactor,
    chunkMs: 3_600_000,
    intervalMs: 3_600_000,
    compactEveryMs: 60_000,
    ...retentions,
  });
}

/**
 * A compactor of a test app's database, compacting a chunk 10 s after it closes, with what else
 * the test sets (a chunk length, step sizes, a backlog, a clock, a pool).
 */
export function compactorWith(
  app: Awaited<ReturnType<typeof startStreamerTestApp>>,
  deps: Partial<CompactorDeps> = {},
): ChunkCompactor {
  return new ChunkCompactor({
    pool: app.database.pool,
    logger: createLogger('streamer', 'silent'),
    metrics: app.streamerMetrics,
    compactAfterMs: 10_000,
    ...deps,
  });
}
