import { readFileSync } from 'node:fs';
import path from 'node:path';
import { collectorEnv } from '@gpu-telemetry/collector/app';
import { gatewayEnv } from '@gpu-telemetry/gateway/app';
import { queueEnv } from '@gpu-telemetry/queue/app';
import { streamerEnv } from '@gpu-telemetry/streamer/app';
import type { z } from 'zod';

/**
 * The charts refuse a duration outside the range its service takes (values.schema.json holds each
 * range as x-min-ms and x-max-ms, which the templates check: deploy/tests/helm.test.ts). Those
 * ranges are written by hand in deploy/tools/schemas.cjs; here they are held to the services' own.
 */
interface DurationProperty {
  pattern?: string;
  'x-min'?: string;
  'x-min-ms'?: number;
  'x-max'?: string;
  'x-max-ms'?: number;
}

const SERVICES: Record<string, z.ZodObject> = {
  gateway: gatewayEnv,
  queue: queueEnv,
  streamer: streamerEnv,
  collector: collectorEnv,
};
const root = path.resolve(__dirname, '../../..');

describe.each(Object.keys(SERVICES))('the %s chart', (chart) => {
  it('gives each duration the range its service takes, no more and no less', () => {
    const schema = JSON.parse(
      readFileSync(path.join(root, 'deploy/helm', chart, 'values.schema.json'), 'utf8'),
    );
    const config = schema.properties.config.properties as Record<string, DurationProperty>;
    const shape = SERVICES[chart]!.shape as Record<string, z.ZodType>;
    const durations = Object.entries(config).filter(([, p]) => p.pattern?.includes('ms|s|m|h|d'));
    expect(durations.length).toBeGreaterThan(0);
    const outOfRange = (name: string, value: string) => {
      const result = shape[name]!.safeParse(value);
      return !result.success && result.error.issues.some((issue) => /must be between/.test(issue.message));
    };
    for (const [name, p] of durations) {
      expect({ name, known: name in shape }).toEqual({ name, known: true });
      const seen = {
        name,
        atMax: p['x-max'] === undefined ? null : outOfRange(name, p['x-max']),
        pastMax: outOfRange(name, p['x-max-ms'] === undefined ? '36500d' : `${p['x-max-ms'] + 1}ms`),
        atMin: p['x-min'] === undefined ? outOfRange(name, '0') : outOfRange(name, p['x-min']),
        belowMin: p['x-min-ms'] === undefined ? null : outOfRange(name, `${p['x-min-ms'] - 1}ms`),
      };
      expect(seen).toEqual({
        name,
        atMax: p['x-max'] === undefined ? null : false,
        pastMax: p['x-max-ms'] !== undefined,
        atMin: false,
        belowMin: p['x-min-ms'] === undefined ? null : true,
      });
    }
  });
});
