import { type IncomingHttpHeaders, request as httpRequest } from 'node:http';
import request from 'supertest';

/** An answer read whole, its body parsed as JSON. */
export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
}

/**
 * A request by node:http on a connection of its own (chunked unless `content-length` is given),
 * for what supertest cannot send or hold open; `abort` leaves before the answer.
 */
export function rawRequest(
  url: string,
  options: { method: string; headers: Record<string, string>; body: Buffer | string },
): { answer: Promise<RawAnswer>; abort: () => void } {
  const req = httpRequest(url, { method: options.method, agent: false, headers: options.headers });
  const answer = new Promise<RawAnswer>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }),
      );
    });
    req.on('error', reject);
  });
  req.end(options.body);
  const abort = () => {
    answer.catch(() => undefined);
    req.destroy();
  };
  return { answer, abort };
}

/** The sum of a metric's series on the gateway's /metrics whose labels include `labels`. */
export async function metric(
  base: string,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = (await request(base).get('/metrics').expect(200)).text;
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^(\w+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (match[2] ?? '').includes(`${k}="${v}"`)))
      sum += Number(match[3]);
  }
  return sum;
}
