import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createEmptyTestDatabase, type TestDatabase } from '@gpu-telemetry/db/testing';
import { freePort, type ManagedProcess, startProcess } from '@gpu-telemetry/harness';
import { ensureImageNode, imageNodeSupported, imageNodeVersion } from '../tools/image-node.cjs';

/**
 * The image, booted without a Docker engine: deploy/docker/assemble.mjs (the script the
 * Dockerfile's build stage runs) assembles the tree into a folder outside the checkout, and
 * everything below runs from that folder alone, through its entrypoint, under the Node release
 * the image ships, with none of this process's environment: `migrate up` on an empty database,
 * then the simulator and the four services until ready and passing samples along, then SIGTERM.
 */
const root = path.resolve(__dirname, '../..');
const MIGRATIONS = readdirSync(path.join(root, 'migrations'))
  .filter((file) => file.endsWith('.sql'))
  .map((file) => file.replace(/\.sql$/, ''))
  .sort();
const SERVICE_TOKEN = randomBytes(32).toString('base64url');
const ADMIN_KEY = `gt_boot_${randomBytes(24).toString('base64url')}`;
const SIM_HOSTS = 2;
const SIM_GPUS_PER_HOST = 2;

let tree: string;
let node: string;
let env: Record<string, string>;
let database: TestDatabase;
const running = new Map<string, ManagedProcess>();
const urls: Record<string, string> = {};

/** `bin/gpu-telemetry <args>` of the tree, run to completion. */
function entrypoint(args: string[], extra: Record<string, string> = {}) {
  return spawnSync(path.join(tree, 'bin/gpu-telemetry'), args, {
    cwd: tree,
    env: { ...env, ...extra },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

/** `bin/gpu-telemetry <name>` of the tree, left running; its output is kept for failure messages. */
function start(name: string, extra: Record<string, string>): void {
  running.set(
    name,
    startProcess({
      name,
      command: path.join(tree, 'bin/gpu-telemetry'),
      args: [name],
      cwd: tree,
      env: { ...env, ...extra },
      stdout: 'keep',
      stderr: 'keep',
    }),
  );
}

/** Waits until url answers 200; fails at once, with its output, if the process exits first. */
async function until200(name: string, url: string): Promise<void> {
  const service = running.get(name);
  if (!service) throw new Error(`${name} was not started`);
  await service.waitForUrl(url, { timeoutMs: 60_000, intervalMs: 200 });
}

/** SIGTERM, then the exit it made (a process still running after 30 s is killed, and says so). */
async function stop(name: string) {
  const service = running.get(name);
  if (!service) throw new Error(`${name} was not started`);
  const result = await service.stop({ graceMs: 30_000 });
  return { name, ...result, ...(result.code === 0 ? {} : { output: service.output() }) };
}

const describeWhereTheImageNodeRuns = imageNodeSupported() ? describe : describe.skip;

describeWhereTheImageNodeRuns('the image', () => {
  beforeAll(async () => {
    node = ensureImageNode();
    tree = mkdtempSync(path.join(tmpdir(), 'gpu-telemetry-image-'));
    const assembled = spawnSync(process.execPath, [path.join(root, 'deploy/docker/assemble.mjs'), tree], {
      cwd: root,
      encoding: 'utf8',
    });
    if (assembled.status !== 0)
      throw new Error(`assemble.mjs failed:\n${assembled.stdout}${assembled.stderr}`);
    // What a container has: its own PATH (with the image's node first) and NODE_ENV, nothing else
    // of ours (no NODE_PATH, no NODE_OPTIONS, no npm_config_*).
    env = {
      PATH: `${path.dirname(node)}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      NODE_ENV: 'production',
    };
    database = await createEmptyTestDatabase({ max: 1 });
  }, 300_000);

  afterAll(async () => {
    await Promise.all([...running.values()].map((service) => service.kill()));
    await database?.drop();
    if (tree) rmSync(tree, { recursive: true, force: true });
  });

  it('is assembled outside the checkout, where no node_modules above it can stand in for a missing package', () => {
    expect(path.relative(root, tree).startsWith('..')).toBe(true);
    for (let dir = path.dirname(tree); ; dir = path.dirname(dir)) {
      expect(existsSync(path.join(dir, 'node_modules')) && dir).toBe(false);
      if (dir === path.dirname(dir)) break;
    }
    // A development dependency is not there to be found from the services' code.
    const resolved = spawnSync(node, ['-e', "require.resolve('typescript')"], {
      cwd: path.join(tree, 'apps/gateway/dist'),
      env,
      encoding: 'utf8',
    });
    expect(resolved.stderr).toContain("Cannot find module 'typescript'");
  });

  it("runs the Node release that the Dockerfile's NODE_VERSION pins", () => {
    const version = entrypoint(['node', '--version']);
    expect(version.stdout.trim()).toBe(`v${imageNodeVersion()}`);
  });

  it('applies every migration to an empty database with `migrate` through the entrypoint, once', () => {
    const first = entrypoint(['migrate'], { DATABASE_URL: database.url });
    expect({ status: first.status, stderr: first.stderr }).toEqual({ status: 0, stderr: '' });
    expect(first.stdout.trim().split('\n')).toEqual(MIGRATIONS.map((name) => `applied ${name}`));
    // The URL from a mounted secret, as the chart's hook job may read it (DATABASE_URL_FILE).
    const secret = path.join(mkdtempSync(path.join(tmpdir(), 'gt-secret-')), 'database-url');
    writeFileSync(secret, `${database.url}\n`, { mode: 0o600 });
    const again = entrypoint(['migrate', 'up'], { DATABASE_URL_FILE: secret });
    expect({ status: again.status, stdout: again.stdout.trim() }).toEqual({
      status: 0,
      stdout: 'already up to date',
    });
    rmSync(path.dirname(secret), { recursive: true, force: true });
  });

  it('starts the simulator and the four services until every /readyz answers 200', async () => {
    const [gateway, queue, streamer, collector, simulator] = await Promise.all(
      Array.from({ length: 5 }, () => freePort()),
    );
    Object.assign(urls, {
      gateway: `http://127.0.0.1:${gateway}`,
      queue: `http://127.0.0.1:${queue}`,
      streamer: `http://127.0.0.1:${streamer}`,
      collector: `http://127.0.0.1:${collector}`,
      simulator: `http://127.0.0.1:${simulator}`,
    });
    // The token from a file, as compose and mounted Secrets give it (trailing newline and all).
    const tokenFile = path.join(tree, 'service-token');
    writeFileSync(tokenFile, `${SERVICE_TOKEN}\n`, { mode: 0o400 });
    const common = {
      DATABASE_URL: database.url,
      DATABASE_POOL_SIZE: '4',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      SERVICE_TOKEN_FILE: tokenFile,
      SHUTDOWN_TIMEOUT: '5s',
    };
    start('simulator', {
      SIM_PORT: String(simulator),
      SIM_HOST: '127.0.0.1',
      SIM_HOSTS: String(SIM_HOSTS),
      SIM_GPUS_PER_HOST: String(SIM_GPUS_PER_HOST),
    });
    start('queue', { ...common, PORT: String(queue) });
    start('streamer', { ...common, PORT: String(streamer), QUEUE_URL: urls['queue']!, STREAMER_WAIT: '1s' });
    start('collector', {
      ...common,
      PORT: String(collector),
      QUEUE_URL: urls['queue']!,
      COLLECT_TARGETS: `${urls['simulator']}/hosts/{1..${SIM_HOSTS}}/metrics`,
      COLLECT_INTERVAL: '1s',
    });
    start('gateway', {
      ...common,
      PORT: String(gateway),
      GATEWAY_STREAMER_URLS: urls['streamer']!,
      GATEWAY_QUEUE_URLS: urls['queue']!,
      GATEWAY_COLLECTOR_URLS: urls['collector']!,
      GATEWAY_ADMIN_KEY: ADMIN_KEY,
    });
    await until200('simulator', `${urls['simulator']}/healthz`);
    await Promise.all(
      ['queue', 'streamer', 'collector', 'gateway'].map((name) => until200(name, `${urls[name]}/readyz`)),
    );
  }, 90_000);

  it("carries the simulator's samples to the streamer, read back through the gateway", async () => {
    const deadline = Date.now() + 60_000;
    let gpus: unknown[] = [];
    while (gpus.length < SIM_HOSTS * SIM_GPUS_PER_HOST && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      const response = await fetch(`${urls['gateway']}/api/v1/gpus`, {
        headers: { authorization: `Bearer ${ADMIN_KEY}` },
      });
      if (response.ok) gpus = ((await response.json()) as { gpus: unknown[] }).gpus;
    }
    expect(gpus).toHaveLength(SIM_HOSTS * SIM_GPUS_PER_HOST);
  }, 90_000);

  it('stops every process on SIGTERM with exit code 0, callers before what they call', async () => {
    const exits = [
      ...(await Promise.all(['gateway'].map(stop))),
      ...(await Promise.all(['collector', 'streamer'].map(stop))),
      ...(await Promise.all(['queue', 'simulator'].map(stop))),
    ];
    expect(exits).toEqual(
      ['gateway', 'collector', 'streamer', 'queue', 'simulator'].map((name) => ({
        name,
        code: 0,
        signal: null,
      })),
    );
  }, 120_000);
});
