import assert from 'node:assert/strict';
import request from 'supertest';
import { testApp } from '../../support/app.js';

/** Every `$ref` in a document, as JSON pointers. */
function refs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) node.forEach((n) => refs(n, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref' && typeof v === 'string') out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

describe('GET /api/v1/openapi.json', () => {
  it('describes every operation, publicly, as OpenAPI 3.1 with resolvable references', async () => {
    const app = await testApp();
    const res = await request(app).get('/api/v1/openapi.json').expect(200);
    const doc = res.body;
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(doc.servers[0].url, 'https://roster.test/api/v1');
    const fixed = [
      ['post', '/invitations'],
      ['post', '/invitations/{userId}/resend'],
      ['get', '/users'],
      ['patch', '/users/{id}'],
      ['delete', '/users/{id}'],
      ['put', '/users/{id}/permissions'],
      ['get', '/users/{id}/permissions'],
      ['post', '/access/area-checks'],
      ['get', '/role-templates'],
      ['post', '/role-templates'],
      ['put', '/role-templates/{id}'],
      ['delete', '/role-templates/{id}'],
      ['get', '/areas'],
      ['get', '/audit-events'],
      ['get', '/api-keys'],
    ];
    for (const [method, path] of fixed) assert.ok(doc.paths[path!]?.[method!], `${method} ${path} is not described`);
    const ids = new Set<string>();
    for (const [path, ops] of Object.entries(
      doc.paths as Record<
        string,
        Record<string, { operationId: string; responses: object; parameters: { name: string; in: string }[] }>
      >,
    )) {
      for (const [method, op] of Object.entries(ops)) {
        assert.ok(op.operationId, `${method} ${path} has no operationId`);
        assert.ok(!ids.has(op.operationId), `operationId ${op.operationId} is used twice`);
        ids.add(op.operationId);
        assert.ok(Object.keys(op.responses).length >= 2, `${op.operationId} describes no responses`);
        for (const m of path.matchAll(/\{(\w+)\}/g)) {
          assert.ok(
            op.parameters.some((p) => p.in === 'path' && p.name === m[1]),
            `${op.operationId} lacks path parameter ${m[1]}`,
          );
        }
      }
    }
    for (const ref of refs(doc)) {
      const name = /^#\/components\/schemas\/(.+)$/.exec(ref)?.[1];
      assert.ok(name && doc.components.schemas[name], `unresolvable $ref ${ref}`);
    }
    // The accept endpoint is public; everything else takes a bearer key or a session.
    assert.deepEqual(doc.paths['/invitations/accept'].post.security, []);
    assert.deepEqual(doc.security, [{ bearer: [] }, { session: [] }]);
  });
});
