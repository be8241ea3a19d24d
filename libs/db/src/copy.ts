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

/** The start of a binary COPY stream: its signature, no flags, no header extension. */
const BINARY_HEADER = Buffer.concat([Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1'), Buffer.alloc(8)]);
/** The end of a binary COPY stream: a tuple of -1 fields. */
const BINARY_TRAILER = Buffer.from([0xff, 0xff]);

/**
 * Streams rows to `COPY <target> FROM STDIN` (target: a table and its column list), a chunk at a
 * time with backpressure; returns the row count. `text` chunks are lines of COPY's text format;
 * `binary` ones are tuples of its binary format, which this frames with the stream's header and
 * trailer. Chunks are taken lazily, and none is sent once the server has refused the COPY (e.g. a
 * duplicate key in its first rows): the promise rejects with the server's error.
 */
export async function copyIn(
  client: PoolClient,
  target: string,
  chunks: Iterable<string | Uint8Array>,
  format: 'text' | 'binary' = 'text',
): Promise<number> {
  const binary = format === 'binary';
  const stream = client.query(copyFrom(`COPY ${target} FROM STDIN${binary ? ' (FORMAT binary)' : ''}`));
  let failed = false;
  const done = new Promise<void>((resolve, reject) => {
    stream.on('error', (error) => {
      failed = true;
      reject(error);
    });
    stream.on('finish', resolve);
  });
  const send = async (chunk: string | Uint8Array) => {
    if (!stream.write(chunk)) await Promise.race([once(stream, 'drain'), done.catch(() => undefined)]);
  };
  if (binary) await send(BINARY_HEADER);
  for (const chunk of chunks) {
    if (failed) break;
    await send(chunk);
  }
  if (binary && !failed) await send(BINARY_TRAILER);
  stream.end();
  await done;
  return stream.rowCount;
}
