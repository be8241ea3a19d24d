import { ConfigError } from '@gpu-telemetry/config';
import { loadQueueConfig } from './config';

describe('queue configuration', () => {
  it('needs only DATABASE_URL and SERVICE_TOKEN, and documents sensible defaults', () => {
    expect(
      loadQueueConfig({
        DATABASE_URL: 'postgres://localhost/x',
        SERVICE_TOKEN: 'a-service-token-of-at-least-32-characters',
      }),
    ).toMatchObject({
      PORT: 8081,
      QUEUE_MAX_ATTEMPTS: 5,
      QUEUE_MAX_PAYLOAD: 262_144,
      QUEUE_BODY_LIMIT: 33_554_432,
      QUEUE_RESPONSE_LIMIT: 4_194_304,
      QUEUE_PUBLISH_MEMORY: 67_108_864,
      QUEUE_FALLBACK_POLL: 5_000,
    });
  });

  it('takes QUEUE_PUBLISH_MEMORY as a size of at least 1mb', () => {
    const base = {
      DATABASE_URL: 'postgres://localhost/x',
      SERVICE_TOKEN: 'a-service-token-of-at-least-32-characters',
    };
    expect(loadQueueConfig({ ...base, QUEUE_PUBLISH_MEMORY: '256mb' }).QUEUE_PUBLISH_MEMORY).toBe(
      268_435_456,
    );
    for (const [value, problem] of [
      ['lots', 'must be a size such as 256kb, 16mb or a number of bytes'],
      ['512kb', 'must be at least 1mb'],
    ]) {
      try {
        loadQueueConfig({ ...base, QUEUE_PUBLISH_MEMORY: value });
        throw new Error(`${value} was taken`);
      } catch (error) {
        expect((error as ConfigError).problems).toEqual([`QUEUE_PUBLISH_MEMORY ${problem} (got "${value}")`]);
      }
    }
  });

  it('refuses to start on bad values, naming each one', () => {
    expect(() => loadQueueConfig({ QUEUE_MAX_ATTEMPTS: '0', QUEUE_FALLBACK_POLL: 'often' })).toThrow(
      ConfigError,
    );
    try {
      loadQueueConfig({ QUEUE_MAX_ATTEMPTS: '0', QUEUE_FALLBACK_POLL: 'often' });
    } catch (error) {
      expect((error as ConfigError).problems).toEqual([
        'DATABASE_URL is required',
        'SERVICE_TOKEN is required',
        'QUEUE_MAX_ATTEMPTS must be at least 1 (got "0")',
        'QUEUE_FALLBACK_POLL must be a duration such as 500ms, 30s, 5m, 1h or 7d (got "often")',
      ]);
    }
  });
});
