import assert from 'node:assert/strict';
import type { Express } from 'express';
import { testApp } from '../../support/app.js';
import { buildTenant } from '../../support/factories.js';
import { GROUP, scimClient, USER } from '../../support/scim.js';

const BULK = 'urn:ietf:params:scim:api:messages:2.0:BulkRequest';

describe('SCIM /Bulk', () => {
  let app: Express;
  before(async () => {
    app = await testApp({ BODY_LIMIT_BYTES: '200000' });
  });

  it('creates a group referencing users created later in the same request', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const res = await scim
      .post('/Bulk', {
        schemas: [BULK],
        Operations: [
          { method: 'POST', path: '/Groups', bulkId: 'g1', data: { schemas: [GROUP], displayName: 'Bulk Group', members: [{ type: 'User', value: 'bulkId:u1' }, { type: 'User', value: 'bulkId:u2' }] } },
          { method: 'POST', path: '/Users', bulkId: 'u1', data: { schemas: [USER], userName: 'bulk1@x.io' } },
          { method: 'POST', path: '/Users', bulkId: 'u2', data: { schemas: [USER], userName: 'bulk2@x.io' } },
          { method: 'PATCH', path: '/Users/bulkId:u1', data: { Operations: [{ op: 'replace', path: 'title', value: 'Lead' }] } },
        ],
      })
      .expect(200);
    const ops = res.body.Operations;
    assert.deepEqual(ops.map((o: { status: string }) => o.status), ['201', '201', '201', '200']);
    assert.deepEqual(ops.map((o: { bulkId?: string }) => o.bulkId), ['g1', 'u1', 'u2', undefined]);
    const gid = ops[0].location.split('/').pop();
    assert.match(ops[1].location, /\/scim\/v2\/Users\//);
    assert.match(ops[0].version, /^W\/"\d+"$/);
    const members = (await scim.get(`/Groups/${gid}`).expect(200)).body.members.map((m: { display: string }) => m.display).sort();
    assert.deepEqual(members, ['bulk1@x.io', 'bulk2@x.io']);
    assert.equal((await scim.get(`/Users/${ops[1].location.split('/').pop()}`).expect(200)).body.title, 'Lead');
  });

  it('reports each failure in place and stops after failOnErrors', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    await scim.post('/Users', { schemas: [USER], userName: 'taken@x.io' }).expect(201);
    const res = await scim
      .post('/Bulk', {
        schemas: [BULK],
        failOnErrors: 1,
        Operations: [
          { method: 'POST', path: '/Users', bulkId: 'a', data: { schemas: [USER], userName: 'taken@x.io' } },
          { method: 'POST', path: '/Users', bulkId: 'b', data: { schemas: [USER], userName: 'never@x.io' } },
        ],
      })
      .expect(200);
    assert.equal(res.body.Operations.length, 1);
    assert.equal(res.body.Operations[0].status, '409');
    assert.equal(res.body.Operations[0].response.scimType, 'uniqueness');
    assert.equal((await scim.get('/Users?filter=userName eq "never@x.io"').expect(200)).body.totalResults, 0);
  });

  it('fails an operation whose bulkId is unknown, and circular references with 409', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const res = await scim
      .post('/Bulk', {
        schemas: [BULK],
        Operations: [
          { method: 'POST', path: '/Groups', bulkId: 'x', data: { schemas: [GROUP], displayName: 'X', members: [{ value: 'bulkId:y' }] } },
          { method: 'POST', path: '/Groups', bulkId: 'y', data: { schemas: [GROUP], displayName: 'Y', members: [{ value: 'bulkId:x' }] } },
          { method: 'POST', path: '/Groups', bulkId: 'z', data: { schemas: [GROUP], displayName: 'Z', members: [{ value: 'bulkId:nobody' }] } },
        ],
      })
      .expect(200);
    assert.deepEqual(res.body.Operations.map((o: { status: string }) => o.status), ['409', '409', '400']);
  });

  it('refuses more than maxOperations with 413 naming the limit', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const Operations = Array.from({ length: 1001 }, (_, i) => ({ method: 'DELETE', path: `/Users/${i}` }));
    const res = await scim.post('/Bulk', { schemas: [BULK], Operations }).expect(413);
    assert.match(res.body.detail, /maxOperations is 1000/);
    const spc = (await scim.get('/ServiceProviderConfig').expect(200)).body;
    assert.deepEqual(spc.bulk, { supported: true, maxOperations: 1000, maxPayloadSize: 200000 });
  });
});
