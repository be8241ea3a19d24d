import { createServer as createHttp } from 'node:http';
import { createServer as createTcp, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createDb } from '@gpu-telemetry/db';
import { waitFor } from '@gpu-telemetry/harness';
import { QueueClient } from '@gpu-telemetry/queue-client';
import { createLogger } from '@gpu-telemetry/service-kit';
import { TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import { createApp } from '../app';
import type { CollectorDatabase } from '../collector.tables';
import { loadCollectorConfig } from '../config';

describe('the scrape loop', () => {
  it('scrapes every interval while Postgres accepts connections and never answers', async () => {
    // A port that accepts connections and says nothing: every query waits out its timeout.
    const sockets: Socket[] = [];
    const silent = createTcp((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const databaseUrl = `postgres://u:p@127.0.0.1:${(silent.address() as AddressInfo).port}/x`;
    const scrapes: number[] = [];
    const exporter = createHttp((_req, res) => {
      scrapes.push(performance.now());
      res.end('DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1"} 5\n');
    });
    await new Promise<void>((resolve) => exporter.listen(0, '127.0.0.1', resolve));
    const database = createDb<CollectorDatabase>(databaseUrl);
    const queue = new QueueClient({ url: 'http://127.0.0.1:9', timeoutMs: 500 });
    const collector = createApp({
      db: database.db,
      pool: database.pool,
      logger: createLogger('collector', 'silent'),
      queue,
      config: loadCollectorConfig({
        DATABASE_URL: databaseUrl,
        SERVICE_TOKEN: TEST_SERVICE_TOKEN,
        COLLECT_TARGETS: `http://127.0.0.1:${(exporter.address() as AddressInfo).port}/metrics`,
        COLLECT_INTERVAL: '1s',
      }),
    });
    try {
      const started = performance.now();
      collector.scrapeLoop.start();
      await waitFor('three scrapes', () => scrapes.length >= 3, { timeoutMs: 8_000 });
      // The first within the first interval (its spread) and the list wait; then one an interval.
      expect((scrapes[0] as number) - started).toBeLessThan(2_000);
      for (let i = 1; i < 3; i++)
        expect((scrapes[i] as number) - (scrapes[i - 1] as number)).toBeLessThan(1_800);
    } finally {
      await collector.stop(200);
      for (const socket of sockets) socket.destroy();
      silent.close();
      exporter.closeAllConnections();
      exporter.close();
      await queue.close();
      await database.pool.end().catch(() => undefined);
    }
  }, 30_000);
});
