import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { createTestDatabase, type TestDatabase } from './testing';

/**
 * A connection that reports an error (Postgres restarting, a network cut) while it is checked out
 * and running nothing that could take it, as a COPY being detached can leave it, is told to the
 * logger instead of crashing the process; the pool goes on.
 */
let database: TestDatabase;
const warnings: { details: object; message: string }[] = [];

beforeAll(async () => {
  database = await createTestDatabase({
    max: 2,
    logger: { warn: (details, message) => warnings.push({ details, message }) },
  });
});

afterAll(async () => {
  await database.drop();
});

describe('createDb', () => {
  it('tells of an error on a checked-out connection instead of crashing, and goes on', async () => {
    const client = await database.pool.connect();
    const error = Object.assign(new Error('terminating connection due to administrator command'), {
      code: '57P01',
    });
    // An 'error' event with no listener throws: this is what used to end the streamer.
    expect(() => client.emit('error', error)).not.toThrow();
    client.release(true);
    expect(warnings).toEqual([
      {
        details: { error: 'terminating connection due to administrator command', code: '57P01' },
        message: 'database connection lost',
      },
    ]);
    const { rows } = await database.pool.query<{ one: number }>('SELECT 1 AS one');
    expect(rows[0]!.one).toBe(1);
  });

  it('probes a silent connection from 10 s on, not after the kernel default of 2 hours', async () => {
    const client = await database.pool.connect();
    try {
      await client.query('SELECT 1');
      const socket = (client as unknown as { connection: { stream: Socket } }).connection.stream;
      const port = socket.localPort;
      expect(port).toBeGreaterThan(0); // a TCP connection, not a Unix socket
      // /proc/net/tcp{,6}: local and remote address:port (hex), the state (01: established), ...,
      // then the timer: 02 (keepalive) and the clock ticks (1/100 s) until it fires. The local port
      // alone is not enough: a closed connection that had it may still be listed (TIME_WAIT).
      const hex = (n: number | undefined) => `:${n!.toString(16).toUpperCase().padStart(4, '0')}`;
      const rows = ['/proc/net/tcp', '/proc/net/tcp6']
        .flatMap((file) => readFileSync(file, 'utf8').split('\n').slice(1))
        .map((line) => line.trim().split(/\s+/))
        .filter(
          (fields) =>
            fields[1]?.endsWith(hex(port)) &&
            fields[2]?.endsWith(hex(socket.remotePort)) &&
            fields[3] === '01',
        );
      expect(rows).toHaveLength(1);
      const [timer, ticks] = (rows[0]![5] as string).split(':');
      expect(timer).toBe('02');
      expect(parseInt(ticks as string, 16)).toBeLessThanOrEqual(10 * 100);
    } finally {
      client.release();
    }
  });
});
