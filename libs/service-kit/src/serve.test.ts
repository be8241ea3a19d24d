import { ConfigError } from '@gpu-telemetry/config';
import { Agent, get } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { createLogger } from './logger';
import { listen, ListenError, onShutdown, runMain, type RunningServer } from './serve';

/**
 * Slow clients (slowloris): a connection that drips its headers or its body is answered 408 and
 * closed once the timeout passes, and the server keeps serving everyone else meanwhile.
 */
let server: RunningServer;

beforeAll(async () => {
  server = await listen(
    (req, res) => {
      req.resume();
      req.on('end', () => res.end('ok'));
    },
    {
      port: 0,
      host: '127.0.0.1',
      logger: createLogger('test', 'silent'),
      headersTimeoutMs: 500,
      requestTimeoutMs: 1_000,
    },
  );
});

afterAll(async () => {
  server.server.closeAllConnections();
  await server.close();
});

/** Drips `lead` then one byte of `drip` every `everyMs` until the server closes the socket. */
function drip(lead: string, dripByte: string, everyMs: number) {
  return new Promise<{ closedAfterMs: number; response: string }>((resolve) => {
    const started = Date.now();
    let response = '';
    const socket: Socket = connect(server.port, '127.0.0.1', () => socket.write(lead));
    const timer = setInterval(() => socket.writable && socket.write(dripByte), everyMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (response += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ closedAfterMs: Date.now() - started, response });
    });
  });
}

describe('listen address', () => {
  /** The address a plain server listens on for `host`, or undefined where it cannot listen. */
  const addressFor = (host?: string) =>
    new Promise<string | undefined>((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(undefined));
      probe.listen(0, host, () => {
        const { address } = probe.address() as { address: string };
        probe.close(() => resolve(address));
      });
    });
  /** The body a GET of `host`:`port` answers, or the error's code. */
  const fetchFrom = (host: string, port: number) =>
    new Promise<string>((resolve) => {
      get({ host, port, path: '/', agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve(body));
      }).on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    });

  it.each([undefined, ''])('listens on every address, IPv4 and IPv6 alike, when HOST is %p', async (host) => {
    const open = await listen((_req, res) => res.end('here'), {
      port: 0,
      host,
      logger: createLogger('test', 'silent'),
    });
    try {
      // What Node takes for every address: `::` where the machine has IPv6 (IPv4 clients arrive on
      // the same socket), else 0.0.0.0.
      const everyAddress = await addressFor();
      expect(['::', '0.0.0.0']).toContain(everyAddress);
      expect((open.server.address() as { address: string }).address).toBe(everyAddress);
      expect(await fetchFrom('127.0.0.1', open.port)).toBe('here');
      if (everyAddress === '::' && (await addressFor('::1')))
        expect(await fetchFrom('::1', open.port)).toBe('here');
    } finally {
      await open.close();
    }
  });

  it('listens on the one address HOST names', async () => {
    const open = await listen((_req, res) => res.end('here'), {
      port: 0,
      host: '127.0.0.1',
      logger: createLogger('test', 'silent'),
    });
    try {
      expect(await fetchFrom('127.0.0.1', open.port)).toBe('here');
      expect(await fetchFrom('::1', open.port)).toMatch(/^E[A-Z]+$/);
    } finally {
      await open.close();
    }
  });
});

describe('a port that cannot be opened', () => {
  /** A logger whose lines are kept, parsed, for the test to read. */
  const recording = () => {
    const lines: Record<string, unknown>[] = [];
    const logger = createLogger('test', 'info', {
      write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>),
    });
    return { lines, logger };
  };

  it('logs one fatal line naming the host, the port and PORT when the port is taken, and rejects', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as { port: number };
    const { lines, logger } = recording();
    try {
      const refused = listen((_req, res) => res.end('never'), { port, host: '127.0.0.1', logger });
      await expect(refused).rejects.toThrow(ListenError);
      const error = (await refused.catch((e: unknown) => e)) as ListenError;
      expect(error.message).toBe(
        `cannot listen on 127.0.0.1:${port}: the port is already in use (EADDRINUSE); ` +
          'stop the process that holds it, or set PORT to a free port',
      );
      expect(error.message).not.toContain('\n');
      expect(error).toMatchObject({ code: 'EADDRINUSE', host: '127.0.0.1', port });
      expect(lines).toEqual([
        expect.objectContaining({
          level: 'fatal',
          msg: error.message,
          host: '127.0.0.1',
          port,
          code: 'EADDRINUSE',
        }),
      ]);
      expect(lines[0]).not.toHaveProperty('err');
      // The port's holder is untouched.
      expect(holder.listening).toBe(true);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('names every address when HOST is unset', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, resolve));
    const { port } = holder.address() as { port: number };
    try {
      await expect(
        listen((_req, res) => res.end('never'), { port, logger: createLogger('test', 'silent') }),
      ).rejects.toThrow(`cannot listen on port ${port} (every address): the port is already in use`);
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
  });

  it('says to change HOST when it is not an address of this machine', async () => {
    // 192.0.2.0/24 is TEST-NET-1: documentation only, never a local address.
    const { lines, logger } = recording();
    await expect(
      listen((_req, res) => res.end('never'), { port: 0, host: '192.0.2.1', logger }),
    ).rejects.toThrow(/^cannot listen on 192\.0\.2\.1:0: HOST is not an address of this machine/);
    expect(lines).toEqual([expect.objectContaining({ level: 'fatal', code: 'EADDRNOTAVAIL' })]);
  });

  it('words permission denied (EACCES) with PORT', () => {
    const denied = Object.assign(new Error('listen EACCES: permission denied 0.0.0.0:80'), {
      code: 'EACCES',
    });
    expect(ListenError.from(denied, { port: 80, host: '::1' })?.message).toBe(
      'cannot listen on [::1]:80: permission denied (EACCES); ' +
        'set PORT to a port this user may open (1024 or above)',
    );
    expect(ListenError.from(Object.assign(new Error('other'), { code: 'EMFILE' }), { port: 80 })).toBe(
      undefined,
    );
  });

  it('exits 1 without a stack once the fatal line is logged', async () => {
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const printed = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      runMain(() =>
        Promise.reject(new ListenError('cannot listen on 127.0.0.1:1', 'EADDRINUSE', '127.0.0.1', 1)),
      );
      await new Promise((resolve) => setImmediate(resolve));
      expect(exit).toHaveBeenCalledWith(1);
      expect(printed).not.toHaveBeenCalled();
    } finally {
      exit.mockRestore();
      printed.mockRestore();
    }
  });
});

describe('runMain with a configuration error', () => {
  it('prints its problems plainly, not as a stack, and exits 1', async () => {
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const printed = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      runMain(() => Promise.reject(new ConfigError(['PORT must be a number (got "x")'])));
      await new Promise((resolve) => setImmediate(resolve));
      expect(exit).toHaveBeenCalledWith(1);
      expect(printed.mock.calls).toEqual([['Invalid configuration:\n  - PORT must be a number (got "x")']]);
    } finally {
      exit.mockRestore();
      printed.mockRestore();
    }
  });
});

describe('slow clients', () => {
  it('closes a connection that drips its headers, with 408, once the headers timeout passes', async () => {
    const { closedAfterMs, response } = await drip('GET / HTTP/1.1\r\nHost: x\r\n', 'X', 100);
    expect(response).toMatch(/^HTTP\/1.1 408/);
    expect(closedAfterMs).toBeGreaterThanOrEqual(450);
    expect(closedAfterMs).toBeLessThan(3_000);
  });

  it('closes a connection that drips its body once the request timeout passes', async () => {
    const { closedAfterMs, response } = await drip(
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n',
      'a',
      100,
    );
    expect(response).toMatch(/^HTTP\/1.1 408/);
    expect(closedAfterMs).toBeGreaterThanOrEqual(950);
    expect(closedAfterMs).toBeLessThan(4_000);
  });

  it('answers oversized headers and broken HTTP with problem+json, not a bare status line', async () => {
    const big = await drip(`GET /?q=${'x'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, '', 10_000);
    expect(big.response).toMatch(/^HTTP\/1.1 431 /);
    expect(big.response).toContain('must fit in 16 KiB');
    expect(big.response).toContain(
      'content-type: application/problem+json'.replace('content-type', 'Content-Type'),
    );
    expect(JSON.parse(big.response.split('\r\n\r\n')[1]!)).toMatchObject({ status: 431 });
    const broken = await drip('NOT HTTP AT ALL\r\n\r\n', '', 10_000);
    expect(broken.response).toMatch(/^HTTP\/1.1 400 /);
    expect(JSON.parse(broken.response.split('\r\n\r\n')[1]!)).toMatchObject({
      status: 400,
      title: 'Bad Request',
    });
  });

  it('names the path when it holds a raw byte past ASCII, and Host when HTTP/1.1 has none', async () => {
    const body = (response: string) => JSON.parse(response.split('\r\n\r\n')[1]!);
    const unicode = await new Promise<string>((resolve) => {
      let response = '';
      const socket = connect(server.port, '127.0.0.1', () =>
        socket.write(Buffer.from('GET /v1/topics/\u00e9 HTTP/1.1\r\nHost: x\r\n\r\n', 'utf8')),
      );
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (response += chunk));
      socket.on('close', () => resolve(response));
    });
    expect(unicode).toMatch(/^HTTP\/1.1 400 /);
    expect(body(unicode).errors).toEqual([
      { field: 'path', message: expect.stringContaining('percent-encoded') },
    ]);
    const hostless = await drip('GET /v1/gpus HTTP/1.1\r\n\r\n', '', 10_000);
    expect(hostless.response).toMatch(/^HTTP\/1.1 400 /);
    expect(hostless.response.toLowerCase()).toContain('content-type: application/problem+json');
    expect(body(hostless.response)).toMatchObject({ status: 400, errors: [{ field: 'host' }] });
    // HTTP/1.0 never needed a Host.
    const old = await drip('GET /v1/gpus HTTP/1.0\r\n\r\n', '', 10_000);
    expect(old.response).toMatch(/^HTTP\/1.1 200 /);
  });

  it('keeps answering other clients while slow ones hold connections', async () => {
    const slow = Array.from({ length: 20 }, () => drip('GET / HTTP/1.1\r\nHost: x\r\n', 'X', 100));
    const res = await fetch(`http://127.0.0.1:${server.port}/`);
    expect(await res.text()).toBe('ok');
    await Promise.all(slow);
  });
});

describe('shutdown', () => {
  it('closes a keep-alive connection once its in-flight request is answered, not at the timeout', async () => {
    const slow = await listen((_req, res) => void setTimeout(() => res.end('done'), 300), {
      port: 0,
      host: '127.0.0.1',
      logger: createLogger('test', 'silent'),
      shutdownTimeoutMs: 5_000,
    });
    const agent = new Agent({ keepAlive: true });
    const ask = () =>
      new Promise<{ body: string; connection?: string }>((resolve, reject) => {
        get({ host: '127.0.0.1', port: slow.port, agent }, (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk));
          res.on('end', () => resolve({ body, connection: res.headers.connection }));
        }).on('error', reject);
      });
    try {
      const inFlight = ask();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const started = Date.now();
      const closed = slow.close();
      const answered = await inFlight;
      await closed;
      expect(answered.body).toBe('done');
      expect(Date.now() - started).toBeLessThan(1_500);
    } finally {
      agent.destroy();
      slow.server.closeAllConnections();
    }
  });

  it('runs the steps in order on SIGTERM, exits 0 and cancels the deadline', async () => {
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const ran: string[] = [];
    const dispose = onShutdown(
      createLogger('test', 'silent'),
      [
        { name: 'first', run: async () => void ran.push('first') },
        { name: 'second', run: () => void ran.push('second') },
      ],
      { deadlineMs: 100 },
    );
    try {
      process.emit('SIGTERM', 'SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(ran).toEqual(['first', 'second']);
      expect(exit).toHaveBeenCalledWith(0);
      // A clean stop must not be followed by the deadline's exit 1.
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(exit).toHaveBeenCalledTimes(1);
    } finally {
      dispose();
      exit.mockRestore();
    }
  });

  it('exits 1 naming the stuck step when shutdown outlasts its deadline', async () => {
    const exit = jest.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    let logged = '';
    const logger = createLogger('test', 'error', {
      write: (line: string) => {
        logged += line;
      },
    });
    const dispose = onShutdown(
      logger,
      [{ name: 'close database', run: () => new Promise(() => undefined) }],
      {
        deadlineMs: 100,
      },
    );
    try {
      process.emit('SIGTERM', 'SIGTERM');
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(exit).not.toHaveBeenCalled();
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(exit).toHaveBeenCalledWith(1);
      expect(JSON.parse(logged)).toMatchObject({
        step: 'close database',
        msg: 'shutdown did not finish in time; exiting',
      });
    } finally {
      dispose();
      exit.mockRestore();
    }
  });
});
