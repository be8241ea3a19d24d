import { readFileSync } from 'node:fs';
import path from 'node:path';
import { collectorEnv } from '@gpu-telemetry/collector/app';
import { gatewayEnv } from '@gpu-telemetry/gateway/app';
import { queueEnv } from '@gpu-telemetry/queue/app';
import { streamerEnv } from '@gpu-telemetry/streamer/app';
import type { z } from 'zod';

/**
 * The charts refuse a duration its service would refuse: outside its range (values.schema.json
 * holds each range as x-min-ms and x-max-ms) or against a rule between variables
 * (duration-rules.json: step, divides, atMost), both checked by the templates
 * (deploy/tests/helm.test.ts). They are written by hand in deploy/tools/schemas.cjs; here they are
 * held to the services' own configuration.
 */
interface DurationRule {
  minMs?: number;
  maxMs?: number;
  stepMs?: number;
  divides?: string;
  dividesMs?: number;
  atMost?: string;
  defaultMs?: number;
}

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
      return (
        !result.success && result.error.issues.some((issue) => /must be (0 or )?between/.test(issue.message))
      );
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

describe.each(Object.keys(SERVICES))('the %s chart', (chart) => {
  const rules = JSON.parse(
    readFileSync(path.join(root, 'deploy/helm', chart, 'duration-rules.json'), 'utf8'),
  ) as Record<string, DurationRule>;
  const base = { DATABASE_URL: 'postgres://localhost/telemetry', SERVICE_TOKEN: 'x'.repeat(32) };
  /** What the service says of `name` given `env`: refused (an issue on it) or taken (no issue at all). */
  const said = (name: string, env: Record<string, string>) => {
    const result = SERVICES[chart]!.safeParse({ ...base, ...env });
    if (result.success) return 'taken';
    return result.error.issues.some((issue) => issue.path[0] === name)
      ? 'refused'
      : `other issues: ${result.error.message}`;
  };
  const ms = (value: number) => `${value}ms`;
  const inRange = (rule: DurationRule, value: number) =>
    value >= (rule.minMs ?? 1) && value <= (rule.maxMs ?? Infinity);

  it('has the rules between durations its service has', () => {
    const ruled = Object.entries(rules).filter(([, r]) => r.stepMs || r.divides || r.atMost);
    if (chart === 'streamer' || chart === 'collector') expect(ruled.length).toBeGreaterThan(0);
    for (const [name, rule] of ruled) {
      const seen: Record<string, string> = {};
      const expected: Record<string, string> = {};
      const unit = rule.stepMs ?? 1_000;
      if (rule.stepMs) {
        seen['a step and a half'] = said(name, { [name]: ms(rule.stepMs * 1.5) });
        expected['a step and a half'] = 'refused';
      }
      if (rule.divides) {
        const target = rule.dividesMs ?? rules[rule.divides]?.defaultMs;
        expect({ name, target }).toEqual({ name, target: expect.any(Number) });
        const candidates = Array.from({ length: 60 }, (_, k) => (k + 1) * unit).filter((v) =>
          inRange(rule, v),
        );
        const divisor = candidates.find((v) => target! % v === 0)!;
        const other = candidates.find((v) => target! % v !== 0)!;
        seen['a divisor'] = said(name, { [name]: ms(divisor) });
        seen['not a divisor'] = said(name, { [name]: ms(other) });
        Object.assign(expected, { 'a divisor': 'taken', 'not a divisor': 'refused' });
        if (inRange(rule, 2 * target!)) {
          seen['twice'] = said(name, { [name]: ms(2 * target!) });
          expected['twice'] = 'refused';
        }
      }
      if (rule.atMost) {
        const other = rules[rule.atMost]?.defaultMs;
        expect({ name, other }).toEqual({ name, other: expect.any(Number) });
        seen['as long'] = said(name, { [name]: ms(other!) });
        seen['longer'] = said(name, { [name]: ms(other! + unit) });
        seen['longer than a shorter other'] = said(name, {
          [rule.atMost]: ms(other! / 2),
          [name]: ms(other!),
        });
        Object.assign(expected, {
          'as long': 'taken',
          longer: 'refused',
          'longer than a shorter other': 'refused',
        });
      }
      expect({ name, ...seen }).toEqual({ name, ...expected });
    }
  });

  it('gives every variable a rule names the default its service has', () => {
    const shape = SERVICES[chart]!.shape as Record<string, z.ZodType>;
    for (const [name, rule] of Object.entries(rules)) {
      for (const other of [rule.atMost, rule.dividesMs === undefined ? rule.divides : undefined]) {
        if (other === undefined) continue;
        expect({ name, other, default: rules[other]?.defaultMs }).toEqual({
          name,
          other,
          default: shape[other]!.parse(undefined),
        });
      }
    }
  });
});
