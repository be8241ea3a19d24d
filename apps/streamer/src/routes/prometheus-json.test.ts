import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import request from 'supertest';
import type { QueryResult } from '@gpu-telemetry/promql';
import { sendQueryResult } from './prometheus-json';

/** An app answering every GET with `result`, as the PromQL routes send it; resolves `sent` when done. */
function appSending(result: QueryResult & { warnings?: string[] }) {
  const sent: Promise<void>[] = [];
  const written = { bytes: 0 };
  const app = express();
  app.get('/', (_req, res) => {
    const write = res.write.bind(res) as (chunk: Buffer) => boolean;
    res.write = ((chunk: Buffer) => {
      written.bytes += chunk.length;
      return write(chunk);
    }) as typeof res.write;
    sent.push(sendQueryResult(res, result));
  });
  return { app, sent, written };
}

/** What Prometheus' JSON holds for the same answer, made with JSON.stringify. */
function expectedJson(result: QueryResult, format: (v: number) => string) {
  switch (result.resultType) {
    case 'matrix':
      return result.result.map((s) => ({
        metric: Object.fromEntries(s.labels.map((l) => [l.name, l.value])),
        values: s.timestamps.map((t, k) => [t / 1000, format(s.values[k] as number)]),
      }));
    case 'vector':
      return result.result.map((s) => ({
        metric: Object.fromEntries(s.labels.map((l) => [l.name, l.value])),
        value: [s.t / 1000, format(s.value)],
      }));
    default:
      throw new Error('not used');
  }
}

const special = (v: number) => {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
};

describe('sendQueryResult', () => {
  it('writes a matrix of thousands of series across many pieces exactly, labels in any UTF-8', async () => {
    const long = 'é😀漢'.repeat(100_000); // 1 MB of UTF-8 in one label value: longer than a piece
    const result: QueryResult = {
      resultType: 'matrix',
      result: Array.from({ length: 2_000 }, (_, i) => ({
        labels: [
          { name: '__name__', value: 'DCGM_FI_DEV_POWER_USAGE' },
          { name: 'gpu', value: i === 7 ? long : `gpu "${i}" \\ ${'é'.repeat(i % 5)}` },
        ],
        timestamps: Array.from({ length: 120 }, (_, k) => 1_796_400_000_123 + k * 15_000),
        values: Array.from({ length: 120 }, (_, k) =>
          k === 3 ? NaN : k === 4 ? Infinity : k === 5 ? -Infinity : i * 1000 + k + 0.125,
        ),
      })),
    };
    const { app, sent } = appSending(result);
    const res = await request(app)
      .get('/')
      .expect(200)
      .expect('content-type', /application\/json/);
    await Promise.all(sent);
    expect(res.text.length).toBeGreaterThan(5 * 1024 * 1024);
    expect(res.body).toEqual({
      status: 'success',
      data: { resultType: 'matrix', result: expectedJson(result, special) },
    });
    expect(res.body.data.result[7].metric.gpu).toBe(long);
  });

  it('writes a vector, in exponent form where Prometheus does, with its warnings', async () => {
    const result = {
      resultType: 'vector' as const,
      result: [1.5e-7, 1.2e21, 0, -0, 42, 0.1 + 0.2].map((value, i) => ({
        labels: [{ name: 'i', value: String(i) }],
        t: 1_796_400_000_500,
        value,
      })),
      warnings: ['a "warning" é'],
    };
    const { app } = appSending(result);
    const res = await request(app).get('/').expect(200);
    expect(res.body).toEqual({
      status: 'success',
      data: {
        resultType: 'vector',
        result: expectedJson(result, (v) =>
          v === 1.5e-7 ? '1.5e-07' : v === 1.2e21 ? '1.2e+21' : Object.is(v, -0) ? '-0' : String(v),
        ),
      },
      warnings: ['a "warning" é'],
    });
  });

  it('writes scalars never in exponent form, and strings as JSON strings', async () => {
    const scalar = appSending({ resultType: 'scalar', result: { t: 1_000, value: 1.2e21 } });
    expect((await request(scalar.app).get('/').expect(200)).body).toEqual({
      status: 'success',
      data: { resultType: 'scalar', result: [1, '1200000000000000000000'] },
    });
    const string = appSending({ resultType: 'string', result: { t: 1_500, value: 'a "b" é' } });
    expect((await request(string.app).get('/').expect(200)).body).toEqual({
      status: 'success',
      data: { resultType: 'string', result: [1.5, 'a "b" é'] },
    });
  });

  it('waits for a slow reader, and finishes when the reader goes away mid-answer', async () => {
    const result: QueryResult = {
      resultType: 'matrix',
      result: Array.from({ length: 3_000 }, (_, i) => ({
        labels: [{ name: 'i', value: String(i) }],
        timestamps: Array.from({ length: 1_000 }, (_, k) => k * 1000),
        values: Array.from({ length: 1_000 }, (_, k) => k + 0.5),
      })),
    };
    const { app, sent, written } = appSending(result);
    const server = http.createServer(app).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      let timer: NodeJS.Timeout | undefined;
      const received = await new Promise<number>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error('the reader never got its bytes')), 10_000);
        const req = http.get({ port, host: '127.0.0.1', path: '/' }, (res) => {
          let bytes = 0;
          res.pause(); // a reader that takes nothing for a while: the answer must wait, not pile up
          setTimeout(() => {
            res.on('data', (chunk: Buffer) => {
              bytes += chunk.length;
              if (bytes > 2 * 1024 * 1024) req.destroy();
            });
            res.resume();
          }, 200);
          res.on('close', () => resolve(bytes));
        });
        req.on('error', () => undefined);
      }).finally(() => clearTimeout(timer));
      expect(received).toBeGreaterThan(2 * 1024 * 1024);
      await Promise.all(sent);
      // The answer is ~50 MB: what was made stops a few pieces after the reader went away.
      expect(written.bytes).toBeLessThan(received + 20 * 1024 * 1024);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
