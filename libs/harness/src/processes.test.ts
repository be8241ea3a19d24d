import { readFileSync } from 'node:fs';
import { freePort, type ManagedProcess, startProcess } from './processes';
import { waitFor } from './wait-for';

/** `node -e script`: the process under test. */
function node(name: string, script: string, options: Partial<Parameters<typeof startProcess>[0]> = {}) {
  const started = startProcess({ name, args: ['-e', script], stdout: 'keep', stderr: 'keep', ...options });
  processes.push(started);
  return started;
}

/** No such process, or one that has exited and waits to be reaped. */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return true;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

const processes: ManagedProcess[] = [];
afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.kill()));
});

const SERVER = `
  const server = require('node:http').createServer((req, res) => res.end('ok'));
  server.listen(Number(process.env.PORT), '127.0.0.1');
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
`;

describe('startProcess', () => {
  it('waits until its URL answers, and stops it with SIGTERM', async () => {
    const port = await freePort();
    const service = node('service', `setTimeout(() => { ${SERVER} }, 200);`, {
      env: { ...process.env, PORT: String(port) },
    });
    expect(await service.waitForUrl(`http://127.0.0.1:${port}/healthz`)).toBeGreaterThanOrEqual(150);
    expect(service.running).toBe(true);
    expect(await service.stop()).toEqual({ code: 0, signal: null });
    expect(service.running).toBe(false);
  });

  it('gives up waiting at once when the process exits, quoting what it wrote', async () => {
    const started = Date.now();
    const failing = node('failing', `console.error('DATABASE_URL is not set'); process.exit(3);`);
    await expect(failing.waitForUrl('http://127.0.0.1:9/healthz', { timeoutMs: 10_000 })).rejects.toThrow(
      /^failing exited \(code 3\) before http:\/\/127\.0\.0\.1:9\/healthz answered\nfailing output:\nDATABASE_URL is not set/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('kills what does not stop within the grace period', async () => {
    const stubborn = node(
      'stubborn',
      `process.on('SIGTERM', () => console.log('ignored')); setInterval(() => {}, 1000); console.log('up');`,
    );
    await waitFor('it to start', () => stubborn.output().includes('up'));
    expect(await stubborn.stop({ graceMs: 1_000 })).toEqual({ code: null, signal: 'SIGKILL' });
    expect(stubborn.output()).toContain('ignored');
  });

  it('stops a process that was stopped with SIGSTOP', async () => {
    const port = await freePort();
    const service = node('service', SERVER, { env: { ...process.env, PORT: String(port) } });
    await service.waitForUrl(`http://127.0.0.1:${port}/`);
    service.signal('SIGSTOP');
    expect(await service.stop({ graceMs: 10_000 })).toEqual({ code: 0, signal: null });
  });

  it('in a process group of its own, leaves nothing it started running', async () => {
    const lines: string[] = [];
    const parent = node(
      'parent',
      // The handler goes in before the line that tells the test to stop it.
      `process.on('SIGTERM', () => process.exit(0)); // without stopping its child
       const child = require('node:child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
       setInterval(() => {}, 1000);
       setImmediate(() => console.log('child ' + child.pid));`,
      { stdout: (line) => lines.push(line), ownProcessGroup: true },
    );
    await waitFor('the child pid', () => lines.length > 0);
    const child = Number(/^child (\d+)$/.exec(lines[0] ?? '')?.[1]);
    expect(child).toBeGreaterThan(0);
    expect(await parent.stop()).toEqual({ code: 0, signal: null });
    await waitFor('the child to be gone', () => gone(child));
  });

  it('hands a line sink whole lines, the last one even without its newline', async () => {
    const lines: string[] = [];
    const writer = node(
      'writer',
      `process.stdout.write('one\\ntw'); setTimeout(() => process.stdout.write('o\\nthree'), 50);`,
      {
        stdout: (line) => lines.push(line),
      },
    );
    await writer.exited;
    await waitFor('the last line', () => lines.length === 3);
    expect(lines).toEqual(['one', 'two', 'three']);
  });

  it('reports a program that cannot be started as exited, with the reason', async () => {
    const missing = startProcess({ name: 'missing', command: '/nonexistent/program', args: [] });
    expect(await missing.exited).toEqual({ code: null, signal: null });
    expect(missing.running).toBe(false);
    expect(missing.output()).toContain('ENOENT');
  });
});
