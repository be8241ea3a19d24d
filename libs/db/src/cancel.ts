import net from 'node:net';
import type { Pool, PoolClient } from 'pg';

/** What pg's Client keeps of its backend (BackendKeyData) and of where it connected. */
interface BackendKey {
  processID: number | null;
  secretKey: number | null;
  host: string;
  port: number;
}

/** The request code of a CancelRequest (1234 << 16 | 5678), as the protocol defines it. */
const CANCEL_REQUEST_CODE = 80877102;

/**
 * Asks Postgres to cancel the statement `client`'s backend is running, as psql's Ctrl-C does: a
 * CancelRequest (the backend's process id and secret key) on a connection of its own. It needs no
 * login and no pooled connection, so it works while every one is busy or waiting on a lock.
 * Resolves `true` once sent (Postgres answers a cancel with nothing but closing), `false` when it
 * could not be (no backend key yet, the server unreachable within `timeoutMs`); never rejects.
 *
 * A cancel that arrives after its statement ended cancels the next one on that backend: a
 * connection once cancelled is to be closed, not handed back to the pool.
 */
export function cancelStatement(client: PoolClient, timeoutMs = 5_000): Promise<boolean> {
  const key = client as unknown as BackendKey;
  if (key.processID === null || key.secretKey === null) return Promise.resolve(false);
  const request = Buffer.alloc(16);
  request.writeInt32BE(16, 0);
  request.writeInt32BE(CANCEL_REQUEST_CODE, 4);
  request.writeInt32BE(key.processID, 8);
  request.writeInt32BE(key.secretKey, 12);
  return new Promise<boolean>((resolve) => {
    const socket = key.host.startsWith('/')
      ? net.connect(`${key.host}/.s.PGSQL.${key.port}`)
      : net.connect(key.port, key.host);
    let sent = false;
    socket.setTimeout(timeoutMs, () => socket.destroy());
    socket.once('connect', () => socket.end(request, () => (sent = true)));
    socket.once('error', () => socket.destroy());
    socket.once('close', () => resolve(sent));
  });
}

/**
 * Cancels `client`'s running statement when `signal` aborts (at once if it has), and refuses any
 * statement started on it after the abort (throwing `signal.reason`): a cancel reaches only a
 * statement running when it arrives, so one sent while the connection was idle (between two
 * statements, while the caller computes) would be lost, and the next statement run unbounded. The
 * caller then closes the connection rather than release it to the pool (`client.release(true)`): a
 * cancel may still reach its backend after the statement it was meant for. `onCancel` is told
 * whether the request was sent. Returns a function that stops both, to be called before the
 * connection is released.
 */
export function cancelOnAbort(
  client: PoolClient,
  signal: AbortSignal,
  onCancel?: (sent: boolean) => void,
): () => void {
  const own = Object.prototype.hasOwnProperty.call(client, 'query');
  const query = client.query;
  client.query = function (this: PoolClient, ...args: unknown[]) {
    if (signal.aborted) return refused(signal.reason, args);
    return (query as (...args: unknown[]) => unknown).apply(this, args);
  } as PoolClient['query'];
  const restore = () => {
    if (own) client.query = query;
    else delete (client as Partial<PoolClient>).query;
  };
  const cancel = () => void cancelStatement(client).then((sent) => onCancel?.(sent));
  if (signal.aborted) {
    cancel();
    return restore;
  }
  signal.addEventListener('abort', cancel, { once: true });
  return () => {
    signal.removeEventListener('abort', cancel);
    restore();
  };
}

/**
 * Runs `run` on one pooled connection that `signal`, when it aborts, stops (cancelOnAbort: the
 * statement running is cancelled, later ones refused); the signal's reason is thrown at once if it
 * has aborted before the connection is had. A connection so stopped, or one `run` calls `broken`
 * for (a ROLLBACK that failed, a statement cut short), is closed rather than pooled again.
 * `onCancel` is told when a cancel was sent, and whether it went out.
 */
export async function onConnection<T>(
  pool: Pool,
  run: (client: PoolClient, broken: () => void) => Promise<T>,
  signal?: AbortSignal,
  onCancel?: (sent: boolean) => void,
): Promise<T> {
  signal?.throwIfAborted();
  const client = await pool.connect();
  if (signal?.aborted) {
    client.release();
    throw signal.reason;
  }
  let close = false;
  const stop = signal ? cancelOnAbort(client, signal, onCancel) : () => undefined;
  try {
    return await run(client, () => (close = true));
  } finally {
    stop();
    client.release(close || signal?.aborted === true);
  }
}

/** A statement refused as `query` would fail it: to its callback, thrown for a stream (COPY), else a rejected promise. */
function refused(reason: unknown, args: unknown[]): unknown {
  const last = args.at(-1);
  if (typeof last === 'function') {
    process.nextTick(last as (error: unknown) => void, reason);
    return undefined;
  }
  if (typeof (args[0] as { submit?: unknown } | undefined)?.submit === 'function') throw reason;
  return Promise.reject(reason);
}
