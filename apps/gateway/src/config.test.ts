import { ConfigError } from '@gpu-telemetry/config';
import { concurrencyLimits, loadGatewayConfig, longPollLimits } from './config';

const REQUIRED = {
  DATABASE_URL: 'postgres://localhost/x',
  SERVICE_TOKEN: 'a-service-token-of-at-least-32-characters',
};

function problems(env: Record<string, string>): string[] {
  try {
    loadGatewayConfig({ ...REQUIRED, ...env });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('gateway configuration: requests in flight', () => {
  it('gives a client a quarter of GATEWAY_MAX_CONCURRENCY by default, or the share set', () => {
    expect(concurrencyLimits(loadGatewayConfig(REQUIRED))).toEqual({ max: 1024, perClient: 256 });
    expect(concurrencyLimits(loadGatewayConfig({ ...REQUIRED, GATEWAY_MAX_CONCURRENCY: '10' }))).toEqual({
      max: 10,
      perClient: 3,
    });
    expect(concurrencyLimits(loadGatewayConfig({ ...REQUIRED, GATEWAY_MAX_CONCURRENCY: '1' }))).toEqual({
      max: 1,
      perClient: 1,
    });
    const config = loadGatewayConfig({
      ...REQUIRED,
      GATEWAY_MAX_CONCURRENCY: '100',
      GATEWAY_MAX_CONCURRENCY_PER_CLIENT: '100',
    });
    expect(concurrencyLimits(config)).toEqual({ max: 100, perClient: 100 });
  });

  it('refuses to start with a share above the whole, or not a count', () => {
    expect(problems({ GATEWAY_MAX_CONCURRENCY_PER_CLIENT: '-1' })).toEqual([
      'GATEWAY_MAX_CONCURRENCY_PER_CLIENT must be at least 0 (got "-1")',
    ]);
    expect(problems({ GATEWAY_MAX_CONCURRENCY_PER_CLIENT: '1025' })).toEqual([
      'GATEWAY_MAX_CONCURRENCY_PER_CLIENT must be at most GATEWAY_MAX_CONCURRENCY (1024) (got "1025")',
    ]);
    expect(problems({ GATEWAY_MAX_CONCURRENCY: '8', GATEWAY_MAX_CONCURRENCY_PER_CLIENT: '9' })).toEqual([
      'GATEWAY_MAX_CONCURRENCY_PER_CLIENT must be at most GATEWAY_MAX_CONCURRENCY (8) (got "9")',
    ]);
  });
});

describe('gateway configuration: long-polls', () => {
  it('gives long-polls as many slots as GATEWAY_MAX_CONCURRENCY, and a client a quarter of them, by default', () => {
    expect(longPollLimits(loadGatewayConfig(REQUIRED))).toEqual({ max: 1024, perClient: 256 });
    expect(longPollLimits(loadGatewayConfig({ ...REQUIRED, GATEWAY_MAX_CONCURRENCY: '10' }))).toEqual({
      max: 10,
      perClient: 3,
    });
    expect(longPollLimits(loadGatewayConfig({ ...REQUIRED, GATEWAY_MAX_LONG_POLLS: '1' }))).toEqual({
      max: 1,
      perClient: 1,
    });
  });

  it('takes both budgets as set', () => {
    const config = loadGatewayConfig({
      ...REQUIRED,
      GATEWAY_MAX_LONG_POLLS: '5000',
      GATEWAY_MAX_LONG_POLLS_PER_CLIENT: '5000',
    });
    expect(longPollLimits(config)).toEqual({ max: 5000, perClient: 5000 });
  });

  it('refuses to start on bad values, naming each one', () => {
    expect(problems({ GATEWAY_MAX_LONG_POLLS: '-1', GATEWAY_MAX_LONG_POLLS_PER_CLIENT: 'many' })).toEqual([
      'GATEWAY_MAX_LONG_POLLS must be at least 0 (got "-1")',
      'GATEWAY_MAX_LONG_POLLS_PER_CLIENT must be a number (got "many")',
    ]);
    expect(problems({ GATEWAY_MAX_LONG_POLLS: '8', GATEWAY_MAX_LONG_POLLS_PER_CLIENT: '9' })).toEqual([
      'GATEWAY_MAX_LONG_POLLS_PER_CLIENT must be at most GATEWAY_MAX_LONG_POLLS (8) (got "9")',
    ]);
    expect(problems({ GATEWAY_MAX_CONCURRENCY: '8', GATEWAY_MAX_LONG_POLLS_PER_CLIENT: '9' })).toEqual([
      'GATEWAY_MAX_LONG_POLLS_PER_CLIENT must be at most GATEWAY_MAX_LONG_POLLS (8, from GATEWAY_MAX_CONCURRENCY) (got "9")',
    ]);
  });
});
