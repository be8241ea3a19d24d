import net from 'node:net';
import type { PoolClient } from 'pg';

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
 * Cancels `client`'s running statement when `signal` aborts (at once if it has). The caller then
 * closes the connection rather than release it to the pool (`client.release(true)`): a cancel may
 * still reach its backend after the statement it was meant for. `onCancel` is told whether the
 * request was sent. Returns a function that stops listening.
 */
export function cancelOnAbort(
  client: PoolClient,
  signal: AbortSignal,
  onCancel?: (sent: boolean) => void,
): () => void {
  const cancel = () => void cancelStatement(client).then((sent) => onCancel?.(sent));
  if (signal.aborted) {
    cancel();
    return () => undefined;
  }
  signal.addEventListener('abort', cancel, { once: true });
  return () => signal.removeEventListener('abort', cancel);
}
