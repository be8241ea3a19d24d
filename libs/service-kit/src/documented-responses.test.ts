import { createServer } from 'node:http';
import request from 'supertest';
import { z } from 'zod';
import { createLogger } from './logger';
import { createMetrics } from './metrics';
import { openApiDocument, type Operation } from './openapi';
import { sendProblem } from './problem';
import { checkResponses } from './response-check';
import { createServiceApp } from './service-app';
import { documentedResponses } from './testing';

const operations: Operation[] = [
  {
    method: 'get',
    path: '/v1/things/{id}',
    summary: 'A thing',
    tags: ['things'],
    params: z.object({ id: z.string() }),
    responses: {
      200: { description: 'The thing', schema: z.object({ id: z.string(), size: z.number().int() }) },
    },
    problems: { 404: 'No such thing' },
  },
  {
    method: 'delete',
    path: '/v1/things/{id}',
    summary: 'Remove a thing',
    tags: ['things'],
    responses: { 204: { description: 'Removed' } },
  },
];
const document = openApiDocument({ title: 'demo', version: '1' }, operations);

/** A service whose /v1/things/:id answers whatever the test asks for. */
function demo(answer: (res: import('express').Response) => void) {
  const responses = documentedResponses(document);
  const app = createServiceApp({
    service: 'demo',
    logger: createLogger('demo', 'silent'),
    metrics: createMetrics('demo', { defaultMetrics: false }),
    readiness: [],
    checkResponse: responses.check,
    routes: (app) => {
      app.get('/v1/things/:id', (_req, res) => answer(res));
      app.delete('/v1/things/:id', (_req, res) => answer(res));
      app.get('/v1/secret', (_req, res) => res.json({}));
    },
  });
  return { app, responses };
}

describe('documentedResponses', () => {
  it('passes answers that match the document, problems included', async () => {
    const { app, responses } = demo((res) => res.json({ id: 'a', size: 3 }));
    await request(app).get('/v1/things/a').expect(200, { id: 'a', size: 3 });
    const missing = demo((res) => sendProblem(res, 404, 'No thing a.'));
    await request(missing.app).get('/v1/things/a').expect(404);
    const removed = demo((res) => res.status(204).end());
    await request(removed.app).delete('/v1/things/a').expect(204);
    // Not in the document, and no route answered: the frame's own 404.
    await request(app).get('/v1/elsewhere').expect(404);
    await request(app).get('/healthz').expect(200);
    for (const { responses: seen } of [{ responses }, missing, removed]) expect(seen.violations).toEqual([]);
  });

  it('answers a body that does not match its schema with a 500 naming the field, and records it', async () => {
    const { app, responses } = demo((res) => res.json({ id: 'a', size: 'large', colour: 'red' }));
    const res = await request(app).get('/v1/things/a').expect(500);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.body.detail).toContain('GET /v1/things/{id} 200');
    expect(res.body.detail).toContain('/size Instance type "string" is invalid. Expected "integer"');
    expect(res.body.detail).toContain('Property "colour" does not match additional properties schema');
    expect(responses.violations).toHaveLength(1);
    expect(() => responses.assertNone()).toThrow(/1 answer\(s\) did not match the OpenAPI document/);
    // Reported once: the next test starts clean.
    expect(() => responses.assertNone()).not.toThrow();
  });

  it('refuses a status the operation does not document', async () => {
    const { app, responses } = demo((res) => sendProblem(res, 409, 'Busy.'));
    const res = await request(app).get('/v1/things/a').expect(500);
    expect(res.body.detail).toContain(
      'GET /v1/things/{id} 409: the status is not documented (documented: 200, 404, 500, 503)',
    );
    expect(responses.violations).toHaveLength(1);
  });

  it('refuses a problem whose status is not the answer’s, a wrong media type, and a body where none is documented', async () => {
    const wrongStatus = demo((res) =>
      res
        .status(404)
        .type('application/problem+json')
        .send({ type: 'about:blank', title: 'Not Found', status: 400, detail: 'x' }),
    );
    expect((await request(wrongStatus.app).get('/v1/things/a').expect(500)).body.detail).toContain('/status');
    const text = demo((res) => res.type('text/plain').send('a thing'));
    expect((await request(text.app).get('/v1/things/a').expect(500)).body.detail).toContain(
      'answered text/plain, documented application/json',
    );
    const body = demo((res) => res.status(204).json({ removed: true }));
    // Express drops a 204's body, so this one passes; a 200 where 204 is documented does not.
    await request(body.app).delete('/v1/things/a').expect(204);
    const ok = demo((res) => res.json({ removed: true }));
    expect((await request(ok.app).delete('/v1/things/a').expect(500)).body.detail).toContain(
      'DELETE /v1/things/{id} 200: the status is not documented',
    );
  });

  it('refuses a routed path the document leaves out', async () => {
    const { app, responses } = demo((res) => res.json({}));
    const res = await request(app).get('/v1/secret').expect(500);
    expect(res.body.detail).toContain('GET /v1/secret is routed but not documented');
    expect(responses.violations).toEqual(['GET /v1/secret is routed but not documented']);
  });

  it('checks a plain node handler too, streamed bodies by status and type', async () => {
    const responses = documentedResponses(document);
    const server = createServer(
      checkResponses((req, res) => {
        if (req.method === 'DELETE') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('streamed ');
          res.end('out');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"id":"a","size":1.5}');
      }, responses.check),
    );
    const bad = await request(server).get('/v1/things/a').expect(500);
    expect(bad.body.detail).toContain('/size Instance type "number" is invalid. Expected "integer"');
    // Already on the wire when the end comes: sent as it is, but recorded.
    await request(server).delete('/v1/things/a').expect(200, 'streamed out');
    expect(responses.violations).toHaveLength(2);
    expect(responses.violations[1]).toContain('DELETE /v1/things/{id} 200: the status is not documented');
  });
});
