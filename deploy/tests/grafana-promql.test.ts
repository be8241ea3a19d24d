import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { DcgmSimulator } from '@gpu-telemetry/dcgm-simulator';
import { MemorySeriesSource, parseExpr, PromQLEngine, type QueryResult } from '@gpu-telemetry/promql';
import { parse } from 'yaml';

/**
 * The PromQL dashboards (fleet, host, GPU, errors): every query parses with the PromQL grammar,
 * and answers with data when evaluated (by libs/promql, held equal to Prometheus) over what a
 * simulated dcgm-exporter fleet reports, as Prometheus stores it (job and instance labels added).
 * A typo in a metric or label name, or a query that can only ever be empty, fails here.
 */
const grafanaDir = path.resolve(__dirname, '../grafana');
interface Target {
  refId: string;
  expr: string;
  instant?: boolean;
  datasource: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; query: string; datasource: { uid: string } }[] };
}
const dashboards = readdirSync(path.join(grafanaDir, 'dashboards'))
  .filter((file) => file.endsWith('.json'))
  .map((file) => JSON.parse(readFileSync(path.join(grafanaDir, 'dashboards', file), 'utf8')) as Dashboard);
const provisioned = parse(
  readFileSync(path.join(grafanaDir, 'provisioning/datasources/gpu-telemetry.yaml'), 'utf8'),
) as { datasources: { uid: string; type: string; url: string; jsonData: Record<string, string> }[] };

const HOSTS = 2;
const GPUS = 2;
const STEP = 15_000;
const end = Math.floor(Date.now() / 60_000) * 60_000;
const start = end - 2 * 3_600_000;
const simulator = new DcgmSimulator({ hosts: HOSTS, gpusPerHost: GPUS });
const host = 'sim-node-001';
const gpu = simulator.inventory().find((g) => g.host === host)?.uuid as string;

/** Two hours of the simulated fleet, scraped every 15 s, as Prometheus labels it. */
function fleet(): MemorySeriesSource {
  const series = new Map<string, { labels: Record<string, string>; samples: [number, number][] }>();
  const line = /^(\w+)\{(.*)\} (\S+)$/;
  for (let t = start; t <= end; t += STEP) {
    const now = new DcgmSimulator({ hosts: HOSTS, gpusPerHost: GPUS, now: () => t });
    for (let h = 1; h <= HOSTS; h++) {
      for (const text of now.render(h).split('\n')) {
        const match = line.exec(text);
        if (!match) continue;
        const labels: Record<string, string> = {
          __name__: match[1] as string,
          job: 'dcgm',
          instance: `node-${h}:9400`,
        };
        for (const [, name, value] of (match[2] as string).matchAll(/(\w+)="([^"]*)"/g))
          labels[name as string] = value as string;
        const key = JSON.stringify(labels);
        const entry = series.get(key) ?? { labels, samples: [] };
        entry.samples.push([t, Number(match[3])]);
        series.set(key, entry);
      }
    }
  }
  const source = new MemorySeriesSource();
  for (const { labels, samples } of series.values()) source.add(labels, samples);
  return source;
}

const engine = new PromQLEngine({ source: fleet() });

/** A query as Grafana sends it: its variables and interval macros filled in. */
function filled(expr: string): string {
  return expr
    .replaceAll('$Hostname', host)
    .replaceAll('$gpu', gpu)
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '1m')
    .replaceAll('$__range', '1h');
}

function points(result: QueryResult): number[] {
  switch (result.resultType) {
    case 'vector':
      return result.result.map((s) => s.value);
    case 'matrix':
      return result.result.flatMap((s) => Array.from(s.values as ArrayLike<number>));
    case 'scalar':
      return [result.result.value];
    default:
      return [];
  }
}

const targets = dashboards.flatMap((d) =>
  d.panels.flatMap((p) => (p.targets ?? []).map((t) => [`${d.title} / ${p.title} / ${t.refId}`, t] as const)),
);

describe('Grafana PromQL dashboards', () => {
  it('are the fleet, host, GPU and errors dashboards, every panel on the provisioned gateway data source', () => {
    expect(dashboards.map((d) => d.uid).sort()).toEqual([
      'gpu-device',
      'gpu-errors',
      'gpu-fleet',
      'gpu-host',
    ]);
    const [source] = provisioned.datasources;
    expect(source).toMatchObject({ type: 'prometheus', url: '$__env{GPU_TELEMETRY_URL}/prometheus' });
    expect(source?.jsonData['httpHeaderName1']).toBe('Authorization');
    for (const d of dashboards) {
      for (const panel of d.panels.filter((p) => p.type !== 'row')) {
        expect(`${d.title} / ${panel.title}: ${panel.datasource?.uid}`).toBe(
          `${d.title} / ${panel.title}: ${source?.uid}`,
        );
        for (const t of panel.targets ?? []) expect(t.datasource.uid).toBe(source?.uid);
      }
      for (const variable of d.templating.list) expect(variable.datasource.uid).toBe(source?.uid);
      expect(new Set(d.panels.map((p) => p.id)).size).toBe(d.panels.length);
    }
    const titles = dashboards
      .find((d) => d.uid === 'gpu-errors')
      ?.panels.map((p) => p.title.toLowerCase())
      .join(' ');
    for (const topic of ['xid', 'ecc', 'throttl', 'nvlink', 'pcie']) expect(titles).toContain(topic);
  });

  it.each(targets)('%s parses and answers with data', async (_name, target) => {
    const query = filled(target.expr);
    expect(() => parseExpr(query)).not.toThrow();
    const result = target.instant
      ? await engine.instantQuery(query, end)
      : await engine.rangeQuery(query, end - 30 * 60_000, end, 60_000);
    const values = points(result);
    expect(values.length).toBeGreaterThan(0);
    for (const v of values) expect(Number.isFinite(v)).toBe(true);
  });

  it.each(
    dashboards.flatMap((d) => d.templating.list.map((v) => [`${d.title} $${v.name}`, v.query] as const)),
  )('%s lists values', async (_name, query) => {
    const match = /^label_values\((.+), (\w+)\)$/.exec(query);
    expect(match).not.toBeNull();
    const result = await engine.instantQuery(filled(match![1] as string), end);
    if (result.resultType !== 'vector') throw new Error(result.resultType);
    const values = new Set(result.result.map((s) => s.labels.find((l) => l.name === match![2])?.value));
    expect(values.size).toBeGreaterThan(0);
    expect(values.has(undefined)).toBe(false);
  });
});
