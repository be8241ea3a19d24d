import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { copyCharts } from './support/chart-copy';
import { helm } from '../tools/helm.cjs';

/**
 * The queue chart's memory limit holds what publishes may take: QUEUE_PUBLISH_MEMORY of bodies at
 * once (never below QUEUE_BODY_LIMIT), each up to three times its size while stored, beside the
 * service's own 192Mi. A values file that breaks this fails to render, naming the limit.
 */
let helmDir: string;

beforeAll(() => {
  helmDir = copyCharts('gt-queue-memory-');
}, 120_000);

afterAll(() => rmSync(helmDir, { recursive: true, force: true }));

function template(chart: string, values: unknown) {
  const file = path.join(helmDir, `values-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(values));
  return helm(['template', 'gt', path.join(helmDir, chart), '--namespace', 'telemetry', '-f', file]);
}

/** The queue container of a render that succeeded. */
function queueContainer(chart: string, values: unknown) {
  const result = template(chart, values);
  if (result.status !== 0) throw new Error(`helm template ${chart} failed:\n${result.stderr}`);
  const deployment = parseAllDocuments(result.stdout)
    .map((doc) => doc.toJS())
    .find((m) => m?.kind === 'Deployment' && m.metadata.name === 'gt-queue');
  return deployment.spec.template.spec.containers[0] as {
    env: { name: string; value?: string }[];
    resources: { limits: { memory: string } };
  };
}

describe('the queue chart and QUEUE_PUBLISH_MEMORY', () => {
  it('renders its defaults: 512Mi holds 3 x 64Mi of publish bodies and the service', () => {
    const container = queueContainer('queue', {});
    expect(container.resources.limits.memory).toBe('512Mi');
    expect(container.env.find((e) => e.name === 'QUEUE_PUBLISH_MEMORY')).toBeUndefined();
  });

  it('passes QUEUE_PUBLISH_MEMORY on when the limit holds it', () => {
    const container = queueContainer('queue', {
      config: { QUEUE_PUBLISH_MEMORY: '256mb' },
      resources: { limits: { memory: '1Gi' } },
    });
    expect(container.env).toContainEqual({ name: 'QUEUE_PUBLISH_MEMORY', value: '256mb' });
    // Through the release chart too.
    const released = queueContainer('gpu-telemetry', {
      queue: { config: { QUEUE_PUBLISH_MEMORY: '128mb' }, resources: { limits: { memory: '576Mi' } } },
    });
    expect(released.env).toContainEqual({ name: 'QUEUE_PUBLISH_MEMORY', value: '128mb' });
  });

  it('refuses a budget under 1mb, which the queue would refuse at startup', () => {
    for (const [value, shown] of [
      ['512kb', '512kb'],
      [1_048_575, '1048575'],
    ] as const) {
      const result = template('gpu-telemetry', { queue: { config: { QUEUE_PUBLISH_MEMORY: value } } });
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain(`config.QUEUE_PUBLISH_MEMORY: ${shown} is below 1mb`);
    }
    expect(queueContainer('queue', { config: { QUEUE_PUBLISH_MEMORY: '1mb' } }).env).toContainEqual({
      name: 'QUEUE_PUBLISH_MEMORY',
      value: '1mb',
    });
  });

  it.each([
    [
      'a budget the default limit cannot hold',
      'queue',
      { config: { QUEUE_PUBLISH_MEMORY: '256mb' } },
      '960Mi',
    ],
    [
      'a body limit over the budget (the budget is never below it)',
      'queue',
      { config: { QUEUE_BODY_LIMIT: 134_217_728 } },
      '576Mi',
    ],
    ['a limit 1Mi short of the defaults', 'queue', { resources: { limits: { memory: '383Mi' } } }, '384Mi'],
    [
      'the same through the release chart',
      'gpu-telemetry',
      { queue: { config: { QUEUE_PUBLISH_MEMORY: '1gb' } } },
      '3264Mi',
    ],
  ])('refuses %s, naming the limit and what it needs', (_what, chart, values, needs) => {
    const result = template(chart, values);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('resources.limits.memory');
    expect(result.stderr).toContain(`= ${needs}; raise the limit to that or lower QUEUE_PUBLISH_MEMORY`);
  });
});
