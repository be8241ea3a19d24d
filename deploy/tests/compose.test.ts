import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
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
      expose?: string[];
      user?: string;
      volumes?: string[];
      healthcheck?: { test: string[] };
      depends_on?: Record<string, { condition: string }>;
    }
  >;
  volumes?: Record<string, unknown>;
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
/** The services that present the service token to each other (the simulator is a stand-in exporter). */
const SERVICES = ['gateway', 'queue', 'streamer', 'collector'];
/** The one-shot `secrets` service's script, and the files it writes into the volume `secrets`. */
const generator = compose.services['secrets']?.command?.[2] ?? '';
/** A service's read-only mount of the generated files: the folder they appear in. */
const secretsMount = (name: string) =>
  compose.services[name]?.volumes?.find((v) => /^secrets:[^:]+:ro$/.test(v))?.split(':')[1];
/** Names that hold credentials: they may only name a file (`_FILE`), never carry the value. */
const CREDENTIAL = /KEY|TOKEN|SECRET|PASSWORD|HEADERS/;

describe('docker-compose.yaml', () => {
  it('runs Postgres, a one-shot migration and every service from one image', () => {
    expect(Object.keys(compose.services).sort()).toEqual([
      'collector',
      'gateway',
      'grafana',
      'grafana-key',
      'migrate',
      'postgres',
      'queue',
      'secrets',
      'simulator',
      'streamer',
    ]);
    expect(compose.services['postgres']?.image).toMatch(/^postgres:\d+$/);
    for (const name of ['migrate', ...Object.keys(PORTS)]) {
      expect(compose.services[name]?.image).toBe('gpu-telemetry:local');
      expect(compose.services[name]?.command?.[0]).toBe(name);
    }
  });

  it.each(Object.entries(PORTS))('gives %s a readiness healthcheck on its own port', (name, port) => {
    const service = compose.services[name];
    const probe = service?.healthcheck?.test.join(' ') ?? '';
    expect(probe).toContain(`http://127.0.0.1:${port}/${name === 'simulator' ? 'healthz' : 'readyz'}`);
    if (name !== 'simulator') expect(service?.environment?.['PORT']).toBe(String(port));
  });

  it('publishes the gateway and Grafana only: the backends, Postgres and the simulator answer on the compose network', () => {
    const published = Object.entries(compose.services)
      .filter(([, service]) => service.ports?.length)
      .map(([name, service]) => [name, service.ports]);
    expect(published).toEqual([
      ['gateway', ['8080:8080']],
      ['grafana', ['3000:3000']],
    ]);
    for (const name of ['queue', 'streamer', 'collector', 'simulator'])
      expect(compose.services[name]?.expose).toEqual([String(PORTS[name])]);
  });

  it('starts each service only after what it needs is healthy', () => {
    const conditions = (name: string) =>
      Object.fromEntries(
        Object.entries(compose.services[name]?.depends_on ?? {}).map(([k, v]) => [k, v.condition]),
      );
    const secrets = { secrets: 'service_completed_successfully' };
    expect(conditions('secrets')).toEqual({});
    expect(conditions('migrate')).toEqual({ postgres: 'service_healthy' });
    expect(conditions('queue')).toEqual({ ...secrets, migrate: 'service_completed_successfully' });
    expect(conditions('streamer')).toEqual({ ...secrets, queue: 'service_healthy' });
    expect(conditions('collector')).toEqual({
      ...secrets,
      queue: 'service_healthy',
      simulator: 'service_healthy',
    });
    expect(conditions('gateway')).toEqual({
      ...secrets,
      queue: 'service_healthy',
      streamer: 'service_healthy',
      collector: 'service_healthy',
    });
  });

  it('generates the credentials once into the volume `secrets`, random, readable by the services only', () => {
    const service = compose.services['secrets'];
    expect(service?.image).toBe('gpu-telemetry:local');
    expect(service?.command?.slice(0, 2)).toEqual(['node', '-e']);
    expect(service?.volumes).toEqual(['secrets:/secrets']);
    expect(compose.volumes).toHaveProperty('secrets');
    // A new volume belongs to root: the one-shot writes as root and hands the files to `node`.
    expect(service?.user).toBe('root');
    expect(generator).toContain('randomBytes(32)');
    expect(generator).toContain('fs.chownSync(file(name), 1000, 1000)');
    expect(generator).toContain('mode: 0o400');
    // Written only when absent, so a restart keeps every credential.
    expect(generator).toContain("for (const name of ['service-token', 'admin-key', 'otlp-key'])");
    expect(generator).toContain('if (!fs.existsSync(file(name)))');
    // Compose would interpolate a `$` in the script.
    expect(generator).not.toContain('$');
  });

  it('writes each credential with the script it runs, where the services look for it', () => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'gt-compose-secrets-'));
    try {
      // The script, pointed at a temporary folder; chown needs root, which the test need not be.
      const script = generator
        .replaceAll("'/secrets/'", JSON.stringify(`${folder}/`))
        .replace('fs.chownSync(file(name), 1000, 1000);', '');
      const run = () => execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' });
      run();
      const read = (name: string) => readFileSync(path.join(folder, name), 'utf8');
      const first = Object.fromEntries(
        ['service-token', 'admin-key', 'otlp-key', 'otlp-headers'].map((name) => [name, read(name)]),
      );
      for (const name of ['service-token', 'admin-key', 'otlp-key']) {
        expect(first[name]).toMatch(/^[A-Za-z0-9_-]{43}\n$/);
        expect(statSync(path.join(folder, name)).mode & 0o777).toBe(0o400);
      }
      expect(new Set(Object.values(first)).size).toBe(4);
      expect(first['otlp-headers']).toBe(`authorization=Bearer%20${first['otlp-key']}`);
      chmodSync(path.join(folder, 'otlp-headers'), 0o600); // root, in the container, writes anyway
      run();
      for (const [name, text] of Object.entries(first)) expect(read(name)).toBe(text);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });

  it.each(SERVICES)('gives %s the service token from the generated file, mounted read-only', (name) => {
    const env = compose.services[name]?.environment ?? {};
    const folder = secretsMount(name);
    expect(folder).toBe('/run/secrets');
    expect(env['SERVICE_TOKEN_FILE']).toBe(`${folder}/service-token`);
    expect(env['SERVICE_TOKEN']).toBeUndefined();
    expect(env['OTEL_EXPORTER_OTLP_HEADERS_FILE']).toBe(`${folder}/otlp-headers`);
    expect(env['OTEL_EXPORTER_OTLP_HEADERS']).toBeUndefined();
    expect(compose.services[name]?.depends_on?.['secrets']?.condition).toBe('service_completed_successfully');
  });

  it('gives the gateway its admin and span keys from the generated files; what needs no credential mounts none', () => {
    const env = compose.services['gateway']?.environment ?? {};
    expect(env['GATEWAY_ADMIN_KEY_FILE']).toBe('/run/secrets/admin-key');
    expect(env['GATEWAY_OTLP_KEY_FILE']).toBe('/run/secrets/otlp-key');
    // What needs no credential mounts none.
    for (const name of ['postgres', 'migrate', 'simulator'])
      expect(compose.services[name]?.volumes ?? []).not.toContainEqual(expect.stringMatching(/^secrets:/));
  });

  it('holds no credential itself: only file names, besides the local Postgres password', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const [key, value] of Object.entries(service.environment ?? {})) {
        if (!CREDENTIAL.test(key) || key.endsWith('_FILE')) continue;
        // Postgres is not published; its fixed password opens it to the compose network alone.
        expect(`${name}: ${key}`).toBe('postgres: POSTGRES_PASSWORD');
        expect(value).toBe('gpu_telemetry');
      }
    }
    const text = readFileSync(path.join(root, 'docker-compose.yaml'), 'utf8');
    expect(text).not.toMatch(/change-me|Bearer%20[A-Za-z0-9]/i);
  });

  it('sets only variables that .env.example documents', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      // Their images' own settings.
      if (name === 'postgres' || name === 'grafana') continue;
      for (const key of Object.keys(service.environment ?? {})) {
        expect(documentedIn(name, key)).toBe(`${name}: ${key} documented`);
      }
    }
  });
  it('runs Grafana on the gateway PromQL API, provisioned from deploy/grafana, with a read key it never sees made', () => {
    const grafana = compose.services['grafana'];
    expect(grafana?.image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
    expect(grafana?.environment).toMatchObject({
      GPU_TELEMETRY_URL: 'http://gateway:8080',
      GF_SECURITY_ADMIN_PASSWORD__FILE: '/run/secrets/grafana-admin-password',
    });
    expect(grafana?.volumes).toEqual(
      expect.arrayContaining([
        './deploy/grafana/provisioning:/etc/grafana/provisioning:ro',
        './deploy/grafana/dashboards:/var/lib/grafana/dashboards/gpu-telemetry:ro',
        'secrets:/run/secrets:ro',
      ]),
    );
    for (const mounted of ['deploy/grafana/provisioning/datasources', 'deploy/grafana/dashboards'])
      expect(readdirSync(path.join(root, mounted)).length).toBeGreaterThan(0);
    const datasource = readFileSync(
      path.join(root, 'deploy/grafana/provisioning/datasources/gpu-telemetry.yaml'),
      'utf8',
    );
    expect(datasource).toContain('Bearer $__file{/run/secrets/grafana-key}');
    expect(grafana?.depends_on?.['grafana-key']?.condition).toBe('service_completed_successfully');
    // The key: made by a one-shot once the gateway is up, with the read scope only, kept across
    // restarts while it still works, written for Grafana's user (472) alone.
    const maker = compose.services['grafana-key'];
    const script = maker?.command?.[2] ?? '';
    expect(maker?.depends_on?.['gateway']?.condition).toBe('service_healthy');
    expect(maker?.volumes).toEqual(['secrets:/secrets']);
    expect(script).toContain("JSON.stringify({ name: 'grafana', scopes: ['read'] })");
    expect(script).toContain("write('grafana-key', (await res.json()).key)");
    expect(script).toContain('if (res.status !== 401) return;');
    expect(script).toContain('fs.chownSync(file(name), 472, 0)');
    expect(script).toContain('mode: 0o400');
    expect(script).not.toContain('$');
    expect(() => new Function(script)).not.toThrow();
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
    expect(entrypoint).toContain('exec node "$app/libs/dcgm-simulator/dist/main.js"');
  });

  it('exports OTEL_EXPORTER_OTLP_HEADERS from OTEL_EXPORTER_OTLP_HEADERS_FILE, whose name it drops', () => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'gt-entrypoint-'));
    try {
      const headers = path.join(folder, 'otlp-headers');
      writeFileSync(headers, 'authorization=Bearer%20abc\n');
      const show = (env: Record<string, string>) =>
        spawnSync(
          'sh',
          [
            path.join(root, 'deploy/docker/entrypoint.sh'),
            'node',
            '-p',
            '[process.env.OTEL_EXPORTER_OTLP_HEADERS, process.env.OTEL_EXPORTER_OTLP_HEADERS_FILE]',
          ],
          { env: { PATH: process.env['PATH'] ?? '', ...env }, encoding: 'utf8' },
        );
      const fromFile = show({ OTEL_EXPORTER_OTLP_HEADERS_FILE: headers });
      expect(fromFile.stdout.trim()).toBe("[ 'authorization=Bearer%20abc', undefined ]");
      const both = show({ OTEL_EXPORTER_OTLP_HEADERS_FILE: headers, OTEL_EXPORTER_OTLP_HEADERS: 'x=y' });
      expect(both.status).toBe(2);
      expect(both.stderr).toContain('both set');
      const missing = show({ OTEL_EXPORTER_OTLP_HEADERS_FILE: path.join(folder, 'absent') });
      expect(missing.status).not.toBe(0);
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
