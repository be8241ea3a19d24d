import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { bytes, duration, flag, int, list, parseDuration, serviceEnv } from './env-types';
import { ConfigError, loadConfig, readSetting } from './load-config';

const schema = z.object({
  ...serviceEnv(8081),
  INTERVAL: duration('30s', { min: '1s' }),
  TARGETS: list(),
  ENABLED: flag(true),
  SIZE: bytes('256kb'),
  WORKERS: int(4, 1, 64),
});

const TOKEN = 'a-service-token-of-at-least-32-characters';

describe('loadConfig', () => {
  it('applies defaults and parses durations, sizes, lists and flags', () => {
    const config = loadConfig(schema, {
      DATABASE_URL: 'postgres://u:p@db:5432/x',
      SERVICE_TOKEN: TOKEN,
      TARGETS: 'http://a:9400/metrics, ,http://b:9400/metrics',
    });
    expect(config).toMatchObject({
      PORT: 8081,
      LOG_LEVEL: 'info',
      INTERVAL: 30_000,
      TARGETS: ['http://a:9400/metrics', 'http://b:9400/metrics'],
      ENABLED: true,
      SIZE: 262_144,
      WORKERS: 4,
      SHUTDOWN_TIMEOUT: 10_000,
    });
  });

  it('treats empty values as unset, so FOO= in a .env file falls back to the default', () => {
    expect(
      loadConfig(schema, { DATABASE_URL: 'postgres://x/y', SERVICE_TOKEN: TOKEN, PORT: '', INTERVAL: ' ' })
        .PORT,
    ).toBe(8081);
  });

  it('fails with one error that lists every bad variable', () => {
    let error: unknown;
    try {
      loadConfig(schema, {
        PORT: '70000',
        LOG_LEVEL: 'loud',
        INTERVAL: '30',
        ENABLED: 'maybe',
        SIZE: 'huge',
        WORKERS: 'two',
      });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect((error as ConfigError).problems).toHaveLength(8);
    expect(message).toContain('DATABASE_URL is required');
    expect(message).toContain('SERVICE_TOKEN is required');
    expect(message).toContain('PORT must be at most 65535 (got "70000")');
    expect(message).toContain('LOG_LEVEL must be one of');
    expect(message).toContain('INTERVAL must be a duration such as 500ms, 30s, 5m, 1h or 7d (got "30")');
    expect(message).toContain('ENABLED must be true or false');
    expect(message).toContain('SIZE must be a size');
    expect(message).toContain('WORKERS must be a number');
  });

  it('rejects durations outside their bounds and never prints a password or key', () => {
    expect(() =>
      loadConfig(schema, { DATABASE_URL: 'postgres://x/y', SERVICE_TOKEN: TOKEN, INTERVAL: '10ms' }),
    ).toThrow(/INTERVAL must be between 1s and unbounded/);
    const bad = z.object({ DATABASE_URL: serviceEnv(1).DATABASE_URL, ADMIN_KEY: z.string().min(32) });
    try {
      loadConfig(bad, { DATABASE_URL: 'mysql://root:hunter2@db/x', ADMIN_KEY: 'short-secret' });
      throw new Error('expected a ConfigError');
    } catch (error) {
      expect(String(error)).not.toContain('hunter2');
      expect(String(error)).not.toContain('short-secret');
      expect(String(error)).toContain('mysql://root:***@db/x');
    }
  });
});

describe('SERVICE_TOKEN', () => {
  const base = { DATABASE_URL: 'postgres://x/y' };

  it('refuses a short token or one with whitespace, without printing it', () => {
    for (const token of ['short-token', `${TOKEN} with spaces`]) {
      try {
        loadConfig(schema, { ...base, SERVICE_TOKEN: token });
        throw new Error('expected a ConfigError');
      } catch (error) {
        expect(String(error)).toMatch(
          /SERVICE_TOKEN must (be at least 32 characters|not contain whitespace) \(got \(hidden\)\)/,
        );
        expect(String(error)).not.toContain(token);
      }
    }
  });

  it('accepts a previous token for rotation, held to the same rules', () => {
    const config = loadConfig(schema, {
      ...base,
      SERVICE_TOKEN: TOKEN,
      SERVICE_TOKEN_PREVIOUS: `${TOKEN}-old`,
    });
    expect(config.SERVICE_TOKEN_PREVIOUS).toBe(`${TOKEN}-old`);
    expect(() => loadConfig(schema, { ...base, SERVICE_TOKEN: TOKEN, SERVICE_TOKEN_PREVIOUS: 'x' })).toThrow(
      /SERVICE_TOKEN_PREVIOUS must be at least 32 characters/,
    );
  });
});

describe('<NAME>_FILE', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'config-file-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a variable from the file it names, without the trailing newline', () => {
    const file = path.join(dir, 'token');
    writeFileSync(file, `${TOKEN}\n`);
    expect(
      loadConfig(schema, { ...{ DATABASE_URL: 'postgres://x/y' }, SERVICE_TOKEN_FILE: file }).SERVICE_TOKEN,
    ).toBe(TOKEN);
  });

  it('reads files for a schema with refinements too (the gateway refines its keys)', () => {
    const file = path.join(dir, 'token-refined');
    writeFileSync(file, TOKEN);
    const refined = schema.superRefine((env, ctx) => {
      if (env.WORKERS > 8) ctx.addIssue({ code: 'custom', path: ['WORKERS'], message: 'is too many' });
    });
    expect(
      loadConfig(refined, { DATABASE_URL: 'postgres://x/y', SERVICE_TOKEN_FILE: file }).SERVICE_TOKEN,
    ).toBe(TOKEN);
  });

  it('says which file cannot be read, and refuses a variable set both ways', () => {
    const missing = path.join(dir, 'nope');
    expect(() => loadConfig(schema, { DATABASE_URL: 'postgres://x/y', SERVICE_TOKEN_FILE: missing })).toThrow(
      `SERVICE_TOKEN_FILE cannot be read (ENOENT: ${missing})`,
    );
    let error: unknown;
    try {
      loadConfig(schema, { DATABASE_URL: 'postgres://x/y', SERVICE_TOKEN_FILE: missing });
    } catch (caught) {
      error = caught;
    }
    expect((error as ConfigError).problems).toEqual([
      `SERVICE_TOKEN_FILE cannot be read (ENOENT: ${missing})`,
    ]);
    expect(() =>
      loadConfig(schema, {
        DATABASE_URL: 'postgres://x/y',
        SERVICE_TOKEN: TOKEN,
        SERVICE_TOKEN_FILE: missing,
      }),
    ).toThrow('SERVICE_TOKEN and SERVICE_TOKEN_FILE are both set; set one');
  });
});

describe('readSetting', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'config-setting-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads one variable, or the file its _FILE twin names, as loadConfig does', () => {
    const file = path.join(dir, 'url');
    writeFileSync(file, 'postgres://u:p@db/x\r\n');
    expect(readSetting('DATABASE_URL', { DATABASE_URL: 'postgres://db/x' })).toBe('postgres://db/x');
    expect(readSetting('DATABASE_URL', { DATABASE_URL_FILE: file })).toBe('postgres://u:p@db/x');
    expect(readSetting('DATABASE_URL', { DATABASE_URL: ' ', DATABASE_URL_FILE: file })).toBe(
      'postgres://u:p@db/x',
    );
    expect(readSetting('DATABASE_URL', { DATABASE_URL: '', DATABASE_URL_FILE: '' })).toBeUndefined();
  });

  it("fails with loadConfig's words when both are set or the file cannot be read", () => {
    const missing = path.join(dir, 'nope');
    const problems = (env: Record<string, string>) => {
      try {
        readSetting('DATABASE_URL', env);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        return (error as ConfigError).problems;
      }
      throw new Error('expected a ConfigError');
    };
    expect(problems({ DATABASE_URL: 'postgres://db/x', DATABASE_URL_FILE: missing })).toEqual([
      'DATABASE_URL and DATABASE_URL_FILE are both set; set one',
    ]);
    expect(problems({ DATABASE_URL_FILE: missing })).toEqual([
      `DATABASE_URL_FILE cannot be read (ENOENT: ${missing})`,
    ]);
  });
});

describe('parseDuration', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['1.5s', 1_500],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['7d', 604_800_000],
    ['0', 0],
  ])('reads %s as %i ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '30', 's', '-1s', '1w', '1 h'])('refuses %p', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});
