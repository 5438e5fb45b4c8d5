import assert from 'node:assert/strict';
import request from 'supertest';
import { testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';

/** Review F20: resending voids the previous link, so it is a change to the invited user. */
describe('invitation resend', () => {
  const app = useApp();

  const tokenHash = async (userId: string) =>
    (await (await testDb()).knex('invitations').where({ user_id: userId }).first()).token_hash as string;

  it("refuses a member user manager resending an invited admin's invitation (403), leaving the link valid", async () => {
    const t = await buildTenant();
    const helpdesk = await buildUser(app, t, { areas: { account: 'manage' } });
    const admin = (
      await request(app)
        .post('/api/v1/invitations')
        .set(t.admin)
        .send({ email: 'boss@example.com', role: 'admin' })
        .expect(201)
    ).body.user.id;
    const member = (
      await request(app)
        .post('/api/v1/invitations')
        .set(t.admin)
        .send({ email: 'peer@example.com', role: 'member' })
        .expect(201)
    ).body.user.id;
    const before = await tokenHash(admin);

    const res = await request(app).post(`/api/v1/invitations/${admin}/resend`).set(helpdesk.auth).expect(403);
    assert.equal(res.body.code, 'admin_required');
    assert.match(res.body.detail, /only admins may resend the invitation of an admin/);
    assert.equal(await tokenHash(admin), before);
    assert.deepEqual(await auditEvents(app, t, 'user.invitation_resent'), []);

    // A member's invitation is still theirs to resend, and an admin resends anyone's.
    await request(app).post(`/api/v1/invitations/${member}/resend`).set(helpdesk.auth).expect(200);
    await request(app).post(`/api/v1/invitations/${admin}/resend`).set(t.admin).expect(200);
    assert.notEqual(await tokenHash(admin), before);
  });
});
