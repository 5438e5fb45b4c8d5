import assert from 'node:assert/strict';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { ERROR, GROUP, LIST, oktaUser, patchBody, scimClient } from '../../support/scim.js';

describe('SCIM: what Okta sends', () => {
  const app = useApp();

  it('runs the connection test, create, lookup, profile PUT, deactivate, reactivate', async () => {
    const t = await buildTenant();
    const scim = scimClient(app, t.scimToken);

    // Connection test: constant paging parameters, integers back.
    const users0 = await scim.get('/Users?startIndex=1&count=2').expect(200);
    assert.match(String(users0.headers['content-type']), /^application\/scim\+json/);
    assert.deepEqual(users0.body, { schemas: [LIST], totalResults: 0, startIndex: 1, itemsPerPage: 0, Resources: [] });
    await scim.get('/Groups?startIndex=1&count=100').expect(200);

    // Lookup before create: a miss is 200 with an empty ListResponse.
    const miss = await scim
      .get('/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100')
      .expect(200);
    assert.equal(miss.body.totalResults, 0);

    const created = await scim.post('/Users', oktaUser('test.user@okta.local')).expect(201);
    const u = created.body;
    assert.ok(u.id);
    assert.equal(u.userName, 'test.user@okta.local');
    assert.equal(u.active, true);
    assert.equal(u.password, undefined, 'password is never returned');
    assert.ok(!JSON.stringify(created.body).includes('1mz050nq'));
    assert.equal(u.groups, undefined, 'read-only groups from the POST is ignored');
    assert.equal(u.meta.resourceType, 'User');
    assert.equal(u.meta.location, `https://roster.test/scim/v2/Users/${u.id}`);
    assert.equal(created.headers.location, u.meta.location);
    assert.equal(created.headers.etag, u.meta.version);

    // Recreating the same user is a 409 with an Error body.
    const dup = await scim.post('/Users', oktaUser('test.user@okta.local')).expect(409);
    assert.deepEqual(dup.body.schemas, [ERROR]);
    assert.equal(dup.body.status, '409');
    assert.equal(dup.body.scimType, 'uniqueness');

    // Found by the same filter, case-insensitively.
    const hit = await scim
      .get('/Users?filter=userName%20eq%20%22TEST.USER%40OKTA.LOCAL%22&startIndex=1&count=100')
      .expect(200);
    assert.equal(hit.body.totalResults, 1);
    assert.equal(hit.body.Resources[0].id, u.id);
    for (const k of ['id', 'userName', 'active']) assert.ok(k in hit.body.Resources[0]);
    assert.equal(hit.body.Resources[0].name.familyName, 'User');

    // Profile update: GET then a full PUT carrying id and meta.
    const got = (await scim.get(`/Users/${u.id}`).expect(200)).body;
    const put = await scim
      .put(`/Users/${u.id}`, { ...got, name: { givenName: 'Changed', familyName: 'User' }, title: 'Engineer' })
      .expect(200);
    assert.equal(put.body.name.givenName, 'Changed');
    assert.equal(put.body.title, 'Engineer');
    assert.notEqual(put.body.meta.version, got.meta.version);

    // Deactivate with the path-less replace; the user remains findable.
    const off = await scim.patch(`/Users/${u.id}`, patchBody({ op: 'replace', value: { active: false } })).expect(200);
    assert.equal(off.body.active, false);
    const still = await scim.get(`/Users?filter=userName eq "test.user@okta.local"`).expect(200);
    assert.equal(still.body.Resources[0].active, false);

    const on = await scim.patch(`/Users/${u.id}`, patchBody({ op: 'replace', value: { active: true } })).expect(200);
    assert.equal(on.body.active, true);

    // Unknown id: 404 with detail.
    const nf = await scim.get('/Users/00000000-0000-0000-0000-000000000000').expect(404);
    assert.equal(nf.body.status, '404');
    assert.ok(nf.body.detail);
  });

  it('pushes a group: create, mixed remove+add, rename carrying id, replace members, delete', async () => {
    const t = await buildTenant();
    const scim = scimClient(app, t.scimToken);
    const a = (await scim.post('/Users', oktaUser('a@okta.local')).expect(201)).body;
    const b = (await scim.post('/Users', oktaUser('b@okta.local')).expect(201)).body;
    const c = (await scim.post('/Users', oktaUser('c@okta.local')).expect(201)).body;

    const g = (await scim.post('/Groups', { schemas: [GROUP], displayName: 'Test SCIMv2', members: [] }).expect(201))
      .body;
    assert.equal(g.displayName, 'Test SCIMv2');

    await scim
      .patch(
        `/Groups/${g.id}`,
        patchBody({ op: 'add', path: 'members', value: [{ value: a.id, display: 'a@okta.local' }, { value: b.id }] }),
      )
      .expect(204);
    await scim
      .patch(
        `/Groups/${g.id}`,
        patchBody(
          { op: 'remove', path: `members[value eq "${a.id}"]` },
          { op: 'add', path: 'members', value: [{ value: c.id, display: 'c@okta.local' }] },
        ),
      )
      .expect(204);
    let members = (await scim.get(`/Groups/${g.id}`).expect(200)).body.members
      .map((m: { value: string }) => m.value)
      .sort();
    assert.deepEqual(members, [b.id, c.id].sort());

    await scim
      .patch(`/Groups/${g.id}`, patchBody({ op: 'replace', value: { id: g.id, displayName: 'Renamed SCIMv2' } }))
      .expect(204);
    const renamed = (await scim.get(`/Groups/${g.id}`).expect(200)).body;
    assert.equal(renamed.displayName, 'Renamed SCIMv2');
    assert.equal(renamed.members.length, 2, 'a rename keeps the members');

    await scim
      .patch(
        `/Groups/${g.id}`,
        patchBody({ op: 'replace', path: 'members', value: [{ value: a.id }, { value: c.id }] }),
      )
      .expect(204);
    members = (await scim.get(`/Groups/${g.id}`).expect(200)).body.members
      .map((m: { value: string }) => m.value)
      .sort();
    assert.deepEqual(members, [a.id, c.id].sort());

    // The user shows the group it belongs to.
    const au = (await scim.get(`/Users/${a.id}`).expect(200)).body;
    assert.deepEqual(
      au.groups.map((x: { value: string }) => x.value),
      [g.id],
    );

    await scim.delete(`/Groups/${g.id}`).expect(204);
    await scim.get(`/Groups/${g.id}`).expect(404);
  });

  it('answers a bare filter value with 400 invalidFilter', async () => {
    const t = await buildTenant();
    const res = await scimClient(app, t.scimToken).get('/Users?filter=SOMEUSER').expect(400);
    assert.equal(res.body.scimType, 'invalidFilter');
  });

  it('answers POST to discovery endpoints with 405', async () => {
    const t = await buildTenant();
    const scim = scimClient(app, t.scimToken);
    for (const p of ['/ServiceProviderConfig', '/ResourceTypes', '/Schemas']) {
      const res = await scim.post(p, {}).expect(405);
      assert.equal(res.body.status, '405');
    }
  });
});
