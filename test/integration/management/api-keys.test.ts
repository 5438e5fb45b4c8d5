import assert from 'node:assert/strict';
import request from 'supertest';
import { testApp } from '../../support/app.js';
import { buildTenant } from '../../support/factories.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { oktaUser, scimClient } from '../../support/scim.js';

describe('management API: API keys', () => {
  it('creates keys of both kinds, shows the secret once, lists them without it, and revokes them', async () => {
    const app = await testApp();
    const t = await buildTenant();
    const scim = await request(app)
      .post('/api/v1/api-keys')
      .set(t.admin)
      .send({ kind: 'scim', name: 'Okta', expiresIn: '90d' })
      .expect(201);
    assert.match(scim.body.token, /^roster_scim_/);
    assert.ok(scim.body.token.startsWith(scim.body.hint.replace('…', '')));
    assert.ok(Date.parse(scim.body.expiresAt) - Date.now() > 89 * 86_400_000);
    // The new SCIM token provisions.
    await scimClient(app, scim.body.token).post('/Users', oktaUser('via-api-token@example.com')).expect(201);

    const admin = await request(app)
      .post('/api/v1/api-keys')
      .set(t.admin)
      .send({ kind: 'admin', name: 'CI' })
      .expect(201);
    await request(app)
      .get('/api/v1/tenant')
      .set({ Authorization: `Bearer ${admin.body.token}` })
      .expect(200);

    const list = await request(app).get('/api/v1/api-keys').set(t.admin).expect(200);
    const text = JSON.stringify(list.body);
    assert.ok(!text.includes(scim.body.token) && !text.includes(admin.body.token), 'a listed key carries its secret');
    assert.deepEqual(list.body.items.map((k: { name: string }) => k.name).slice(-2), ['Okta', 'CI']);
    assert.ok(list.body.items.every((k: Record<string, unknown>) => !('token' in k)));

    const revoked = await request(app).delete(`/api/v1/api-keys/${admin.body.id}`).set(t.admin).expect(200);
    assert.ok(revoked.body.revokedAt);
    await request(app)
      .get('/api/v1/tenant')
      .set({ Authorization: `Bearer ${admin.body.token}` })
      .expect(401);
    await request(app).delete(`/api/v1/api-keys/${scim.body.id}`).set(t.admin).expect(200);
    await scimClient(app, scim.body.token).get('/Users').expect(401);

    const created = await auditEvents(app, t, 'token.created');
    assert.equal(created.length, 2);
    assert.ok(!JSON.stringify(created).includes(admin.body.token), 'the audit log holds a secret');
    assert.equal((await auditEvents(app, t, 'token.revoked')).length, 2);
  });

  it('refuses bad input, other tenants and non-admins', async () => {
    const app = await testApp();
    const t = await buildTenant();
    const other = await buildTenant();
    const bad = await request(app)
      .post('/api/v1/api-keys')
      .set(t.admin)
      .send({ kind: 'root', expiresIn: 'forever' })
      .expect(400);
    assert.deepEqual(bad.body.fields.map((f: { path: string }) => f.path).sort(), ['body.expiresIn', 'body.kind']);
    const key = await request(app).post('/api/v1/api-keys').set(t.admin).send({ kind: 'admin' }).expect(201);
    await request(app).delete(`/api/v1/api-keys/${key.body.id}`).set(other.admin).expect(404);
    const u = await buildUser(app, t, { areas: { account: 'manage' } });
    const scimForUser = await request(app)
      .post('/api/v1/api-keys')
      .set(t.admin)
      .send({ kind: 'scim', userId: u.id })
      .expect(422);
    assert.equal(scimForUser.body.code, 'scim_token_for_user');
    await request(app).post('/api/v1/api-keys').set(t.admin).send({ kind: 'admin', userId: 'nobody' }).expect(404);
    const member = await request(app).post('/api/v1/api-keys').set(u.auth).send({ kind: 'admin' }).expect(403);
    assert.equal(member.body.code, 'admin_required');
    await request(app).delete(`/api/v1/api-keys/${key.body.id}`).set(u.auth).expect(403);
    await request(app).get('/api/v1/api-keys').set(t.scim).expect(403);
  });
});
