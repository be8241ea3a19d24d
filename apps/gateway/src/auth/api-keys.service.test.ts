import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { createDb, migrateDown, migrateUp, migrationStatus } from '@gpu-telemetry/db';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { createLogger } from '@gpu-telemetry/service-kit';
import request from 'supertest';
import { Pool } from 'undici';
import { createApp, type GatewayApp } from '../app';
import { loadGatewayConfig } from '../config';
import { TEST_SERVICE_TOKEN } from '@gpu-telemetry/service-kit/testing';
import { createTestGateway, listenGateway, serve } from '../testing/gateway-test-app';
import { ApiKeysService } from './api-keys.service';
import type { GatewayDatabase } from '../gateway.tables';

/**
 * Key checks that leak nothing through timing: the environment's keys are compared as SHA-256
 * digests (always 32 bytes, so neither length nor a matching prefix shortens the comparison) with
 * crypto.timingSafeEqual; stored keys are looked up by digest, never by the key itself.
 */
const ADMIN = 'bootstrap-admin-key-for-unit-tests-0123456789';
const OTLP = 'span-export-key-for-unit-tests-0123456789';
let database: TestDatabase<GatewayDatabase>;
let keys: ApiKeysService;

beforeAll(async () => {
  database = await createTestDatabase<GatewayDatabase>();
  keys = new ApiKeysService({
    db: database.db,
    logger: createLogger('gateway', 'silent'),
    adminKey: ADMIN,
    otlpKey: OTLP,
  });
});

afterAll(async () => {
  await database.drop();
});

describe('ApiKeysService.authenticate', () => {
  it('compares environment keys as equal-length digests in constant time', async () => {
    // The module object itself (an `import * as` copy would not see the service's calls).
    const compare = jest.spyOn(
      jest.requireActual<typeof import('node:crypto')>('node:crypto'),
      'timingSafeEqual',
    );
    try {
      expect((await keys.authenticate(ADMIN))?.keyId).toBe('bootstrap');
      for (const near of [
        ADMIN.slice(0, -1),
        `${ADMIN}x`,
        `${ADMIN.slice(0, -1)}X`,
        ADMIN.slice(0, 10),
        '',
      ]) {
        expect(await keys.authenticate(near)).toBeNull();
      }
      expect(compare).toHaveBeenCalled();
      for (const [a, b] of compare.mock.calls) {
        expect([(a as Buffer).length, (b as Buffer).length]).toEqual([32, 32]);
      }
    } finally {
      compare.mockRestore();
    }
  });

  it('gives the span-export key the traces scope only, and finds stored keys by digest', async () => {
    expect([...((await keys.authenticate(OTLP))?.scopes ?? [])]).toEqual(['traces']);
    const created = await keys.create('dashboards', ['read']);
    expect((await keys.authenticate(created.key))?.scopes.has('read')).toBe(true);
    const { rows } = await database.pool.query('SELECT key_hash FROM gateway_api_keys WHERE id = $1', [
      created.id,
    ]);
    expect(rows[0].key_hash).toEqual(createHash('sha256').update(created.key).digest());
    expect(JSON.stringify(rows)).not.toContain(created.key);
    expect(await keys.authenticate(`${created.key}x`)).toBeNull();
  });
});

/** Every UPDATE statement on gateway_api_keys, counted by a trigger: authentication must write nothing. */
async function countKeyWrites(db: TestDatabase<GatewayDatabase>): Promise<() => Promise<number>> {
  await db.pool.query(`
    CREATE TABLE key_writes (at timestamptz NOT NULL DEFAULT now());
    CREATE OR REPLACE FUNCTION count_key_write() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN INSERT INTO key_writes DEFAULT VALUES; RETURN NULL; END $$;
    CREATE TRIGGER count_key_writes AFTER UPDATE ON gateway_api_keys
      FOR EACH STATEMENT EXECUTE FUNCTION count_key_write();
  `);
  return async () => Number((await db.pool.query('SELECT count(*) AS n FROM key_writes')).rows[0].n);
}

describe('ApiKeysService lookups', () => {
  /** Holds an exclusive lock on the keys table (as a migration or a stalled session would) until released. */
  async function lockKeys() {
    const client = await database.pool.connect();
    await client.query('BEGIN');
    await client.query('LOCK TABLE gateway_api_keys IN ACCESS EXCLUSIVE MODE');
    return async () => {
      await client.query('COMMIT');
      client.release();
    };
  }

  it('answers 503 once a lookup has waited its deadline, and the key works again once the database does', async () => {
    const hurried = new ApiKeysService({
      db: database.db,
      logger: createLogger('gateway', 'silent'),
      lookupTimeoutMs: 200,
    });
    const { key } = await hurried.create('stalled', ['read']);
    const release = await lockKeys();
    try {
      const started = Date.now();
      const refused = await hurried.authenticate(key).catch((error: unknown) => error);
      expect(refused).toMatchObject({ status: 503, options: { headers: { 'retry-after': '2' } } });
      expect(Date.now() - started).toBeLessThan(2_000);
      // A second request of the same key shares the stalled lookup and gets the same answer in time.
      await expect(hurried.authenticate(key)).rejects.toMatchObject({ status: 503 });
    } finally {
      await release();
    }
    expect((await hurried.authenticate(key))?.scopes.has('read')).toBe(true);
  });

  it('does not cache a key revoked while it was being looked up', async () => {
    const service = new ApiKeysService({ db: database.db, logger: createLogger('gateway', 'silent') });
    const { key, id } = await service.create('revoked-meanwhile', ['read']);
    const release = await lockKeys();
    const looked = service.authenticate(key);
    const revoked = service.revoke(id);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await release();
    await Promise.all([looked, revoked]);
    expect(await service.authenticate(key)).toBeNull();
  });
});

describe('failed authentications through the HTTP API', () => {
  let upstream: Server;
  let upstreamUrl: string;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    });
    upstreamUrl = await serve(upstream);
  });

  afterAll(() => {
    upstream.closeAllConnections();
    upstream.close();
  });

  it('are throttled per client address with 429 and Retry-After, before any key lookup', async () => {
    // Its own pool, closed halfway: a lookup after that could only fail (503), never be throttled (429).
    const own = createDb<GatewayDatabase>(database.url, { max: 2 });
    let logs = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logs += chunk.toString();
        done();
      },
    });
    const gateway = createTestGateway(
      { ...database, db: own.db, pool: own.pool },
      {
        GATEWAY_ADMIN_KEY: ADMIN,
        GATEWAY_STREAMER_URLS: upstreamUrl,
        GATEWAY_RECORDS: 'false',
        GATEWAY_AUTH_FAILURE_LIMIT: '6',
        GATEWAY_AUTH_FAILURE_BURST: '3',
        // Test clients all connect from loopback; X-Forwarded-For says which "client" each one is.
        GATEWAY_TRUSTED_PROXIES: '127.0.0.1,::1',
      },
      createLogger('gateway', 'info', sink),
    );
    try {
      const api = () => request(gateway.handler);
      const from = (address: string, key?: string) => {
        const req = api().get('/api/v1/gpus').set('x-forwarded-for', `198.51.100.99, ${address}`);
        return key ? req.set('authorization', `Bearer ${key}`) : req;
      };
      const unknownKey = () => `gt_${randomBytes(32).toString('base64url')}`;
      const valid = (
        await api()
          .post('/api/v1/keys')
          .set('x-api-key', ADMIN)
          .send({ name: 'v', scopes: ['read'] })
          .expect(201)
      ).body.key as string;
      const uncached = (
        await api()
          .post('/api/v1/keys')
          .set('x-api-key', ADMIN)
          .send({ name: 'u', scopes: ['read'] })
          .expect(201)
      ).body.key as string;
      await from('203.0.113.1', valid).expect(200);

      await from('203.0.113.1', unknownKey()).expect(401);
      await from('203.0.113.1').expect(401);
      await from('203.0.113.1', unknownKey()).expect(401);
      const throttled = await from('203.0.113.1', unknownKey()).expect(429);
      expect(throttled.headers['retry-after']).toBe('10');
      expect(throttled.headers['content-type']).toContain('application/problem+json');
      expect(throttled.body).toMatchObject({
        status: 429,
        detail: expect.stringContaining('failed authentications'),
      });
      await from('203.0.113.1').expect(429);

      await own.close();
      for (let i = 0; i < 5; i++) await from('203.0.113.1', unknownKey()).expect(429);
      // A key already known valid still works from that address; one that would need a lookup waits.
      await from('203.0.113.1', valid).expect(200);
      await from('203.0.113.1', uncached).expect(429);
      // Another address is not throttled: its lookup reaches the closed pool and fails.
      await from('203.0.113.2', unknownKey()).expect(503);
      // A client cannot pick its address: only the entry the trusted proxy appended counts.
      await api()
        .get('/api/v1/gpus')
        .set('x-forwarded-for', '203.0.113.77, 203.0.113.1')
        .set('authorization', `Bearer ${unknownKey()}`)
        .expect(429);

      const metrics = (await request(gateway.app).get('/metrics')).text;
      expect(metrics).toContain('gateway_auth_failures_total{reason="invalid",service="gateway"} 2');
      expect(metrics).toContain('gateway_auth_failures_total{reason="missing",service="gateway"} 1');
      expect(metrics).toContain('gateway_auth_failures_total{reason="throttled",service="gateway"} 9');
      const warnings = logs.split('\n').filter((line) => line.includes('failed authentications throttled'));
      expect(warnings).toHaveLength(1);
      expect(JSON.parse(warnings[0] as string)).toMatchObject({ client: '203.0.113.1', level: 'warn' });
    } finally {
      await gateway.close();
      await own.close().catch(() => undefined);
    }
  });

  it('are throttled while their lookups are still running: sent all at once, no more than the burst reach the database', async () => {
    const env = {
      GATEWAY_ADMIN_KEY: ADMIN,
      GATEWAY_STREAMER_URLS: upstreamUrl,
      GATEWAY_RECORDS: 'false',
      GATEWAY_AUTH_FAILURE_LIMIT: '6',
      GATEWAY_AUTH_FAILURE_BURST: '3',
    };
    // Its own pool, large enough that every lookup it starts holds a connection and shows below.
    const own = createDb<GatewayDatabase>(database.url, { max: 20 });
    const gateways = [createTestGateway({ ...database, db: own.db, pool: own.pool }, env)];
    const keyLookups = async () =>
      Number(
        (
          await database.pool.query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%gateway_api_keys%'",
          )
        ).rows[0].n,
      );
    /**
     * Sends each key at once from one address while the lookups wait on a lock (as they would
     * behind a slow database), so that none has failed before the last is sent; returns the
     * statuses and how many lookups reached the database.
     */
    async function allAtOnce(gateway: GatewayApp, keys: string[], reaching: number) {
      const client = await database.pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('LOCK TABLE gateway_api_keys IN ACCESS EXCLUSIVE MODE');
        const sent = keys.map((key) =>
          request(gateway.handler)
            .get('/api/v1/gpus')
            .set('authorization', `Bearer ${key}`)
            .then((res) => res.status),
        );
        const deadline = Date.now() + 2_000;
        while (Date.now() < deadline && (await keyLookups()) < reaching)
          await new Promise((resolve) => setTimeout(resolve, 20));
        await new Promise((resolve) => setTimeout(resolve, 200));
        const lookups = await keyLookups();
        await client.query('COMMIT');
        return { statuses: await Promise.all(sent), lookups };
      } finally {
        await client.query('ROLLBACK').catch(() => undefined);
        client.release();
      }
    }
    const count = (statuses: number[], status: number) => statuses.filter((s) => s === status).length;
    const unknownKey = () => `gt_${randomBytes(32).toString('base64url')}`;
    try {
      const flood = await allAtOnce(gateways[0] as GatewayApp, Array.from({ length: 12 }, unknownKey), 3);
      expect(flood.lookups).toBe(3);
      expect([count(flood.statuses, 401), count(flood.statuses, 429)]).toEqual([3, 9]);

      // One valid key sent many times at once (a dashboard after its key left the cache) is one
      // lookup, and a found key gives its token back: none of it counts as a failure.
      const { key } = (
        await request(gateways[0]?.handler)
          .post('/api/v1/keys')
          .set('x-api-key', ADMIN)
          .send({ name: 'dashboards', scopes: ['read'] })
          .expect(201)
      ).body as { key: string };
      const fresh = createTestGateway(database, env);
      gateways.push(fresh);
      const dashboard = await allAtOnce(fresh, Array<string>(12).fill(key), 1);
      expect(dashboard.lookups).toBe(1);
      expect(count(dashboard.statuses, 200)).toBe(12);
      for (let i = 0; i < 3; i++) {
        await request(fresh.handler).get('/api/v1/gpus').set('x-api-key', unknownKey()).expect(401);
      }
      await request(fresh.handler).get('/api/v1/gpus').set('x-api-key', unknownKey()).expect(429);

      // With one token left (two typos), the dashboard's first request takes it while its lookup
      // runs; the others share that lookup, which costs the database nothing: none is refused.
      const typos = createTestGateway(database, env);
      gateways.push(typos);
      for (let i = 0; i < 2; i++) {
        await request(typos.handler).get('/api/v1/gpus').set('x-api-key', unknownKey()).expect(401);
      }
      const shared = await allAtOnce(typos, Array<string>(12).fill(key), 1);
      expect(shared.lookups).toBe(1);
      expect(count(shared.statuses, 200)).toBe(12);
    } finally {
      for (const gateway of gateways) await gateway.close();
      await own.close();
    }
  });

  it('never evict a valid key: after 20,000 unknown keys it is still served from cache, and nothing was written', async () => {
    const writes = await countKeyWrites(database);
    // The caches' clock stands still: only eviction, never expiry, could lose the valid key.
    const gateway = createApp({
      db: database.db,
      pool: database.pool,
      logger: createLogger('gateway', 'silent'),
      now: () => 1_700_000_000_000,
      config: loadGatewayConfig({
        DATABASE_URL: database.url,
        SERVICE_TOKEN: TEST_SERVICE_TOKEN,
        GATEWAY_ADMIN_KEY: ADMIN,
        GATEWAY_STREAMER_URLS: upstreamUrl,
        GATEWAY_RECORDS: 'false',
        GATEWAY_RATE_LIMIT: '1000000',
        GATEWAY_RATE_BURST: '1000000',
        GATEWAY_AUTH_FAILURE_LIMIT: '0', // every unknown key reaches the lookup and the caches
      }),
    });
    const server = await listenGateway(gateway);
    const client = new Pool(server.base, { connections: 16 });
    try {
      const created = (
        await request(server.base)
          .post('/api/v1/keys')
          .set('x-api-key', ADMIN)
          .send({ name: 'dashboards', scopes: ['read'] })
          .expect(201)
      ).body as { id: string; key: string };
      const get = async (key: string) => {
        const res = await client.request({
          path: '/api/v1/gpus',
          method: 'GET',
          headers: { authorization: `Bearer ${key}` },
        });
        await res.body.dump();
        return res.statusCode;
      };
      expect(await get(created.key)).toBe(200);
      await gateway.keys.flush();
      const writesBefore = await writes();

      let refused = 0;
      for (let batch = 0; batch < 20_000 / 500; batch++) {
        const statuses = await Promise.all(
          Array.from({ length: 500 }, () => get(`gt_${randomBytes(32).toString('base64url')}`)),
        );
        refused += statuses.filter((status) => status === 401).length;
      }
      expect(refused).toBe(20_000);

      // Revoked behind the gateway's back: only a cached answer can still say 200.
      await database.pool.query('UPDATE gateway_api_keys SET revoked_at = now() WHERE id = $1', [created.id]);
      expect(await get(created.key)).toBe(200);
      const replica = createTestGateway(database, { GATEWAY_ADMIN_KEY: ADMIN, GATEWAY_RECORDS: 'false' });
      await request(replica.handler).get('/api/v1/gpus').set('x-api-key', created.key).expect(401);
      await replica.close();

      await gateway.keys.flush();
      expect((await writes()) - writesBefore).toBe(1); // the revocation above; no authentication wrote
    } finally {
      await client.close();
      await server.server.close();
      await gateway.close();
      await database.pool.query('DROP TRIGGER count_key_writes ON gateway_api_keys; DROP TABLE key_writes');
    }
  }, 60_000);

  it('record last_used_at in the background, once per key per minute, not per request', async () => {
    const writes = await countKeyWrites(database);
    const gateway = createTestGateway(database, {
      GATEWAY_ADMIN_KEY: ADMIN,
      GATEWAY_STREAMER_URLS: upstreamUrl,
      GATEWAY_RECORDS: 'false',
    });
    try {
      const api = () => request(gateway.handler);
      const keys: { id: string; key: string }[] = [];
      for (const name of ['a', 'b']) {
        keys.push(
          (
            await api()
              .post('/api/v1/keys')
              .set('x-api-key', ADMIN)
              .send({ name, scopes: ['read'] })
              .expect(201)
          ).body,
        );
      }
      const before = await writes();
      for (let i = 0; i < 10; i++) {
        for (const { key } of keys) await api().get('/api/v1/gpus').set('x-api-key', key).expect(200);
      }
      await gateway.keys.flush();
      expect((await writes()) - before).toBe(1); // both keys in one statement
      const listed = (await api().get('/api/v1/keys').set('x-api-key', ADMIN).expect(200)).body.keys as {
        id: string;
        lastUsedAt: string | null;
      }[];
      for (const { id } of keys) {
        expect(listed.find((k) => k.id === id)?.lastUsedAt).toEqual(expect.any(String));
      }
    } finally {
      await gateway.close();
      await database.pool.query('DROP TRIGGER count_key_writes ON gateway_api_keys; DROP TABLE key_writes');
    }
  });
});

describe('rotating the environment keys', () => {
  it('accepts the previous admin and span-export keys alongside the current ones, counting and logging their use', async () => {
    const next = 'next-bootstrap-admin-key-0123456789abcdef';
    const nextOtlp = 'next-span-export-key-0123456789abcdef';
    let logs = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logs += chunk.toString();
        done();
      },
    });
    const gateway = createTestGateway(
      database,
      {
        GATEWAY_ADMIN_KEY: next,
        GATEWAY_ADMIN_KEY_PREVIOUS: ADMIN,
        GATEWAY_OTLP_KEY: nextOtlp,
        GATEWAY_OTLP_KEY_PREVIOUS: OTLP,
        GATEWAY_RECORDS: 'false',
      },
      createLogger('gateway', 'info', sink),
    );
    try {
      const api = () => request(gateway.handler);
      await api().get('/api/v1/keys').set('x-api-key', next).expect(200);
      await api().get('/api/v1/keys').set('x-api-key', ADMIN).expect(200);
      await api().get('/api/v1/keys').set('authorization', `Bearer ${ADMIN}`).expect(200);
      const spans = JSON.stringify({ resourceSpans: [] });
      for (const key of [nextOtlp, OTLP]) {
        await api()
          .post('/v1/traces')
          .set('content-type', 'application/json')
          .set('x-api-key', key)
          .send(spans)
          .expect(200);
      }
      // The previous span-export key is still only a span-export key.
      await api().get('/api/v1/keys').set('x-api-key', OTLP).expect(403);
      const metrics = (await request(gateway.app).get('/metrics')).text;
      expect(metrics).toContain('gateway_previous_key_uses_total{key="admin",service="gateway"} 2');
      expect(metrics).toContain('gateway_previous_key_uses_total{key="otlp",service="gateway"} 2');
      const warnings = logs.split('\n').filter((line) => line.includes('_PREVIOUS'));
      // Once a minute per key, not once per request.
      expect(warnings.map((line) => JSON.parse(line).key)).toEqual(['admin', 'otlp']);
      expect(warnings[0]).toContain('GATEWAY_ADMIN_KEY_PREVIOUS');
      for (const key of [next, ADMIN, nextOtlp, OTLP]) expect(logs).not.toContain(key);
    } finally {
      await gateway.close();
    }
  });

  it('refuses a previous key without a current one, or equal to it', () => {
    expect(() =>
      loadGatewayConfig({
        DATABASE_URL: database.url,
        SERVICE_TOKEN: TEST_SERVICE_TOKEN,
        GATEWAY_ADMIN_KEY_PREVIOUS: ADMIN,
      }),
    ).toThrow(/GATEWAY_ADMIN_KEY is required/);
    expect(() =>
      loadGatewayConfig({
        DATABASE_URL: database.url,
        SERVICE_TOKEN: TEST_SERVICE_TOKEN,
        GATEWAY_OTLP_KEY: OTLP,
        GATEWAY_OTLP_KEY_PREVIOUS: OTLP,
      }),
    ).toThrow(/GATEWAY_OTLP_KEY_PREVIOUS must differ from GATEWAY_OTLP_KEY \(got \(hidden\)\)/);
  });
});

describe('migration 0009 (consume scope, topic limits)', () => {
  it('grants consume to existing publish keys on upgrade, and on downgrade folds it back and deletes topic-limited keys', async () => {
    const scratch = await createTestDatabase();
    try {
      const applied = async () =>
        (await migrationStatus(scratch.db)).filter((m) => m.executedAt).map((m) => m.name);
      while ((await applied()).includes('0009_gateway_key_consume_topics')) await migrateDown(scratch.db);
      const insert = (name: string, scopes: string[]) =>
        scratch.pool.query(
          'INSERT INTO gateway_api_keys (name, prefix, key_hash, scopes) VALUES ($1, $1, $2, $3)',
          [name, randomBytes(32), scopes],
        );
      await insert('publisher', ['publish']);
      await insert('reader', ['read']);
      await insert('both', ['read', 'publish']);
      expect((await migrateUp(scratch.db)).error).toBeUndefined();
      const scopes = async () =>
        Object.fromEntries(
          (await scratch.pool.query('SELECT name, scopes FROM gateway_api_keys ORDER BY name')).rows.map(
            (row: { name: string; scopes: string[] }) => [row.name, row.scopes],
          ),
        );
      expect(await scopes()).toEqual({
        both: ['read', 'publish', 'consume'],
        publisher: ['publish', 'consume'],
        reader: ['read'],
      });

      await scratch.pool.query(
        `INSERT INTO gateway_api_keys (name, prefix, key_hash, scopes, topics)
         VALUES ('consumer', 'c', $1, '{consume}', NULL), ('limited', 'l', $2, '{publish}', '{jobs.*}')`,
        [randomBytes(32), randomBytes(32)],
      );
      await expect(
        scratch.pool.query(
          `INSERT INTO gateway_api_keys (name, prefix, key_hash, scopes, topics) VALUES ('x', 'x', $1, '{admin}', '{a}')`,
          [randomBytes(32)],
        ),
      ).rejects.toThrow(/check constraint/);
      while ((await applied()).includes('0009_gateway_key_consume_topics')) await migrateDown(scratch.db);
      expect(await scopes()).toEqual({
        both: ['publish', 'read'],
        consumer: ['publish'],
        publisher: ['publish'],
        reader: ['read'],
      });
    } finally {
      await scratch.drop();
    }
  });
});
