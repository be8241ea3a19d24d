import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import path from 'node:path';

/** The simulator's main as the image's `simulator` command and `npm run sim:exporter` run it: built. */
const root = path.resolve(__dirname, '../../..');

beforeAll(() => {
  const built = spawnSync(
    process.execPath,
    [require.resolve('typescript/bin/tsc'), '-b', 'libs/dcgm-simulator/tsconfig.lib.json'],
    { cwd: root, stdio: 'inherit' },
  );
  if (built.status !== 0) throw new Error('build failed');
}, 120_000);

function simulator(env: Record<string, string>) {
  const run = spawnSync(process.execPath, [path.join(root, 'libs/dcgm-simulator/dist/main.js')], {
    cwd: root,
    env: { PATH: process.env['PATH'] ?? '', ...env },
    encoding: 'utf8',
    timeout: 10_000,
  });
  return { status: run.status, lines: run.stdout.split('\n').filter(Boolean), stderr: run.stderr };
}

/** A port held by another server, on `host` (every address when unset), for the test's length. */
async function holding<T>(host: string | undefined, test: (port: number) => T): Promise<T> {
  const holder: Server = createServer();
  await new Promise<void>((resolve) => holder.listen(0, host, resolve));
  try {
    return test((holder.address() as { port: number }).port);
  } finally {
    await new Promise((resolve) => holder.close(resolve));
  }
}

describe('the simulator on a port it cannot open', () => {
  it('logs one fatal line naming the address and SIM_PORT, and exits 1', async () => {
    await holding('127.0.0.1', (port) => {
      const { status, lines, stderr } = simulator({ SIM_PORT: String(port), SIM_HOST: '127.0.0.1' });
      expect({ status, stderr, lines: lines.length }).toEqual({ status: 1, stderr: '', lines: 1 });
      expect(JSON.parse(lines[0]!)).toEqual({
        level: 'fatal',
        time: expect.any(String),
        service: 'simulator',
        msg:
          `cannot listen on 127.0.0.1:${port}: the port is already in use (EADDRINUSE); ` +
          'stop the process that holds it, or set SIM_PORT to a free port',
        host: '127.0.0.1',
        port,
        code: 'EADDRINUSE',
      });
    });
  });

  it('names every address when SIM_HOST is unset', async () => {
    await holding(undefined, (port) => {
      const { status, lines } = simulator({ SIM_PORT: String(port) });
      expect(status).toBe(1);
      expect(lines.map((line) => JSON.parse(line).msg)).toEqual([
        `cannot listen on port ${port} (every address): the port is already in use (EADDRINUSE); ` +
          'stop the process that holds it, or set SIM_PORT to a free port',
      ]);
    });
  });

  it('says to change SIM_HOST when it is not an address of this machine', () => {
    // 192.0.2.0/24 is TEST-NET-1: documentation only, never a local address.
    const { status, lines } = simulator({ SIM_PORT: '0', SIM_HOST: '192.0.2.1' });
    expect(status).toBe(1);
    expect(lines.map((line) => JSON.parse(line).msg)).toEqual([
      'cannot listen on 192.0.2.1:0: SIM_HOST is not an address of this machine (EADDRNOTAVAIL); ' +
        'set SIM_HOST to a local address, or leave it unset to listen on every address',
    ]);
  });
});

describe('the simulator with a setting it cannot use', () => {
  it('lists the setting and what it must be, without a stack, and exits 1', () => {
    const run = spawnSync(process.execPath, [path.join(root, 'libs/dcgm-simulator/dist/main.js')], {
      cwd: root,
      env: { PATH: process.env['PATH'] ?? '', SIM_PORT: 'ninety', SIM_GPUS_PER_HOST: '65' },
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    const lines = run.stderr.trim().split('\n');
    expect(lines[0]).toBe('Invalid configuration:');
    expect(lines.slice(1)).toEqual([
      '  - SIM_PORT must be a number (got "ninety")',
      '  - SIM_GPUS_PER_HOST must be at most 64 (got "65")',
    ]);
  });
});
