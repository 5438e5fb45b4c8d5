import assert from 'node:assert/strict';
import request from 'supertest';
import { testApp } from '../../support/app.js';
import { testDb } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { useApp, useTenant } from '../../support/harness.js';
import { auditEvents, buildUser, templateId } from '../../support/management.js';
import { oktaUser, scimClient } from '../../support/scim.js';
import { smtpServer } from '../../support/smtp.js';

type Smtp = Awaited<ReturnType<typeof smtpServer>>;

/** The invitation link in a received mail, as a path on the app. */
function linkIn(body: string): string {
  const m = /https:\/\/roster\.test(\/invite\/[A-Za-z0-9_%-]+)/.exec(body);
  assert.ok(m, `no invitation link in:\n${body}`);
  return m[1]!;
}

describe('invitations', () => {
  let smtp: Smtp;
  before(async () => {
    smtp = await smtpServer();
  });
  after(() => smtp.close());
  const app = useApp(() => ({ SMTP_URL: smtp.url, MAIL_FROM: 'Roster <roster@example.com>' }));
  const t = useTenant();

  it('invites: the user is invited, holds a seat, and the mail carries a link that activates them', async () => {
    const tpl = await templateId(app, t, 'Knowledge editor');
    const res = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({
        email: 'Ada@Example.com',
        role: 'member',
        templateId: tpl,
        crmAccess: true,
        permissions: { areas: { flows: 'read' } },
      })
      .expect(201);
    assert.equal(res.body.user.status, 'invited');
    assert.equal(res.body.user.source, 'invite');
    assert.equal(res.body.user.templateId, tpl);
    assert.equal(res.body.user.crmAccess, true);
    assert.deepEqual(res.body.seats, { used: 1, limit: null });
    assert.ok(
      Date.parse(res.body.invitation.expiresAt) - Date.now() > 6.9 * 86_400_000,
      'expires in 7 days by default',
    );

    const mail = await smtp.waitFor('Ada@Example.com');
    assert.match(mail.headers.get('subject')!, /invited/);
    assert.equal(mail.from, 'roster@example.com');
    const link = linkIn(mail.body);

    // Opening the link changes nothing: mail scanners follow links.
    const page = await request(app).get(link).expect(200);
    assert.match(page.text, /<form method="post">/);
    assert.match(page.text, /Ada@Example\.com/);
    let user = await request(app).get(`/api/v1/users/${res.body.user.id}`).set(t.admin).expect(200);
    assert.equal(user.body.status, 'invited');

    const accepted = await request(app).post(link).expect(200);
    assert.match(accepted.text, /Invitation accepted/);
    user = await request(app).get(`/api/v1/users/${res.body.user.id}`).set(t.admin).expect(200);
    assert.equal(user.body.status, 'active');
    const perms = await request(app).get(`/api/v1/users/${res.body.user.id}/permissions`).set(t.admin).expect(200);
    assert.deepEqual(perms.body.own, { flows: 'read' });
    assert.equal(perms.body.effective.knowledge.level, 'edit');

    // Used up: the link works once.
    await request(app).post(link).expect(404);
    const events = await auditEvents(app, t, 'user.invited');
    assert.equal(events.length, 1);
    assert.equal(events[0]!.entity.id, res.body.user.id);
    assert.equal((await auditEvents(app, t, 'user.invitation_accepted')).length, 1);
  });

  it('accepts through the JSON endpoint without an API key, and refuses unknown tokens', async () => {
    const res = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'json@example.com', role: 'member' })
      .expect(201);
    const token = decodeURIComponent(linkIn((await smtp.waitFor('json@example.com')).body).slice('/invite/'.length));
    await request(app)
      .post('/api/v1/invitations/accept')
      .send({ token: `${token}x` })
      .expect(404);
    const ok = await request(app).post('/api/v1/invitations/accept').send({ token }).expect(200);
    assert.equal(ok.body.user.id, res.body.user.id);
    assert.equal(ok.body.user.status, 'active');
    const bad = await request(app).post('/api/v1/invitations/accept').send({}).expect(400);
    assert.equal(bad.body.fields[0].path, 'body.token');
  });

  it('resend replaces the token: the old link stops working, the new one works', async () => {
    const res = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'again@example.com', role: 'member' })
      .expect(201);
    const first = linkIn((await smtp.waitFor('again@example.com', 1)).body);
    await request(app).post(`/api/v1/invitations/${res.body.user.id}/resend`).set(t.admin).expect(200);
    const second = linkIn((await smtp.waitFor('again@example.com', 2)).body);
    assert.notEqual(first, second);
    const old = await request(app).get(first).expect(404);
    assert.match(old.text, /unknown or was replaced/);
    await request(app).post(second).expect(200);
    // An active user has no invitation to resend.
    const conflict = await request(app).post(`/api/v1/invitations/${res.body.user.id}/resend`).set(t.admin).expect(409);
    assert.equal(conflict.body.code, 'not_invited');
    assert.equal((await auditEvents(app, t, 'user.invitation_resent')).length, 1);
  });

  it('an expired link is refused with a clear message', async () => {
    const res = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'late@example.com', role: 'member' })
      .expect(201);
    const link = linkIn((await smtp.waitFor('late@example.com')).body);
    const db = await testDb();
    await db
      .knex('invitations')
      .where({ tenant_id: t.tenant.id, user_id: res.body.user.id })
      .update({ expires_at: Date.now() - 1 });
    const page = await request(app).get(link).expect(400);
    assert.match(page.text, /expired/);
    const api = await request(app)
      .post('/api/v1/invitations/accept')
      .send({ token: decodeURIComponent(link.slice(8)) })
      .expect(400);
    assert.equal(api.body.code, 'invitation_expired');
  });

  it('the invitation lifetime follows INVITE_TTL', async () => {
    const short = await testApp({ SMTP_URL: smtp.url, INVITE_TTL: '2h' });
    const res = await request(short)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'ttl@example.com', role: 'member' })
      .expect(201);
    const ms = Date.parse(res.body.invitation.expiresAt) - Date.now();
    assert.ok(ms > 1.9 * 3_600_000 && ms <= 2 * 3_600_000, `expires in ${ms} ms`);
  });

  it('an email that already belongs to a user is 409, whatever its case', async () => {
    await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'dup@example.com', role: 'member' })
      .expect(201);
    const again = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'DUP@example.com', role: 'admin' })
      .expect(409);
    assert.equal(again.body.code, 'email_taken');
    await scimClient(app, t.scimToken).post('/Users', oktaUser('scim.person@example.com')).expect(201);
    await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'Scim.Person@example.com', role: 'member' })
      .expect(409);
  });

  it('refuses bad input with field-level problems and sends nothing', async () => {
    const res = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'x@example.com', role: 'owner', extra: 1 })
      .expect(400);
    assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
    const paths = res.body.fields.map((f: { path: string }) => f.path).sort();
    assert.deepEqual(paths, ['body.extra', 'body.role']);
    const notEmail = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'not-an-address', role: 'member' })
      .expect(400);
    assert.equal(notEmail.body.fields[0].path, 'body.email');
    const unknownTpl = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'y@example.com', role: 'member', templateId: 'nope' })
      .expect(422);
    assert.equal(unknownTpl.body.code, 'unknown_template');
    const adminNoCrm = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'z@example.com', role: 'admin', crmAccess: false })
      .expect(422);
    assert.equal(adminNoCrm.body.code, 'crm_always_on_for_admins');
    const inherit = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({
        email: 'w@example.com',
        role: 'member',
        permissions: { areas: { knowledge: 'read', 'knowledge.faqs': 'edit' } },
      })
      .expect(422);
    assert.match(inherit.body.detail, /Knowledge \(knowledge\)/);
    const used = await request(app).get('/api/v1/tenant').set(t.admin).expect(200);
    assert.equal(used.body.seats.used, 0);
    await new Promise((r) => setTimeout(r, 200));
    for (const address of ['x@example.com', 'y@example.com', 'z@example.com', 'w@example.com'])
      assert.deepEqual(smtp.to(address), []);
  });

  it('without SMTP the mail is kept in the outbox (and logged), so a newcomer can read it', async () => {
    const local = await testApp();
    const res = await request(local)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'outbox@example.com', role: 'member' })
      .expect(201);
    const db = await testDb();
    const row = await db
      .knex('mail_outbox')
      .where({ tenant_id: t.tenant.id, to_address: 'outbox@example.com' })
      .first();
    assert.ok(row);
    assert.match(String(row.text_body), /\/invite\/roster_invite_/);
    // The stored mail's link really accepts the invitation.
    await request(local)
      .post(linkIn(String(row.text_body)))
      .expect(200);
    const user = await request(local).get(`/api/v1/users/${res.body.user.id}`).set(t.admin).expect(200);
    assert.equal(user.body.status, 'active');
  });

  it('a member who may manage users invites within their own permissions, never an admin or beyond', async () => {
    const manager = await buildUser(app, t, { areas: { account: 'manage', knowledge: 'read' } });
    await request(app)
      .post('/api/v1/invitations')
      .set(manager.auth)
      .send({ email: 'ok@example.com', role: 'member', permissions: { areas: { knowledge: 'read' } } })
      .expect(201);
    const admin = await request(app)
      .post('/api/v1/invitations')
      .set(manager.auth)
      .send({ email: 'boss@example.com', role: 'admin' })
      .expect(403);
    assert.equal(admin.body.code, 'admin_required');
    const beyond = await request(app)
      .post('/api/v1/invitations')
      .set(manager.auth)
      .send({ email: 'more@example.com', role: 'member', permissions: { areas: { knowledge: 'edit' } } })
      .expect(403);
    assert.equal(beyond.body.code, 'beyond_own_permissions');
    const crm = await request(app)
      .post('/api/v1/invitations')
      .set(manager.auth)
      .send({ email: 'crm@example.com', role: 'member', crmAccess: true })
      .expect(403);
    assert.equal(crm.body.code, 'beyond_own_permissions');
    const plain = await buildUser(app, t, { areas: { knowledge: 'edit' } });
    const no = await request(app)
      .post('/api/v1/invitations')
      .set(plain.auth)
      .send({ email: 'nope@example.com', role: 'member' })
      .expect(403);
    assert.equal(no.body.code, 'not_allowed');
  });
});

describe('seats', () => {
  it('shows used/limit, refuses invites and SCIM creates at the limit, and frees a seat on delete', async () => {
    const app = await testApp();
    const t = await buildTenant({ userLimit: 2 });
    const a = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'a@example.com', role: 'member' })
      .expect(201);
    assert.deepEqual(a.body.seats, { used: 1, limit: 2 });
    await scimClient(app, t.scimToken).post('/Users', oktaUser('b@example.com')).expect(201);
    const full = await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'c@example.com', role: 'member' })
      .expect(403);
    assert.equal(full.body.code, 'seat_limit_reached');
    assert.match(full.body.detail, /limit of 2/);
    assert.deepEqual(full.body.seats, { used: 2, limit: 2 });
    const scim = await scimClient(app, t.scimToken).post('/Users', oktaUser('d@example.com')).expect(403);
    assert.match(scim.body.detail, /limit of 2/);
    assert.deepEqual((await request(app).get('/api/v1/tenant').set(t.admin).expect(200)).body.seats, {
      used: 2,
      limit: 2,
    });

    await request(app).delete(`/api/v1/users/${a.body.user.id}`).set(t.admin).expect(204);
    assert.deepEqual((await request(app).get('/api/v1/tenant').set(t.admin).expect(200)).body.seats, {
      used: 1,
      limit: 2,
    });
    await request(app)
      .post('/api/v1/invitations')
      .set(t.admin)
      .send({ email: 'c@example.com', role: 'member' })
      .expect(201);
  });

  it('concurrent invites at the edge never exceed the limit', async function () {
    this.timeout(30000);
    const app = await testApp();
    const t = await buildTenant({ userLimit: 5 });
    await scimClient(app, t.scimToken).post('/Users', oktaUser('first@example.com')).expect(201);
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        request(app)
          .post('/api/v1/invitations')
          .set(t.admin)
          .send({ email: `edge${i}@example.com`, role: 'member' }),
      ),
    );
    const statuses = results.map((r) => r.status).sort();
    assert.equal(statuses.filter((s) => s === 201).length, 4, `statuses: ${statuses.join(',')}`);
    assert.ok(
      statuses.filter((s) => s !== 201).every((s) => s === 403),
      `statuses: ${statuses.join(',')}`,
    );
    const db = await testDb();
    const n = await db.knex('users').where({ tenant_id: t.tenant.id }).count({ n: '*' }).first();
    assert.equal(Number(n!.n), 5);
  });
});
