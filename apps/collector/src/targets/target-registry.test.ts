import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { createLogger, createMetrics } from '@gpu-telemetry/service-kit';
import { recordSpans } from '@gpu-telemetry/service-kit/testing-spans';
import { SpanStatusCode } from '@opentelemetry/api';
import { createCollectorMetrics } from '../collector.metrics';
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
  options: {
    replicas?: number;
    ordinal?: number;
    resolve?: (host: string) => Promise<string[]>;
    metrics?: ReturnType<typeof createCollectorMetrics>;
  } = {},
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
    metrics: options.metrics,
  });
}

/** What the registry above lists: static targets, DNS addresses (link-local skipped), the API's. */
const EVERY_SOURCE = [
  ['static', 'http://static-1:9400/metrics'],
  ['static', 'http://static-2:9400/metrics'],
  ['dns', 'http://10.1.0.7:9400/metrics'],
  ['dns', 'http://10.1.0.8:9400/metrics'],
  ['dns', 'http://[fd00::9]:9400/metrics'],
  ['api', 'http://api-node:9400/metrics'],
];

describe('TargetRegistry', () => {
  it('merges static, DNS (every address, link-local skipped) and API targets', async () => {
    const targets = await registry().all();
    expect(targets.map((t) => [t.source, t.url])).toEqual(EVERY_SOURCE);
  });

  it('keeps the other sources when DNS fails', async () => {
    const targets = await registry({ resolve: async () => Promise.reject(new Error('ENOTFOUND')) }).all();
    expect(targets.map((t) => t.source)).toEqual(['static', 'static', 'api']);
  });

  it('scrapes the addresses a name last had while its lookup fails, and follows it again once it answers', async () => {
    let answer: string[] | Error = ['10.1.0.7', '10.1.0.8'];
    const r = registry({ resolve: async () => (answer instanceof Error ? Promise.reject(answer) : answer) });
    const dns = async () => (await r.all()).filter((t) => t.source === 'dns').map((t) => t.url);
    expect(await dns()).toEqual(['http://10.1.0.7:9400/metrics', 'http://10.1.0.8:9400/metrics']);
    answer = Object.assign(new Error('getaddrinfo EAI_AGAIN dcgm-exporter.gpu-operator'), {
      code: 'EAI_AGAIN',
    });
    expect(await dns()).toEqual(['http://10.1.0.7:9400/metrics', 'http://10.1.0.8:9400/metrics']);
    answer = ['10.1.0.9'];
    expect(await dns()).toEqual(['http://10.1.0.9:9400/metrics']);
  });

  it.each(['ENOTFOUND', 'ENODATA'])(
    'drops the addresses of a name whose lookup says %s (no such name, no address), counted',
    async (code) => {
      const { registry: metricsRegistry } = createMetrics('test', { defaultMetrics: false });
      let answer: string[] | Error = ['10.1.0.7', '10.1.0.8'];
      const r = registry({
        resolve: async () => (answer instanceof Error ? Promise.reject(answer) : answer),
        metrics: createCollectorMetrics(metricsRegistry),
      });
      const dns = async () => (await r.all()).filter((t) => t.source === 'dns').map((t) => t.url);
      expect(await dns()).toHaveLength(2);
      answer = Object.assign(new Error(`getaddrinfo ${code} dcgm-exporter.gpu-operator`), { code });
      expect(await dns()).toEqual([]);
      answer = Object.assign(new Error('getaddrinfo EAI_AGAIN dcgm-exporter.gpu-operator'), {
        code: 'EAI_AGAIN',
      });
      expect(await dns()).toEqual([]);
      answer = ['10.1.0.9'];
      expect(await dns()).toEqual(['http://10.1.0.9:9400/metrics']);
      const text = await metricsRegistry.metrics();
      expect(text).toMatch(/^collector_dns_lookups_total\{outcome="not_found"[^}]*\} 1$/m);
      expect(text).toMatch(/^collector_dns_lookups_total\{outcome="error"[^}]*\} 1$/m);
      expect(text).toMatch(/^collector_dns_lookups_total\{outcome="success"[^}]*\} 2$/m);
    },
  );

  it('traces each lookup: the name, its outcome and the targets it gave, an error where it failed', async () => {
    const recording = recordSpans();
    try {
      let answer: string[] | Error = ['10.1.0.7', '169.254.169.254'];
      const r = registry({
        resolve: async () => (answer instanceof Error ? Promise.reject(answer) : answer),
      });
      await r.all();
      answer = Object.assign(new Error('getaddrinfo EAI_AGAIN dcgm-exporter.gpu-operator'), {
        code: 'EAI_AGAIN',
      });
      await r.all();
      answer = Object.assign(new Error('getaddrinfo ENOTFOUND dcgm-exporter.gpu-operator'), {
        code: 'ENOTFOUND',
      });
      await r.all();
      const lookups = recording.spans().filter((s) => s.name === 'collector.dns_lookup');
      expect(lookups.map((s) => [s.attributes, s.status.code])).toEqual([
        [
          {
            'dns.question.name': 'dcgm-exporter.gpu-operator',
            'collector.dns.outcome': 'success',
            'collector.dns.targets': 1,
          },
          SpanStatusCode.UNSET,
        ],
        [
          {
            'dns.question.name': 'dcgm-exporter.gpu-operator',
            'collector.dns.outcome': 'error',
            'collector.dns.targets': 1,
          },
          SpanStatusCode.ERROR,
        ],
        [
          {
            'dns.question.name': 'dcgm-exporter.gpu-operator',
            'collector.dns.outcome': 'not_found',
            'collector.dns.targets': 0,
          },
          SpanStatusCode.UNSET,
        ],
      ]);
    } finally {
      await recording.stop();
    }
  });

  it('scrapes the API targets last listed while Postgres cannot list them', async () => {
    const r = registry();
    expect((await r.all()).filter((t) => t.source === 'api').map((t) => t.url)).toEqual([
      'http://api-node:9400/metrics',
    ]);
    // The table gone for a moment: listing fails as it would with Postgres down.
    await database.pool.query('ALTER TABLE collector_targets RENAME TO collector_targets_away');
    try {
      await expect(registry().all()).resolves.toHaveLength(5); // a registry that never listed: none
      expect((await r.all()).map((t) => [t.source, t.url])).toEqual(EVERY_SOURCE);
    } finally {
      await database.pool.query('ALTER TABLE collector_targets_away RENAME TO collector_targets');
    }
  });

  it('splits the targets between replicas with no overlap and no gap', async () => {
    const shares = await Promise.all([0, 1, 2].map((ordinal) => registry({ replicas: 3, ordinal }).owned()));
    const urls = shares.flat().map((t) => t.url);
    expect(urls).toHaveLength(6);
    expect(new Set(urls).size).toBe(6);
  });
});
