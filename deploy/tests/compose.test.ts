import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { validate } from 'dockerfile-utils';
import { parse } from 'yaml';
import { imageNodeVersion } from '../tools/image-node.cjs';
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
const assembler = readFileSync(path.join(root, 'deploy/docker/assemble.mjs'), 'utf8');
/** The Dockerfile's instructions per stage, continuation lines joined, comments dropped. */
const stages = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .filter((line) => line.trim() && !line.startsWith('#'))
  .reduce<string[][]>((all, line) => {
    if (line.startsWith('FROM ')) all.push([]);
    all.at(-1)?.push(line);
    return all;
  }, []);
const finalStage = stages.at(-1) ?? [];
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
    // Base images pinned to one Node release (no implicit latest).
    for (const from of dockerfile.match(/^FROM \S+/gm) ?? [])
      expect(from).toMatch(/^FROM node:\$\{NODE_VERSION\}-bookworm-slim$/);
  });

  it('pins the Node release the boot test runs the assembled tree under, an LTS line', () => {
    const version = imageNodeVersion();
    expect(dockerfile).toMatch(new RegExp(`^ARG NODE_VERSION=${version.replace(/\./g, '\\.')}$`, 'm'));
    expect(Number(version.split('.')[0]) % 2).toBe(0);
  });

  it('ships what the assembler assembles and nothing else: its final stage is the /out of the build stage', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages[0]).toContain('RUN node deploy/docker/assemble.mjs /out');
    expect(finalStage.filter((line) => /^(COPY|ADD|RUN) /.test(line))).toEqual([
      'COPY --from=build /out /app',
    ]);
    expect(assembler).toContain("'--omit=dev'");
    expect(finalStage).toContain('USER node');
    expect(dockerfile).not.toMatch(/^HEALTHCHECK/m);
    expect(finalStage).toContain('ENTRYPOINT ["/app/bin/gpu-telemetry"]');
  });

  it("copies every workspace's manifest before npm ci in the build stage", () => {
    const workspaces = (
      JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { workspaces: string[] }
    ).workspaces.flatMap((pattern) => {
      const parent = pattern.replace(/\/\*$/, '');
      return readdirSync(path.join(root, parent))
        .filter((name) => existsSync(path.join(root, parent, name, 'package.json')))
        .map((name) => `${parent}/${name}`);
    });
    const npmCi = stages[0]?.findIndex((line) => line.startsWith('RUN npm ci')) ?? -1;
    expect(npmCi).toBeGreaterThan(0);
    for (const folder of workspaces)
      expect(stages[0]?.slice(0, npmCi)).toContain(`COPY ${folder}/package.json ${folder}/`);
  });

  it('execs each service so node is PID 1 and gets SIGTERM', () => {
    expect(entrypoint).toContain(
      'exec node --enable-source-maps --import "$app/apps/$service/dist/instrumentation.js" "$app/apps/$service/dist/main.js"',
    );
    expect(entrypoint).toContain('exec node "$app/libs/db/dist/bin/migrate.js"');
    expect(entrypoint).toContain('exec node "$app/apps/collector/dist/simulator/main.js"');
  });
});
