import assert from 'node:assert/strict';
import { testDb } from '../../support/db.js';
import { testApp } from '../../support/app.js';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { ENTERPRISE, GROUP, oktaUser, patchBody, scimClient, USER } from '../../support/scim.js';

const user = (userName: string, extra: Record<string, unknown> = {}) => ({ schemas: [USER], userName, ...extra });

describe('SCIM behaviour', () => {
  const app = useApp();

  it('treats userNames as one name after width mapping, case mapping and NFC, without folding accents', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    await scim.post('/Users', user('bob')).expect(201);
    for (const same of ['Bob', 'BOB', 'ＢＯＢ'])
      assert.equal((await scim.post('/Users', user(same)).expect(409)).body.scimType, 'uniqueness', same);
    await scim.post('/Users', user('ren\u00e9')).expect(201);
    await scim.post('/Users', user('rene\u0301')).expect(409);
    await scim.post('/Users', user('rene')).expect(201);
    for (const bad of [' bob', 'bob ', 'b\u200bob'])
      assert.equal(
        (await scim.post('/Users', user(bad)).expect(400)).body.scimType,
        'invalidValue',
        JSON.stringify(bad),
      );
    assert.equal(
      (await scim.get(`/Users?filter=${encodeURIComponent('userName eq "ＢＯＢ"')}`).expect(200)).body.totalResults,
      1,
    );
  });

  it('rejects a missing userName and a duplicate group displayName', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    await scim.post('/Users', { schemas: [USER], name: { givenName: 'x' } }).expect(400);
    await scim.post('/Groups', { schemas: [GROUP], displayName: 'Sales' }).expect(201);
    assert.equal(
      (await scim.post('/Groups', { schemas: [GROUP], displayName: 'sales' }).expect(409)).body.scimType,
      'uniqueness',
    );
  });

  it('honours ETags: If-None-Match → 304, stale If-Match → 412 and nothing changes', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const created = await scim.post('/Users', user('etag@x.io')).expect(201);
    const etag = String(created.headers.etag);
    assert.match(etag, /^W\/"\d+"$/);
    await scim.get(`/Users/${created.body.id}`, { 'If-None-Match': etag }).expect(304);
    await scim
      .patch(`/Users/${created.body.id}`, patchBody({ op: 'replace', path: 'title', value: 'A' }), { 'If-Match': etag })
      .expect(200);
    const stale = await scim
      .patch(`/Users/${created.body.id}`, patchBody({ op: 'replace', path: 'title', value: 'B' }), { 'If-Match': etag })
      .expect(412);
    assert.equal(stale.body.status, '412');
    assert.equal((await scim.get(`/Users/${created.body.id}`).expect(200)).body.title, 'A');
    await scim.delete(`/Users/${created.body.id}`, { 'If-Match': etag }).expect(412);
    const g = await scim.post('/Groups', { schemas: [GROUP], displayName: 'E' }).expect(201);
    await scim
      .put(`/Groups/${g.body.id}`, { schemas: [GROUP], displayName: 'E2' }, { 'If-Match': 'W/"99"' })
      .expect(412);
  });

  it('pages with integer fields, a stable order, count=0 and clamping', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push((await scim.post('/Users', user(`p${i}@x.io`)).expect(201)).body.id);
    const seen: string[] = [];
    for (let page = 0; page < 3; page++) {
      const r = await scim.get(`/Users?startIndex=${page * 5 + 1}&count=5`).expect(200);
      assert.equal(r.body.startIndex, page * 5 + 1);
      assert.equal(r.body.totalResults, 12);
      assert.equal(r.body.itemsPerPage, page < 2 ? 5 : 2);
      seen.push(...r.body.Resources.map((x: { id: string }) => x.id));
    }
    assert.deepEqual(seen, ids, 'every user once, in a stable order');
    // A client that jumps straight to a page gets the same rows as one that paged there.
    const jump = await scimClient(app, (await buildTenant()).scimToken)
      .get('/Users?startIndex=6&count=5')
      .expect(200);
    assert.equal(jump.body.totalResults, 0);
    const again = await scim.get('/Users?startIndex=6&count=5').expect(200);
    assert.deepEqual(
      again.body.Resources.map((x: { id: string }) => x.id),
      ids.slice(5, 10),
    );
    const zero = await scim.get('/Users?count=0').expect(200);
    assert.equal(zero.body.totalResults, 12);
    assert.deepEqual(zero.body.Resources, []);
    const clamped = await scim.get('/Users?count=5000').expect(200);
    assert.equal(clamped.body.itemsPerPage, 12);
    const sorted = await scim.get('/Users?sortBy=userName&sortOrder=descending&count=3').expect(200);
    assert.deepEqual(
      sorted.body.Resources.map((x: { userName: string }) => x.userName),
      ['p9@x.io', 'p8@x.io', 'p7@x.io'],
    );
  });

  it('projects attributes and excludedAttributes on reads and on write responses', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const c = await scim
      .post('/Users?attributes=userName', user('proj@x.io', { title: 'T', name: { givenName: 'G', familyName: 'F' } }))
      .expect(201);
    assert.deepEqual(Object.keys(c.body).sort(), ['id', 'schemas', 'userName']);
    const r = await scim.get(`/Users/${c.body.id}?attributes=name.familyName`).expect(200);
    assert.deepEqual(r.body.name, { familyName: 'F' });
    const e = await scim.get(`/Users/${c.body.id}?excludedAttributes=title,meta`).expect(200);
    assert.equal(e.body.title, undefined);
    assert.equal(e.body.meta, undefined);
    assert.equal(e.body.userName, 'proj@x.io');
    const s = await scim
      .post('/Users/.search', {
        schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'],
        filter: 'title eq "t"',
        attributes: ['userName'],
      })
      .expect(200);
    assert.equal(s.body.totalResults, 1);
    assert.deepEqual(Object.keys(s.body.Resources[0]).sort(), ['id', 'schemas', 'userName']);
  });

  it('refuses unknown member ids with 400 invalidValue listing them, applying nothing', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const a = (await scim.post('/Users', user('m1@x.io')).expect(201)).body;
    const g = (await scim.post('/Groups', { schemas: [GROUP], displayName: 'G' }).expect(201)).body;
    const bad = await scim
      .patch(
        `/Groups/${g.id}`,
        patchBody({ op: 'add', path: 'members', value: [{ value: a.id }, { value: 'nope-1' }, { value: 'nope-2' }] }),
      )
      .expect(400);
    assert.equal(bad.body.scimType, 'invalidValue');
    assert.match(bad.body.detail, /nope-1/);
    assert.match(bad.body.detail, /nope-2/);
    assert.equal((await scim.get(`/Groups/${g.id}`).expect(200)).body.members.length, 0);
    // Adding a present member and removing an absent one are no-ops.
    await scim
      .patch(`/Groups/${g.id}`, patchBody({ op: 'add', path: 'members', value: [{ value: a.id }] }))
      .expect(204);
    await scim
      .patch(`/Groups/${g.id}`, patchBody({ op: 'add', path: 'members', value: [{ value: a.id }] }))
      .expect(204);
    await scim.patch(`/Groups/${g.id}`, patchBody({ op: 'remove', path: 'members[value eq "absent"]' })).expect(204);
    assert.equal((await scim.get(`/Groups/${g.id}`).expect(200)).body.members.length, 1);
  });

  it('loses nothing when PATCHes of one group run concurrently', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) ids.push((await scim.post('/Users', user(`c${i}@x.io`)).expect(201)).body.id);
    const g = (await scim.post('/Groups', { schemas: [GROUP], displayName: 'Concurrent' }).expect(201)).body;
    await Promise.all(
      ids.map((id, i) =>
        scim
          .patch(
            `/Groups/${g.id}`,
            patchBody(
              { op: 'replace', value: { id: g.id, displayName: 'Concurrent' } },
              { op: 'add', path: 'members', value: [{ value: id, display: `c${i}` }] },
            ),
          )
          .expect(204),
      ),
    );
    assert.equal((await scim.get(`/Groups/${g.id}`).expect(200)).body.members.length, 20);
  });

  it('refuses SCIM creates at the seat limit with 403 naming the limit', async () => {
    const t = await buildTenant({ userLimit: 2 });
    const scim = scimClient(app, t.scimToken);
    await scim.post('/Users', user('s1@x.io')).expect(201);
    const two = (await scim.post('/Users', user('s2@x.io')).expect(201)).body;
    const r = await scim.post('/Users', user('s3@x.io')).expect(403);
    assert.match(r.body.detail, /limit of 2/);
    await scim.delete(`/Users/${two.id}`).expect(204);
    await scim.post('/Users', user('s3@x.io')).expect(201);
  });

  it('never turns SCIM roles, entitlements or any attribute into account roles or permissions', async () => {
    const t = await buildTenant();
    const scim = scimClient(app, t.scimToken);
    const body = oktaUser('roles@x.io', {
      roles: [{ value: 'admin', primary: true }],
      entitlements: [{ value: 'crm' }],
      role: 'admin',
      crmAccess: true,
      templateId: 'x',
    });
    const u = (await scim.post('/Users', body).expect(201)).body;
    assert.deepEqual(u.roles, [{ value: 'admin', primary: true }], 'kept as directory data');
    await scim
      .patch(
        `/Users/${u.id}`,
        patchBody(
          { op: 'add', path: 'roles', value: [{ value: 'Owner' }] },
          { op: 'replace', value: { role: 'admin' } },
        ),
      )
      .expect(200);
    await scim.put(`/Users/${u.id}`, { ...body, roles: [{ value: 'superuser' }] }).expect(200);
    const row = await (await testDb()).knex('users').where({ tenant_id: t.tenant.id, id: u.id }).first();
    assert.equal(row.role, 'member');
    assert.equal(row.template_id, null);
    assert.ok(!row.crm_access);
  });

  it('records one audit event per write, attributed to the SCIM token, and none for a failed write', async () => {
    const t = await buildTenant();
    const scim = scimClient(app, t.scimToken);
    const db = await testDb();
    const u = (await scim.post('/Users', user('audit@x.io')).expect(201)).body;
    await scim.patch(`/Users/${u.id}`, patchBody({ op: 'replace', path: 'active', value: false })).expect(200);
    const g = (await scim.post('/Groups', { schemas: [GROUP], displayName: 'Audited' }).expect(201)).body;
    await scim
      .patch(`/Groups/${g.id}`, patchBody({ op: 'add', path: 'members', value: [{ value: u.id }] }))
      .expect(204);
    await scim.post('/Users', user('AUDIT@x.io')).expect(409);
    await scim.delete(`/Users/${u.id}`).expect(204);
    const events = await db.knex('audit_events').where({ tenant_id: t.tenant.id }).orderBy('id');
    assert.deepEqual(
      events.map((e) => e.event),
      [
        'scim.user.created',
        'scim.user.deactivated',
        'scim.group.created',
        'scim.group.members_added',
        'scim.user.deleted',
      ],
    );
    for (const e of events) assert.equal(e.actor_type, 'scim_token');
    assert.deepEqual(JSON.parse(events[3].after_json).membersAdded, [u.id]);
    assert.deepEqual(JSON.parse(events[1].after_json), { active: false });
  });

  it("keeps tenants apart: another tenant's ids are 404 and its users are never listed", async () => {
    const a = scimClient(app, (await buildTenant()).scimToken);
    const b = scimClient(app, (await buildTenant()).scimToken);
    const u = (await a.post('/Users', user('iso@x.io')).expect(201)).body;
    const g = (await a.post('/Groups', { schemas: [GROUP], displayName: 'Iso' }).expect(201)).body;
    await b.get(`/Users/${u.id}`).expect(404);
    await b.patch(`/Users/${u.id}`, patchBody({ op: 'replace', path: 'title', value: 'x' })).expect(404);
    await b.delete(`/Groups/${g.id}`).expect(404);
    assert.equal((await b.get('/Users?filter=userName eq "iso@x.io"').expect(200)).body.totalResults, 0);
    const bg = (await b.post('/Groups', { schemas: [GROUP], displayName: 'Iso' }).expect(201)).body;
    assert.equal(
      (
        await b
          .patch(`/Groups/${bg.id}`, patchBody({ op: 'add', path: 'members', value: [{ value: u.id }] }))
          .expect(400)
      ).body.scimType,
      'invalidValue',
    );
    await b.post('/Users', user('iso@x.io')).expect(201);
  });

  it('answers 429 with Retry-After when a token exceeds its rate, unless the tenant is exempt', async () => {
    const limited = await testApp({ SCIM_RATE_LIMIT: '2' });
    const t = await buildTenant();
    const scim = scimClient(limited, t.scimToken);
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await scim.get('/ServiceProviderConfig')).status);
    assert.ok(statuses.includes(429), statuses.join(','));
    const r = await scim.get('/ServiceProviderConfig');
    assert.equal(r.status, 429);
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.equal(r.body.status, '429');
    await (await testDb()).knex('tenants').where({ id: t.tenant.id }).update({ rate_limit_disabled: true });
    await scim.get('/ServiceProviderConfig').expect(200);
  });

  it('serves discovery that describes what exists, and /Me as 501', async () => {
    const scim = scimClient(app, (await buildTenant()).scimToken);
    const spc = (await scim.get('/ServiceProviderConfig').expect(200)).body;
    assert.equal(spc.patch.supported, true);
    assert.equal(spc.filter.maxResults, 1000);
    assert.equal(spc.etag.supported, true);
    assert.equal(spc.changePassword.supported, false);
    const rts = (await scim.get('/ResourceTypes').expect(200)).body;
    assert.deepEqual(
      rts.Resources.map((x: { name: string }) => x.name),
      ['User', 'Group'],
    );
    assert.equal(rts.Resources[0].schemaExtensions[0].schema, ENTERPRISE);
    const schemas = (await scim.get('/Schemas').expect(200)).body;
    assert.ok(schemas.Resources.every((s: { id: string; attributes: unknown[] }) => s.id && s.attributes.length));
    const group = (await scim.get('/Schemas/urn:ietf:params:scim:schemas:core:2.0:Group').expect(200)).body;
    assert.ok(group.attributes.some((a: { name: string }) => a.name === 'members'));
    assert.equal((await scim.get('/Me').expect(501)).body.status, '501');
  });
});

describe('SCIM root search', () => {
  it('searches users and groups together, and a type-specific filter selects only that type', async () => {
    const app = await testApp();
    const scim = scimClient(app, (await buildTenant()).scimToken);
    await scim.post('/Users', { schemas: [USER], userName: 'root@x.io' }).expect(201);
    await scim.post('/Groups', { schemas: [GROUP], displayName: 'Root group' }).expect(201);
    const all = await scim
      .post('/.search', { schemas: ['urn:ietf:params:scim:api:messages:2.0:SearchRequest'] })
      .expect(200);
    assert.equal(all.body.totalResults, 2);
    assert.deepEqual(
      all.body.Resources.map((x: { meta: { resourceType: string } }) => x.meta.resourceType),
      ['User', 'Group'],
    );
    const users = await scim.post('/.search', { filter: 'userName sw "root"' }).expect(200);
    assert.equal(users.body.totalResults, 1);
    assert.equal((await scim.post('/.search', { filter: 'nope eq "x"' }).expect(400)).body.scimType, 'invalidFilter');
  });
});
