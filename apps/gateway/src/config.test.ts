import { ConfigError } from '@gpu-telemetry/config';
import { loadGatewayConfig, longPollLimits } from './config';

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
