import { createHash } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { createLogger } from '@gpu-telemetry/service-kit';
import { ApiKeysService } from './api-keys.service';

/**
 * Key checks that leak nothing through timing: the environment's keys are compared as SHA-256
 * digests (always 32 bytes, so neither length nor a matching prefix shortens the comparison) with
 * crypto.timingSafeEqual; stored keys are looked up by digest, never by the key itself.
 */
const ADMIN = 'bootstrap-admin-key-for-unit-tests-0123456789';
const OTLP = 'span-export-key-for-unit-tests-0123456789';
let database: TestDatabase;
let keys: ApiKeysService;

beforeAll(async () => {
  database = await createTestDatabase();
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
