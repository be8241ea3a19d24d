import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { createLogger } from '@gpu-telemetry/service-kit';
import { TargetRegistry } from './target-registry';
import { insertApiTarget } from './targets.queries';
import type { CollectorDatabase } from '../collector.tables';

let database: TestDatabase<CollectorDatabase>;

beforeAll(async () => {
  database = await createTestDatabase<CollectorDatabase>();
  await insertApiTarget(database.db, 'http://api-node:9400/metrics');
});

afterAll(async () => {
  await database.drop();
});

function registry(
  options: { replicas?: number; ordinal?: number; resolve?: (host: string) => Promise<string[]> } = {},
) {
  return new TargetRegistry({
    db: database.db,
    logger: createLogger('collector', 'silent'),
    policy: { allowLinkLocal: false },
    staticTargets: ['http://static-1:9400/metrics', 'http://static-2:9400/metrics'],
    dnsTargets: ['http://dcgm-exporter.gpu-operator:9400/metrics'],
    replicas: options.replicas ?? 1,
    ordinal: options.ordinal ?? 0,
    resolve: options.resolve ?? (async () => ['10.1.0.7', '10.1.0.8', 'fd00::9', '169.254.169.254']),
  });
}

describe('TargetRegistry', () => {
  it('merges static, DNS (every address, link-local skipped) and API targets', async () => {
    const targets = await registry().all();
    expect(targets.map((t) => [t.source, t.url])).toEqual([
      ['static', 'http://static-1:9400/metrics'],
      ['static', 'http://static-2:9400/metrics'],
      ['dns', 'http://10.1.0.7:9400/metrics'],
      ['dns', 'http://10.1.0.8:9400/metrics'],
      ['dns', 'http://[fd00::9]:9400/metrics'],
      ['api', 'http://api-node:9400/metrics'],
    ]);
  });

  it('keeps the other sources when DNS fails', async () => {
    const targets = await registry({ resolve: async () => Promise.reject(new Error('ENOTFOUND')) }).all();
    expect(targets.map((t) => t.source)).toEqual(['static', 'static', 'api']);
  });

  it('splits the targets between replicas with no overlap and no gap', async () => {
    const shares = await Promise.all([0, 1, 2].map((ordinal) => registry({ replicas: 3, ordinal }).owned()));
    const urls = shares.flat().map((t) => t.url);
    expect(urls).toHaveLength(6);
    expect(new Set(urls).size).toBe(6);
  });
});
