import { createServer } from 'node:net';
import { createDb } from '../create-db';
import { migrationStatus } from '../migrator';
import { connectionProblem } from './connection-problem';

/** A local port nothing listens on: one the system just handed out and took back. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** What `migrate status` meets at `url`: the error of reading the migrations there. */
async function statusError(url: string): Promise<unknown> {
  const { db, close } = createDb(url, { max: 1, applicationName: 'migrate' });
  try {
    await migrationStatus(db);
  } catch (error) {
    return error;
  } finally {
    await close();
  }
  throw new Error(`expected ${url} to be unreachable`);
}

describe('connectionProblem', () => {
  it('names the URL tried, password masked, and how to start the database, when nothing listens', async () => {
    const port = await closedPort();
    const url = `postgres://postgres:secret@127.0.0.1:${port}/gpu_telemetry`;
    const problem = connectionProblem(await statusError(url), url);
    expect(problem).toBe(
      `cannot connect to Postgres at postgres://postgres:***@127.0.0.1:${port}/gpu_telemetry: ` +
        'connection refused, nothing is listening there. Start the development database with ' +
        '`npm run db:start` (or `npm start`), or set DATABASE_URL to the Postgres to migrate.',
    );
    expect(problem).not.toContain('secret');
  });

  it('reads a refusal from every address a host name has (localhost: IPv6 and IPv4)', async () => {
    const port = await closedPort();
    const url = `postgres://postgres:secret@localhost:${port}/gpu_telemetry`;
    expect(connectionProblem(await statusError(url), url)).toMatch(
      new RegExp(
        `^cannot connect to Postgres at postgres://postgres:\\*\\*\\*@localhost:${port}/gpu_telemetry: connection refused.*npm run db:start`,
      ),
    );
    const several = new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })]);
    expect(connectionProblem(several, url)).toContain('connection refused');
  });

  it('does not send a remote database to the development one', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' });
    const problem = connectionProblem(refused, 'postgres://app:pw@10.0.0.5:5432/telemetry');
    expect(problem).toBe(
      'cannot connect to Postgres at postgres://app:***@10.0.0.5:5432/telemetry: connection refused. ' +
        'Check that Postgres is running there, or set DATABASE_URL to the Postgres to migrate.',
    );
  });

  it.each([
    ['ENOTFOUND', 'the host name does not resolve'],
    ['ETIMEDOUT', 'the host cannot be reached (ETIMEDOUT)'],
    ['28P01', 'the server refused the user or password'],
    ['3D000', 'the database does not exist'],
  ])('words %s', (code, words) => {
    const problem = connectionProblem(Object.assign(new Error(code), { code }), 'postgres://u:pw@db/x');
    expect(problem).toContain(`cannot connect to Postgres at postgres://u:***@db/x: ${words}`);
  });

  it('leaves other errors to be reported as they are', () => {
    expect(
      connectionProblem(Object.assign(new Error('syntax error'), { code: '42601' }), 'postgres://db/x'),
    ).toBe(undefined);
    expect(connectionProblem('odd', 'postgres://db/x')).toBe(undefined);
  });
});
