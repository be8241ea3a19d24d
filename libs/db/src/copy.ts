import { once } from 'node:events';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

const SPECIAL = /[\\\t\n\r\0]/;
const SPECIALS = /[\\\t\n\r\0]/g;
const ESCAPES: Record<string, string> = {
  '\\': '\\\\',
  '\t': '\\t',
  '\n': '\\n',
  '\r': '\\r',
  '\0': '\uFFFD',
};

/**
 * A value as a field of `COPY ... FROM STDIN` text format: backslash, tab, newline and carriage
 * return escaped, null as `\N`. NUL, which no Postgres text value can hold, becomes U+FFFD rather
 * than failing the whole COPY.
 */
export function copyText(value: string | null): string {
  if (value === null) return '\\N';
  return SPECIAL.test(value) ? value.replace(SPECIALS, (c) => ESCAPES[c] as string) : value;
}

/**
 * Streams text-format rows to `COPY <target> FROM STDIN` (target: a table and its column list),
 * a chunk at a time with backpressure; returns the row count. Chunks are taken lazily, and none is
 * sent once the server has refused the COPY (e.g. a duplicate key in its first rows): the promise
 * rejects with the server's error.
 */
export async function copyIn(client: PoolClient, target: string, chunks: Iterable<string>): Promise<number> {
  const stream = client.query(copyFrom(`COPY ${target} FROM STDIN`));
  let failed = false;
  const done = new Promise<void>((resolve, reject) => {
    stream.on('error', (error) => {
      failed = true;
      reject(error);
    });
    stream.on('finish', resolve);
  });
  for (const chunk of chunks) {
    if (failed) break;
    if (!stream.write(chunk)) await Promise.race([once(stream, 'drain'), done.catch(() => undefined)]);
  }
  stream.end();
  await done;
  return stream.rowCount;
}
