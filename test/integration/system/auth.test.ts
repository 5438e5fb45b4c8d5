import assert from 'node:assert/strict';
import request from 'supertest';
import { issueToken, revokeToken } from '../../../src/tenants/store.js';
import { testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';

const SCIM_ERROR = 'urn:ietf:params:scim:api:messages:2.0:Error';

describe('bearer authentication', () => {
  const app = useApp();

  it('resolves an admin key to its own tenant', async () => {
    const a = await buildTenant();
    const res = await request(app).get('/api/v1/tenant').set(a.admin).expect(200);
    assert.equal(res.body.id, a.tenant.id);
    assert.equal(res.body.slug, a.tenant.slug);
  });

  it('keeps tenants apart: each key sees only its own tenant', async () => {
    const a = await buildTenant();
    const b = await buildTenant();
    const ra = await request(app).get('/api/v1/tenant').set(a.admin).expect(200);
    const rb = await request(app).get('/api/v1/tenant').set(b.admin).expect(200);
    assert.equal(ra.body.id, a.tenant.id);
    assert.equal(rb.body.id, b.tenant.id);
  });

  it('answers a missing, malformed or unknown token with 401 and WWW-Authenticate: Bearer', async () => {
    for (const header of [undefined, 'Basic dXNlcjpwYXNz', 'Bearer', 'Bearer roster_admin_nope']) {
      const req = request(app).get('/api/v1/tenant');
      if (header) req.set('Authorization', header);
      const res = await req.expect(401);
      assert.match(String(res.headers['www-authenticate']), /^Bearer/);
      assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
      assert.equal(res.body.status, 401);
    }
  });

  it('answers SCIM auth failures in the SCIM error schema with status as a string', async () => {
    const res = await request(app)
      .get('/scim/v2/ServiceProviderConfig')
      .set('Authorization', 'Bearer roster_scim_unknown')
      .expect(401);
    assert.match(String(res.headers['www-authenticate']), /^Bearer/);
    assert.match(String(res.headers['content-type']), /^application\/scim\+json/);
    const body = JSON.parse(res.text);
    assert.deepEqual(body.schemas, [SCIM_ERROR]);
    assert.equal(body.status, '401');
  });

  it('refuses the wrong kind of token with 403 on both APIs', async () => {
    const a = await buildTenant();
    const r1 = await request(app).get('/api/v1/tenant').set(a.scim).expect(403);
    assert.equal(r1.body.code, 'wrong_token_kind');
    const r2 = await request(app).get('/scim/v2/ServiceProviderConfig').set(a.admin).expect(403);
    assert.equal(JSON.parse(r2.text).status, '403');
  });

  it('serves ServiceProviderConfig to a SCIM token', async () => {
    const a = await buildTenant();
    const res = await request(app).get('/scim/v2/ServiceProviderConfig').set(a.scim).expect(200);
    const body = JSON.parse(res.text);
    assert.deepEqual(body.schemas, ['urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig']);
    assert.equal(body.authenticationSchemes[0].type, 'oauthbearertoken');
  });

  it('stops accepting a token on the next request after revocation', async () => {
    const a = await buildTenant();
    const db = await testDb();
    const t = await issueToken(db.knex, a.tenant.id, { kind: 'admin', name: 'to revoke' });
    await request(app).get('/api/v1/tenant').set('Authorization', `Bearer ${t.token}`).expect(200);
    await revokeToken(db.knex, a.tenant.id, t.id);
    await request(app).get('/api/v1/tenant').set('Authorization', `Bearer ${t.token}`).expect(401);
    // The tenant's other key is untouched.
    await request(app).get('/api/v1/tenant').set(a.admin).expect(200);
  });

  it('stops accepting a token once it has expired', async () => {
    const a = await buildTenant();
    const db = await testDb();
    const t = await issueToken(db.knex, a.tenant.id, { kind: 'scim', expiresInMs: 1500 });
    await request(app).get('/scim/v2/ServiceProviderConfig').set('Authorization', `Bearer ${t.token}`).expect(200);
    await new Promise((r) => setTimeout(r, 1600));
    await request(app).get('/scim/v2/ServiceProviderConfig').set('Authorization', `Bearer ${t.token}`).expect(401);
  });

  it('stores tokens only as hashes and records their last use', async () => {
    const a = await buildTenant();
    const db = await testDb();
    const before = await db.knex('api_tokens').where({ tenant_id: a.tenant.id, kind: 'admin' }).first();
    assert.equal(before.last_used_at, null);
    await request(app).get('/api/v1/tenant').set(a.admin).expect(200);
    const rows = await db.knex('api_tokens').where({ tenant_id: a.tenant.id });
    for (const row of rows) {
      for (const value of Object.values(row)) {
        assert.ok(!String(value).includes(a.adminKey.slice(13)), 'a column holds the secret');
        assert.ok(!String(value).includes(a.scimToken.slice(12)), 'a column holds the secret');
      }
    }
    const after = rows.find((r) => r.kind === 'admin');
    assert.ok(Number(after.last_used_at) > 0);
  });
});
