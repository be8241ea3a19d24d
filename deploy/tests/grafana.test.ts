import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { parse } from 'yaml';

/**
 * The Grafana dashboard: every panel's SQL, with Grafana's macros expanded the way its Postgres
 * data source expands them, runs against the real migrated schema and returns what the panel
 * draws, as the read-only role datasource.yaml tells operators to create. A renamed column or
 * table, or a table that role may not read, fails here, not on an operator's screen.
 */
const grafanaDir = path.resolve(__dirname, '../grafana');
interface Target {
  refId: string;
  rawSql: string;
  format: 'time_series' | 'table';
  datasource: { uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: Target[];
}
const dashboard = JSON.parse(readFileSync(path.join(grafanaDir, 'gpu-telemetry.json'), 'utf8')) as {
  uid: string;
  panels: Panel[];
  templating: { list: Array<{ name: string; query: string; datasource: { uid: string } }> };
};
const datasourceText = readFileSync(path.join(grafanaDir, 'datasource.yaml'), 'utf8');
const datasource = parse(datasourceText) as {
  datasources: Array<{ uid: string; type: string; jsonData: { database: string } }>;
};
const queryPanels = dashboard.panels.filter((p) => p.targets?.length);

const HOUR = 3_600_000;
const now = Date.now();
const from = new Date(now - 3 * HOUR).toISOString();
const to = new Date(now + 60_000).toISOString();

/** Grafana's Postgres macros, for a 3-hour range at a 1-minute interval, and the $hostname variable. */
function expand(sql: string, hostnames: string[]): string {
  return sql
    .replace(
      /\$__timeGroupAlias\((\w+),\s*\$__interval\)/g,
      (_m, column: string) => `to_timestamp(floor(extract(epoch FROM ${column}) / 60) * 60) AS "time"`,
    )
    .replace(/\$__timeFilter\((\w+)\)/g, (_m, column: string) => `${column} BETWEEN '${from}' AND '${to}'`)
    .replace(/\$__timeFrom\(\)/g, `'${from}'::timestamptz`)
    .replace(/\$__timeTo\(\)/g, `'${to}'::timestamptz`)
    .replace(/\$__interval_ms/g, '60000')
    .replace(/\$hostname/g, hostnames.map((h) => `'${h}'`).join(', '));
}

let db: TestDatabase;
/** The read-only role datasource.yaml tells operators to create, with its GRANT as written there. */
const reader = `grafana_reader_${process.pid}_${Date.now()}`;

/** Runs a panel's SQL as that role, as Grafana would. */
async function asReader(sql: string) {
  const client = await db.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`SET LOCAL ROLE ${reader}`);
    return await client.query(sql);
  } finally {
    await client.query('ROLLBACK');
    client.release();
  }
}

beforeAll(async () => {
  db = await createTestDatabase();
  const grants = datasourceText.match(/GRANT SELECT ON [^;\n]+ TO grafana_reader;/g);
  if (!grants) throw new Error('datasource.yaml no longer shows the GRANTs for its read-only role');
  await db.pool.query(`CREATE ROLE ${reader}`);
  for (const grant of grants) await db.pool.query(grant.replace('grafana_reader', reader));
  // Two GPUs on two hosts, a sample of each panel's metric every minute for an hour.
  const metrics: Record<string, (gpu: number, minute: number) => number> = {
    DCGM_FI_DEV_GPU_UTIL: (gpu, m) => (gpu * 30 + m) % 100,
    DCGM_FI_DEV_GPU_TEMP: (gpu, m) => 40 + gpu * 5 + (m % 10),
    DCGM_FI_DEV_FB_USED: () => 30_000,
    DCGM_FI_DEV_FB_FREE: () => 10_000,
    DCGM_FI_DEV_POWER_USAGE: (gpu) => 250 + gpu * 50,
  };
  const rows: unknown[][] = [];
  for (let gpu = 0; gpu < 2; gpu++) {
    for (let minute = 0; minute < 60; minute++) {
      for (const [metric, value] of Object.entries(metrics)) {
        rows.push([
          `GPU-${gpu}`,
          gpu,
          `host-${gpu}`,
          metric,
          new Date(now - minute * 60_000).toISOString(),
          value(gpu, minute),
        ]);
      }
    }
  }
  // Stored as the streamer stores them: each series once, samples as (series, time, value).
  await db.pool.query(
    `INSERT INTO telemetry_series (key, gpu_id, gpu_index, hostname, metric_name)
     SELECT DISTINCT telemetry_series_key(r->>3, r->>0, (r->>1)::int, null, null, r->>2, null, null, null, '{}'),
            r->>0, (r->>1)::int, r->>2, r->>3
     FROM jsonb_array_elements($1::jsonb) AS r`,
    [JSON.stringify(rows)],
  );
  await db.pool.query(
    `SELECT count(*) FROM telemetry_ensure_chunks(ARRAY(SELECT now() - k * interval '1 hour' FROM generate_series(0, 2) AS k), 3600)`,
  );
  await db.pool.query(
    `INSERT INTO telemetry_samples (series_id, ts, value)
     SELECT s.id, (r->>4)::timestamptz, (r->>5)::float8
     FROM jsonb_array_elements($1::jsonb) AS r
     JOIN telemetry_series s ON s.gpu_id = r->>0 AND s.metric_name = r->>3`,
    [JSON.stringify(rows)],
  );
  await db.pool.query(
    `INSERT INTO gpus (gpu_id, gpu_index, hostname, first_seen, last_seen) VALUES
       ('GPU-0', 0, 'host-0', now(), now()), ('GPU-1', 1, 'host-1', now(), now())`,
  );
  await db.pool.query(
    `INSERT INTO queue_topic_counters (topic, slot, live, dead) VALUES ('telemetry', 0, 42, 1)`,
  );
  await db.pool.query(
    `INSERT INTO gateway_requests (at, route, method, path, status, latency_ms, bytes_in, bytes_out, request_id)
     SELECT now() - i * interval '10 seconds', 'gpus', 'GET', '/api/v1/gpus', CASE WHEN i % 10 = 0 THEN 502 ELSE 200 END,
            i % 50, 0, 100, 'r' || i
     FROM generate_series(1, 200) AS i`,
  );
});

afterAll(async () => {
  await db?.pool.query(`DROP OWNED BY ${reader}`);
  await db?.pool.query(`DROP ROLE ${reader}`);
  await db?.drop();
});

describe('Grafana dashboard', () => {
  it('has the panels an operator looks for, all on the provisioned data source', () => {
    const titles = queryPanels.map((p) => p.title);
    expect(titles).toEqual(
      expect.arrayContaining([
        'GPU utilisation',
        'GPU temperature',
        'GPU memory used',
        'GPU power',
        'Queue depth',
        'Gateway latency percentiles',
      ]),
    );
    const [source] = datasource.datasources;
    expect(source?.type).toBe('grafana-postgresql-datasource');
    expect(source?.jsonData.database).toBe('gpu_telemetry');
    for (const panel of queryPanels) {
      expect(`${panel.title}: ${panel.datasource?.uid}`).toBe(`${panel.title}: ${source?.uid}`);
      for (const target of panel.targets ?? []) expect(target.datasource.uid).toBe(source?.uid);
    }
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
  });

  it('lists the hosts for the $hostname variable', async () => {
    const variable = dashboard.templating.list.find((v) => v.name === 'hostname');
    const { rows } = await asReader(variable!.query);
    expect(rows.map((r) => Object.values(r)[0])).toEqual(['host-0', 'host-1']);
  });

  it.each(queryPanels.map((p) => [p.title, p] as const))(
    'runs the %s query on the real schema',
    async (_title, panel) => {
      for (const target of panel.targets ?? []) {
        const { rows, fields } = await asReader(expand(target.rawSql, ['host-0', 'host-1']));
        expect(rows.length).toBeGreaterThan(0);
        if (target.format === 'time_series') {
          expect(fields.map((f) => f.name)).toEqual(['time', 'metric', 'value']);
          for (const row of rows) {
            expect(row.time).toBeInstanceOf(Date);
            expect(Number.isFinite(Number(row.value))).toBe(true);
          }
        }
      }
    },
  );

  it('draws what was stored: per-GPU series, memory as a share, queue depth and latency percentiles', async () => {
    const sqlOf = (title: string) =>
      expand(queryPanels.find((p) => p.title === title)!.targets![0]!.rawSql, ['host-1']);
    const power = await asReader(sqlOf('GPU power'));
    expect(new Set(power.rows.map((r) => r.metric))).toEqual(new Set(['host-1 / GPU 1']));
    expect(power.rows.every((r) => Number(r.value) === 300)).toBe(true);
    const memory = await asReader(sqlOf('GPU memory used'));
    expect(memory.rows.every((r) => Number(r.value) === 75)).toBe(true);
    const depth = await asReader(sqlOf('Queue depth'));
    expect(depth.rows).toEqual([{ topic: 'telemetry', live: '42', dead: '1' }]);
    const latency = await asReader(sqlOf('Gateway latency percentiles'));
    expect(new Set(latency.rows.map((r) => r.metric))).toEqual(new Set(['gpus p50', 'gpus p90', 'gpus p99']));
  });
});
