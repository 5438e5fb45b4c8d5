import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser, templateId } from '../../support/management.js';
import { oktaUser, patchBody, scimClient } from '../../support/scim.js';

describe('management API: users', () => {
  const app = useApp();
  const t = useTenant();

  it('a SCIM-provisioned user is the same user, with the same id, in the management API', async () => {
    const scim = await scimClient(app, t.scimToken).post('/Users', oktaUser('same@example.com')).expect(201);
    const res = await request(app).get(`/api/v1/users/${scim.body.id}`).set(t.admin).expect(200);
    assert.equal(res.body.email, 'same@example.com');
    assert.equal(res.body.source, 'scim');
    assert.equal(res.body.status, 'active');
    assert.equal(res.body.role, 'member');
    assert.equal(res.body.lastLoginAt, null);
  });

  it('lists with filters, sorts, and pages by cursor without gaps or repeats', async () => {
    const sc = scimClient(app, t.scimToken);
    const emails = ['c@example.com', 'a@example.com', 'e@example.com', 'b@example.com', 'd@example.com'];
    const ids: string[] = [];
    for (const e of emails) ids.push((await sc.post('/Users', oktaUser(e, { externalId: e })).expect(201)).body.id);
    await request(app).patch(`/api/v1/users/${ids[0]}`).set(t.admin).send({ role: 'admin' }).expect(200);
    await request(app).patch(`/api/v1/users/${ids[1]}`).set(t.admin).send({ status: 'suspended' }).expect(200);
    await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'f@example.com', role: 'member' })
      .expect(201);

    const byEmail = await request(app).get('/api/v1/users').query({ sort: 'email', limit: 2 }).set(t.admin).expect(200);
    assert.deepEqual(
      byEmail.body.items.map((u: { email: string }) => u.email),
      ['a@example.com', 'b@example.com'],
    );
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: Record<string, string | number> = { sort: 'email', order: 'desc', limit: 2 };
      if (cursor) q.cursor = cursor;
      const page = await request(app).get('/api/v1/users').query(q).set(t.admin).expect(200);
      seen.push(...page.body.items.map((u: { email: string }) => u.email));
      cursor = page.body.nextCursor;
    } while (cursor);
    assert.deepEqual(seen, [
      'f@example.com',
      'e@example.com',
      'd@example.com',
      'c@example.com',
      'b@example.com',
      'a@example.com',
    ]);

    const admins = await request(app).get('/api/v1/users').query({ role: 'admin' }).set(t.admin).expect(200);
    assert.deepEqual(
      admins.body.items.map((u: { id: string }) => u.id),
      [ids[0]],
    );
    const suspended = await request(app).get('/api/v1/users').query({ status: 'suspended' }).set(t.admin).expect(200);
    assert.deepEqual(
      suspended.body.items.map((u: { id: string }) => u.id),
      [ids[1]],
    );
    const invited = await request(app).get('/api/v1/users').query({ status: 'invited' }).set(t.admin).expect(200);
    assert.equal(invited.body.items[0].source, 'invite');
    const one = await request(app).get('/api/v1/users').query({ email: 'E@EXAMPLE.COM' }).set(t.admin).expect(200);
    assert.deepEqual(
      one.body.items.map((u: { id: string }) => u.id),
      [ids[2]],
    );
    assert.equal(one.body.nextCursor, null);
    const created = await request(app).get('/api/v1/users').query({ sort: 'createdAt' }).set(t.admin).expect(200);
    assert.deepEqual(
      created.body.items.slice(0, 5).map((u: { id: string }) => u.id),
      ids,
    );

    const bad = await request(app).get('/api/v1/users').query({ status: 'gone', limit: 0 }).set(t.admin).expect(400);
    assert.deepEqual(bad.body.fields.map((f: { path: string }) => f.path).sort(), ['query.limit', 'query.status']);
    const badCursor = await request(app).get('/api/v1/users').query({ cursor: 'nonsense' }).set(t.admin).expect(400);
    assert.equal(badCursor.body.code, 'invalid_cursor');
  });

  it('never shows another tenant its users', async () => {
    const other = await buildTenant();
    const u = await scimClient(app, t.scimToken).post('/Users', oktaUser('mine@example.com')).expect(201);
    await request(app).get(`/api/v1/users/${u.body.id}`).set(other.admin).expect(404);
    await request(app).patch(`/api/v1/users/${u.body.id}`).set(other.admin).send({ role: 'admin' }).expect(404);
    await request(app).delete(`/api/v1/users/${u.body.id}`).set(other.admin).expect(404);
    const list = await request(app).get('/api/v1/users').set(other.admin).expect(200);
    assert.deepEqual(list.body.items, []);
  });

  it('changes role, template, CRM access and email, one audit event per change', async () => {
    const u = await buildUser(app, t);
    const tpl = await templateId(app, t, 'Full developer');
    const res = await request(app)
      .patch(`/api/v1/users/${u.id}`)
      .set(t.admin)
      .send({ templateId: tpl, crmAccess: true, email: 'new.address@example.com' })
      .expect(200);
    assert.equal(res.body.templateId, tpl);
    assert.equal(res.body.templateName, 'Full developer');
    assert.equal(res.body.crmAccess, true);
    assert.equal(res.body.email, 'new.address@example.com');
    const found = await request(app)
      .get('/api/v1/users')
      .query({ email: 'new.address@example.com' })
      .set(t.admin)
      .expect(200);
    assert.equal(found.body.items[0].id, u.id);
    // SCIM shows the new primary email too: one identity.
    const scim = await scimClient(app, t.scimToken).get(`/Users/${u.id}`).expect(200);
    assert.equal(scim.body.emails.find((e: { primary?: boolean }) => e.primary).value, 'new.address@example.com');

    const admin = await request(app).patch(`/api/v1/users/${u.id}`).set(t.admin).send({ role: 'admin' }).expect(200);
    assert.equal(admin.body.crmAccess, true);
    const off = await request(app).patch(`/api/v1/users/${u.id}`).set(t.admin).send({ crmAccess: false }).expect(422);
    assert.equal(off.body.code, 'crm_always_on_for_admins');

    assert.equal((await auditEvents(app, t, 'user.template_changed'))[0]!.entity.id, u.id);
    assert.deepEqual((await auditEvents(app, t, 'user.role_changed'))[0]!.after, { role: 'admin' });
    assert.deepEqual((await auditEvents(app, t, 'user.email_changed'))[0]!.after, { email: 'new.address@example.com' });
    assert.equal((await auditEvents(app, t, 'user.crm_access_changed')).length, 1);

    const taken = await buildUser(app, t);
    const dup = await request(app)
      .patch(`/api/v1/users/${taken.id}`)
      .set(t.admin)
      .send({ email: 'NEW.address@example.com' })
      .expect(409);
    assert.equal(dup.body.code, 'email_taken');
    const unknownTpl = await request(app)
      .patch(`/api/v1/users/${taken.id}`)
      .set(t.admin)
      .send({ templateId: 'missing' })
      .expect(422);
    assert.equal(unknownTpl.body.code, 'unknown_template');
    await request(app).patch(`/api/v1/users/${taken.id}`).set(t.admin).send({}).expect(400);
    await request(app).patch(`/api/v1/users/${taken.id}`).set(t.admin).send({ status: 'invited' }).expect(400);
  });

  it('suspension blocks API use at the next request; reactivation restores it', async () => {
    const u = await buildUser(app, t, { areas: { account: 'manage' } });
    await request(app).get('/api/v1/users').set(u.auth).expect(200);
    await request(app).patch(`/api/v1/users/${u.id}`).set(t.admin).send({ status: 'suspended' }).expect(200);
    const blocked = await request(app).get('/api/v1/users').set(u.auth).expect(403);
    assert.equal(blocked.body.code, 'user_not_active');
    assert.equal((await auditEvents(app, t, 'user.suspended')).length, 1);
    // An IdP's routine profile update (active still true) does not undo an admin's suspension.
    await scimClient(app, t.scimToken)
      .patch(`/Users/${u.id}`, patchBody({ op: 'replace', path: 'displayName', value: 'Renamed' }))
      .expect(200);
    await request(app).get('/api/v1/users').set(u.auth).expect(403);
    await request(app).patch(`/api/v1/users/${u.id}`).set(t.admin).send({ status: 'active' }).expect(200);
    await request(app).get('/api/v1/users').set(u.auth).expect(200);
  });

  it('SCIM deactivation also blocks the user at the next request', async () => {
    const u = await buildUser(app, t, { areas: { account: 'manage' } });
    await scimClient(app, t.scimToken)
      .patch(`/Users/${u.id}`, patchBody({ op: 'replace', value: { active: false } }))
      .expect(200);
    await request(app).get('/api/v1/users').set(u.auth).expect(403);
    const got = await request(app).get(`/api/v1/users/${u.id}`).set(t.admin).expect(200);
    assert.equal(got.body.status, 'suspended');
  });

  it('an invited user cannot be made active by PATCH: accepting the invitation does that', async () => {
    const inv = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'pending@example.com', role: 'member' })
      .expect(201);
    const res = await request(app)
      .patch(`/api/v1/users/${inv.body.user.id}`)
      .set(t.admin)
      .send({ status: 'active' })
      .expect(409);
    assert.equal(res.body.code, 'invitation_pending');
  });

  it('delete is permanent: 404 after, the seat freed, own keys dead, audit events kept and attributed', async () => {
    const u = await buildUser(app, t, { areas: { account: 'manage', knowledge: 'edit' } });
    const victim = await buildUser(app, t);
    // The user acts, so the log has events with them as actor.
    await request(app)
      .put(`/api/v1/users/${victim.id}/permissions`)
      .set(u.auth)
      .send({ areas: { knowledge: 'read' } })
      .expect(200);
    const before = (await request(app).get('/api/v1/tenant').set(t.admin).expect(200)).body.seats.used;
    await request(app).delete(`/api/v1/users/${u.id}`).set(t.admin).expect(204);
    await request(app).get(`/api/v1/users/${u.id}`).set(t.admin).expect(404);
    await request(app).delete(`/api/v1/users/${u.id}`).set(t.admin).expect(404);
    await request(app).get('/api/v1/users').set(u.auth).expect(401);
    assert.equal((await request(app).get('/api/v1/tenant').set(t.admin).expect(200)).body.seats.used, before - 1);
    const acted = await auditEvents(app, t, 'permissions.changed');
    assert.equal(acted[0]!.actor.id, u.id);
    assert.equal(acted[0]!.actor.type, 'user');
    assert.equal(acted[0]!.actor.display, u.email);
    const deleted = await auditEvents(app, t, 'user.deleted');
    assert.equal(deleted[0]!.entity.id, u.id);
    assert.equal(deleted[0]!.after, null);
    await scimClient(app, t.scimToken).get(`/Users/${u.id}`).expect(404);
  });

  describe('the last active admin', () => {
    it('cannot be demoted, suspended or deleted (409); with a second admin they can', async () => {
      const a = await buildUser(app, t, { role: 'admin' });
      for (const change of [{ role: 'member' }, { status: 'suspended' }]) {
        const res = await request(app).patch(`/api/v1/users/${a.id}`).set(t.admin).send(change).expect(409);
        assert.equal(res.body.code, 'last_admin');
      }
      await request(app).delete(`/api/v1/users/${a.id}`).set(t.admin).expect(409);
      const b = await buildUser(app, t, { role: 'admin' });
      await request(app).patch(`/api/v1/users/${a.id}`).set(b.auth).send({ role: 'member' }).expect(200);
      // b is now the last one, even for themselves.
      const self = await request(app).patch(`/api/v1/users/${b.id}`).set(b.auth).send({ role: 'member' }).expect(409);
      assert.equal(self.body.code, 'last_admin');
    });

    it('two admins demoting each other at once: one succeeds, one is refused', async () => {
      const a = await buildUser(app, t, { role: 'admin' });
      const b = await buildUser(app, t, { role: 'admin' });
      const [ra, rb] = await Promise.all([
        request(app).patch(`/api/v1/users/${b.id}`).set(t.admin).send({ role: 'member' }),
        request(app).patch(`/api/v1/users/${a.id}`).set(t.admin).send({ role: 'member' }),
      ]);
      assert.deepEqual([ra.status, rb.status].sort(), [200, 409]);
      const admins = await request(app)
        .get('/api/v1/users')
        .query({ role: 'admin', status: 'active' })
        .set(t.admin)
        .expect(200);
      assert.equal(admins.body.items.length, 1);
    });

    it('SCIM deactivating or deleting the last admin is applied and logged as tenant.no_active_admin', async () => {
      const a = await buildUser(app, t, { role: 'admin' });
      await scimClient(app, t.scimToken)
        .patch(`/Users/${a.id}`, patchBody({ op: 'replace', value: { active: false } }))
        .expect(200);
      const events = await auditEvents(app, t, 'tenant.no_active_admin');
      assert.equal(events.length, 1);
      assert.deepEqual(events[0]!.before, { lastAdmin: { id: a.id, email: a.email } });
      // The admin key still gets in (break-glass).
      await request(app).get('/api/v1/users').set(t.admin).expect(200);
      const b = await buildUser(app, t, { role: 'admin' });
      await scimClient(app, t.scimToken).delete(`/Users/${b.id}`).expect(204);
      assert.equal((await auditEvents(app, t, 'tenant.no_active_admin')).length, 2);
    });
  });

  it('SCIM can never set role, template, CRM access or permissions', async () => {
    const sc = scimClient(app, t.scimToken);
    const u = await sc
      .post(
        '/Users',
        oktaUser('sneaky@example.com', {
          roles: [{ value: 'admin' }],
          entitlements: [{ value: 'crm' }],
          role: 'admin',
          crmAccess: true,
          templateId: 'x',
        }),
      )
      .expect(201);
    await sc
      .patch(
        `/Users/${u.body.id}`,
        patchBody({ op: 'replace', path: 'roles', value: [{ value: 'admin', primary: true }] }),
      )
      .expect(200);
    const res = await request(app).get(`/api/v1/users/${u.body.id}`).set(t.admin).expect(200);
    assert.equal(res.body.role, 'member');
    assert.equal(res.body.crmAccess, false);
    assert.equal(res.body.templateId, null);
    const perms = await request(app).get(`/api/v1/users/${u.body.id}/permissions`).set(t.admin).expect(200);
    assert.deepEqual(perms.body.own, {});
    assert.ok(Object.values(perms.body.effective).every((a) => (a as { level: string }).level === 'none'));
  });

  it('members: a plain member reads only themselves; a user manager cannot touch admins or make admins', async () => {
    const plain = await buildUser(app, t, { areas: { knowledge: 'edit' } });
    const other = await buildUser(app, t);
    await request(app).get(`/api/v1/users/${plain.id}`).set(plain.auth).expect(200);
    await request(app).get(`/api/v1/users/${other.id}`).set(plain.auth).expect(403);
    await request(app).get('/api/v1/users').set(plain.auth).expect(403);
    await request(app).patch(`/api/v1/users/${plain.id}`).set(plain.auth).send({ role: 'admin' }).expect(403);

    const manager = await buildUser(app, t, { areas: { account: 'manage' } });
    const admin = await buildUser(app, t, { role: 'admin' });
    await request(app).get('/api/v1/users').set(manager.auth).expect(200);
    await request(app).patch(`/api/v1/users/${other.id}`).set(manager.auth).send({ status: 'suspended' }).expect(200);
    const promote = await request(app)
      .patch(`/api/v1/users/${other.id}`)
      .set(manager.auth)
      .send({ role: 'admin' })
      .expect(403);
    assert.equal(promote.body.code, 'admin_required');
    await request(app).patch(`/api/v1/users/${admin.id}`).set(manager.auth).send({ status: 'suspended' }).expect(403);
    await request(app).delete(`/api/v1/users/${admin.id}`).set(manager.auth).expect(403);
    const tpl = await templateId(app, t, 'Full developer');
    const beyond = await request(app)
      .patch(`/api/v1/users/${other.id}`)
      .set(manager.auth)
      .send({ templateId: tpl })
      .expect(403);
    assert.equal(beyond.body.code, 'beyond_own_permissions');
    // Keys are for admins only.
    await request(app).get('/api/v1/api-keys').set(manager.auth).expect(403);
    await request(app).get('/api/v1/api-keys').set(admin.auth).expect(200);
  });
});
