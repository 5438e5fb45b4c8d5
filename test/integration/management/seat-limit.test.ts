import assert from 'node:assert/strict';
import request from 'supertest';
import { cli } from '../../../src/cli/roster.js';
import { testDbUrl } from '../../support/db.js';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { auditEvents, buildUser } from '../../support/management.js';
import { oktaUser, scimClient } from '../../support/scim.js';

async function roster(...argv: string[]) {
  let out = '';
  let err = '';
  const code = await cli(argv, { DATABASE_URL: await testDbUrl() }, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

/** Review F15: the seat limit is a plan limit, the operator's to set. */
describe('seat limit', () => {
  const app = useApp();

  it("refuses a tenant admin's PATCH /tenant with userLimit (403 naming the field) and changes nothing", async () => {
    const t = await buildTenant({ userLimit: 2 });
    const admin = await buildUser(app, t, { role: 'admin' });
    for (const auth of [t.admin, admin.auth]) {
      for (const body of [{ userLimit: null }, { userLimit: 1000 }, { userLimit: 2, jitProvisioning: true }]) {
        const res = await request(app).patch('/api/v1/tenant').set(auth).send(body).expect(403);
        assert.equal(res.body.code, 'operator_setting');
        assert.deepEqual(res.body.fields, [{ path: 'body.userLimit', message: "is the operator's to set" }]);
        assert.match(res.body.detail, /upgrade your plan/);
      }
    }
    const got = await request(app).get('/api/v1/tenant').set(admin.auth).expect(200);
    assert.equal(got.body.userLimit, 2);
    assert.equal(got.body.jitProvisioning, false);
    assert.deepEqual(got.body.seats, { used: 1, limit: 2 });
    assert.deepEqual(await auditEvents(app, t, 'tenant.updated'), []);
  });

  it('is set and lifted by the operator with roster tenant update, audited in the tenant', async () => {
    const t = await buildTenant({ userLimit: 1 });
    await scimClient(app, t.scimToken).post('/Users', oktaUser('first@example.com')).expect(201);
    assert.equal(
      (
        await scimClient(app, t.scimToken).post('/Users', oktaUser('second@example.com')).expect(403)
      ).body.detail.includes('limit'),
      true,
    );

    const raised = await roster('tenant', 'update', t.tenant.slug, '--user-limit', '3', '--json');
    assert.equal(raised.code, 0, raised.err);
    const obj = JSON.parse(raised.out);
    assert.deepEqual(obj, {
      tenant: { id: t.tenant.id, slug: t.tenant.slug, name: t.tenant.name, userLimit: 3 },
      previousUserLimit: 1,
    });
    assert.deepEqual((await request(app).get('/api/v1/tenant').set(t.admin).expect(200)).body.seats, {
      used: 1,
      limit: 3,
    });
    await scimClient(app, t.scimToken).post('/Users', oktaUser('second@example.com')).expect(201);

    const lifted = await roster('tenant', 'update', t.tenant.slug, '--user-limit', 'none');
    assert.equal(lifted.code, 0, lifted.err);
    assert.match(lifted.out, /user limit 3 → none/);
    assert.equal((await request(app).get('/api/v1/tenant').set(t.admin).expect(200)).body.userLimit, null);
    // Setting what is already set changes nothing and records nothing.
    assert.equal((await roster('tenant', 'update', t.tenant.slug, '--user-limit', 'none')).code, 0);

    const events = await auditEvents(app, t, 'tenant.updated');
    assert.deepEqual(
      events.map((e) => [e.before, e.after]),
      [
        [{ userLimit: 3 }, { userLimit: null }],
        [{ userLimit: 1 }, { userLimit: 3 }],
      ],
    );
    assert.deepEqual(events[0]!.actor, { type: 'system', id: null, display: 'operator (roster CLI)' });
  });

  it('answers bad arguments with exit 2 and an unknown tenant with exit 1, changing nothing', async () => {
    const t = await buildTenant({ userLimit: 5 });
    for (const argv of [
      ['tenant', 'update', t.tenant.slug],
      ['tenant', 'update', t.tenant.slug, '--user-limit', '-1'],
      ['tenant', 'update', t.tenant.slug, '--user-limit', 'unlimited'],
      ['tenant', 'update', '--user-limit', '4'],
      ['tenant', 'update', 'Bad Slug!', '--user-limit', '4'],
    ]) {
      const r = await roster(...argv);
      assert.equal(r.code, 2, `${argv.join(' ')} → ${r.code}: ${r.err}`);
      assert.match(r.err, /usage:/);
    }
    const missing = await roster('tenant', 'update', 'no-such-tenant-here', '--user-limit', '4');
    assert.equal(missing.code, 1);
    assert.match(missing.err, /no tenant with slug "no-such-tenant-here"/);
    assert.equal((await request(app).get('/api/v1/tenant').set(t.admin).expect(200)).body.userLimit, 5);
  });
});
