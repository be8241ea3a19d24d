import { readFileSync } from 'node:fs';
import path from 'node:path';
import { validate } from 'dockerfile-utils';
import { parse } from 'yaml';
import { documentedIn } from './support/env-example';

/** docker-compose.yaml and the Dockerfile, checked for what a user relies on (no Docker engine needed). */
const root = path.resolve(__dirname, '../..');
const compose = parse(readFileSync(path.join(root, 'docker-compose.yaml'), 'utf8'), { merge: true }) as {
  services: Record<
    string,
    {
      image?: string;
      command?: string[];
      environment?: Record<string, string>;
      ports?: string[];
      healthcheck?: { test: string[] };
      depends_on?: Record<string, { condition: string }>;
    }
  >;
};
const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
const entrypoint = readFileSync(path.join(root, 'deploy/docker/entrypoint.sh'), 'utf8');
const PORTS: Record<string, number> = {
  gateway: 8080,
  queue: 8081,
  streamer: 8082,
  collector: 8083,
  simulator: 9400,
};

describe('docker-compose.yaml', () => {
  it('runs Postgres, a one-shot migration and every service from one image', () => {
    expect(Object.keys(compose.services).sort()).toEqual([
      'collector',
      'gateway',
      'migrate',
      'postgres',
      'queue',
      'simulator',
      'streamer',
    ]);
    expect(compose.services['postgres']?.image).toMatch(/^postgres:\d+$/);
    for (const name of ['migrate', ...Object.keys(PORTS)]) {
      expect(compose.services[name]?.image).toBe('gpu-telemetry:local');
      expect(compose.services[name]?.command?.[0]).toBe(name);
    }
  });

  it.each(Object.entries(PORTS))(
    'gives %s a readiness healthcheck on its own port, which it publishes',
    (name, port) => {
      const service = compose.services[name];
      const probe = service?.healthcheck?.test.join(' ') ?? '';
      expect(probe).toContain(`http://127.0.0.1:${port}/${name === 'simulator' ? 'healthz' : 'readyz'}`);
      expect(service?.ports).toContain(`${port}:${port}`);
      if (name !== 'simulator') expect(service?.environment?.['PORT']).toBe(String(port));
    },
  );

  it('starts each service only after what it needs is healthy', () => {
    const conditions = (name: string) =>
      Object.fromEntries(
        Object.entries(compose.services[name]?.depends_on ?? {}).map(([k, v]) => [k, v.condition]),
      );
    expect(conditions('migrate')).toEqual({ postgres: 'service_healthy' });
    expect(conditions('queue')).toEqual({ migrate: 'service_completed_successfully' });
    expect(conditions('streamer')).toEqual({ queue: 'service_healthy' });
    expect(conditions('collector')).toEqual({ queue: 'service_healthy', simulator: 'service_healthy' });
    expect(conditions('gateway')).toEqual({
      queue: 'service_healthy',
      streamer: 'service_healthy',
      collector: 'service_healthy',
    });
  });

  it('sets only variables that .env.example documents', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (name === 'postgres') continue;
      for (const key of Object.keys(service.environment ?? {})) {
        expect(documentedIn(name, key)).toBe(`${name}: ${key} documented`);
      }
    }
  });
});

describe('Dockerfile', () => {
  it('passes the Dockerfile linter (dockerfile-utils, the checks of the VS Code Docker extension)', () => {
    const problems = validate(dockerfile, {
      deprecatedMaintainer: 1,
      directiveCasing: 1,
      emptyContinuationLine: 1,
      instructionCasing: 1,
      instructionCmdMultiple: 1,
      instructionEntrypointMultiple: 1,
      instructionHealthcheckMultiple: 1,
      instructionJSONInSingleQuotes: 1,
      instructionWorkdirRelative: 1,
    });
    expect(problems.map((p) => `line ${p.range.start.line + 1}: ${p.message}`)).toEqual([]);
    // Base images pinned to a Node major (no implicit latest).
    for (const from of dockerfile.match(/^FROM \S+/gm) ?? [])
      expect(from).toMatch(/^FROM node:\$\{NODE_VERSION\}-bookworm-slim$/);
    expect(dockerfile).toMatch(/^ARG NODE_VERSION=20(\.\d+)*$/m);
  });

  it('is multi-stage, ships production dependencies only, runs as non-root, and leaves health to the orchestrator', () => {
    expect(dockerfile.match(/^FROM /gm)?.length).toBeGreaterThanOrEqual(3);
    expect(dockerfile).toContain('npm ci --omit=dev');
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).not.toMatch(/^HEALTHCHECK/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["\/usr\/local\/bin\/gpu-telemetry"\]$/m);
  });

  it('execs each service so node is PID 1 and gets SIGTERM', () => {
    expect(entrypoint).toMatch(
      /exec node --enable-source-maps --import "\/app\/apps\/\$service\/dist\/instrumentation.js"/,
    );
    expect(entrypoint).toContain('exec node /app/libs/db/dist/bin/migrate.js');
    expect(entrypoint).toContain('exec node /app/apps/collector/dist/simulator/main.js');
  });
});
