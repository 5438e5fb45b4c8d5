import assert from 'node:assert/strict';
import { buildTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { ENTERPRISE, GROUP, patchBody, scimClient, USER } from '../../support/scim.js';

const MS_GROUP = 'http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group';

function entraUser(userName: string, externalId: string) {
  return {
    schemas: [USER, ENTERPRISE],
    externalId,
    userName,
    active: true,
    emails: [{ primary: true, type: 'work', value: userName }],
    meta: { resourceType: 'User' },
    name: { formatted: 'givenName familyName', familyName: 'familyName', givenName: 'givenName' },
    roles: [],
    addresses: null,
    phoneNumbers: [{ type: 'work', value: '55555555555' }],
    title: null,
  };
}

describe('SCIM: what Microsoft Entra ID sends', () => {
  const app = useApp();

  it('runs the connection test, create, filters, default-dialect PATCH, manager, deactivate, delete', async () => {
    const t = await buildTenant();
    const scim = scimClient(app, t.scimToken);

    const probe = await scim.get('/Users?filter=externalId+eq+%22a9d1f1b2-4e68-4b1e-9f0a-1c3d5e7f9b2d%22').expect(200);
    assert.equal(probe.body.totalResults, 0);
    assert.deepEqual(probe.body.Resources, []);

    const u = (await scim.post('/Users', entraUser('Test_User_ab6490ee@contoso.com', 'johnwong')).expect(201)).body;
    assert.equal(u.phoneNumbers[0].value, '55555555555', 'stored as sent');
    assert.equal(u.title, undefined);
    const mgr = (await scim.post('/Users', entraUser('boss@contoso.com', 'boss')).expect(201)).body;

    // Lookups Entra makes: externalId (quoted, and unquoted as in its docs), userName, work email.
    for (const f of [
      'externalId+eq+%22johnwong%22',
      'externalId eq johnwong',
      'userName eq "test_user_ab6490ee@contoso.com"',
      'emails[type eq "work"].value eq "Test_User_ab6490ee@contoso.com"',
    ]) {
      const r = await scim.get(`/Users?filter=${f.includes(' ') ? encodeURIComponent(f) : f}`).expect(200);
      assert.equal(r.body.totalResults, 1, f);
      assert.equal(r.body.Resources[0].id, u.id, f);
    }
    // externalId is case-exact.
    assert.equal((await scim.get('/Users?filter=externalId eq "JOHNWONG"').expect(200)).body.totalResults, 0);

    // Default (non-compliant) dialect: capitalised ops, "False" strings, one op per path.
    const patched = await scim
      .patch(
        `/Users/${u.id}`,
        patchBody(
          { op: 'Replace', path: 'displayName', value: 'Babs Jensen' },
          { op: 'Replace', path: 'emails[type eq "work"].value', value: 'babs@contoso.com' },
          { op: 'Replace', path: 'name.givenName', value: 'Barbara' },
          { op: 'Replace', path: `${ENTERPRISE}:employeeNumber`, value: '701984' },
          { op: 'Add', path: 'nickName', value: 'Babs' },
          { op: 'Add', path: `${ENTERPRISE}:manager`, value: mgr.id },
        ),
      )
      .expect(200);
    assert.equal(patched.body.displayName, 'Babs Jensen');
    assert.equal(patched.body.emails[0].value, 'babs@contoso.com');
    assert.equal(patched.body.name.givenName, 'Barbara');
    assert.equal(patched.body[ENTERPRISE].employeeNumber, '701984');
    assert.deepEqual(patched.body[ENTERPRISE].manager.value, mgr.id);

    // Compliant dialect: one path-less replace with dotted and URN keys.
    const compliant = await scim
      .patch(
        `/Users/${u.id}`,
        patchBody({ op: 'replace', value: { 'name.familyName': 'Jensen', [`${ENTERPRISE}:department`]: 'Sales' } }),
      )
      .expect(200);
    assert.equal(compliant.body.name.familyName, 'Jensen');
    assert.equal(compliant.body[ENTERPRISE].department, 'Sales');
    const byDept = await scim
      .get(`/Users?filter=${encodeURIComponent(`${ENTERPRISE}:department eq "sales"`)}`)
      .expect(200);
    assert.equal(byDept.body.totalResults, 1);

    // Manager removed.
    const noMgr = await scim
      .patch(`/Users/${u.id}`, patchBody({ op: 'Remove', path: `${ENTERPRISE}:manager` }))
      .expect(200);
    assert.equal(noMgr.body[ENTERPRISE].manager, undefined);

    // Disable with the string "False"; the user is still found by filters.
    const off = await scim
      .patch(`/Users/${u.id}`, patchBody({ op: 'Replace', path: 'active', value: 'False' }))
      .expect(200);
    assert.equal(off.body.active, false);
    assert.equal(
      (await scim.get('/Users?filter=externalId eq "johnwong"').expect(200)).body.Resources[0].active,
      false,
    );

    await scim.delete(`/Users/${u.id}`).expect(204);
    await scim.get(`/Users/${u.id}`).expect(404);
  });

  it('creates a group with the Microsoft schema, adds with $ref null, removes listed members only, renames', async () => {
    const t = await buildTenant();
    const scim = scimClient(app, t.scimToken);
    const ids: string[] = [];
    for (const n of ['u1', 'u2', 'u3'])
      ids.push((await scim.post('/Users', entraUser(`${n}@contoso.com`, n)).expect(201)).body.id);

    const g = (
      await scim
        .post('/Groups', {
          schemas: [GROUP, MS_GROUP],
          externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159',
          displayName: 'displayName',
          meta: { resourceType: 'Group' },
        })
        .expect(201)
    ).body;
    assert.deepEqual(g.schemas, [GROUP]);

    await scim
      .patch(
        `/Groups/${g.id}`,
        patchBody({ op: 'Add', path: 'members', value: ids.map((value) => ({ $ref: null, value })) }),
      )
      .expect(204);
    await scim
      .patch(`/Groups/${g.id}`, patchBody({ op: 'Remove', path: 'members', value: [{ value: ids[0] }] }))
      .expect(204);
    const members = (await scim.get(`/Groups/${g.id}`).expect(200)).body.members
      .map((m: { value: string }) => m.value)
      .sort();
    assert.deepEqual(members, [ids[1], ids[2]].sort(), 'only the listed member was removed');

    // Every group read excludes members; such a read never includes them.
    const byName = await scim
      .get(`/Groups?excludedAttributes=members&filter=${encodeURIComponent('displayName eq "displayName"')}`)
      .expect(200);
    assert.equal(byName.body.totalResults, 1);
    assert.equal(byName.body.Resources[0].members, undefined);
    const one = await scim.get(`/Groups/${g.id}?excludedAttributes=members`).expect(200);
    assert.equal(one.body.members, undefined);
    assert.equal(one.body.displayName, 'displayName');

    await scim
      .patch(`/Groups/${g.id}`, patchBody({ op: 'Replace', path: 'displayName', value: 'New Name' }))
      .expect(204);
    assert.equal(
      (await scim.get(`/Groups/${g.id}?excludedAttributes=members`).expect(200)).body.displayName,
      'New Name',
    );
    await scim.delete(`/Groups/${g.id}`).expect(204);
  });

  it('accepts null attributes, "True" strings and mixed-case attribute names on create', async () => {
    const t = await buildTenant();
    const scim = scimClient(app, t.scimToken);
    const r = await scim
      .post('/Users', {
        schemas: [USER, ENTERPRISE],
        UserName: 'mixed@contoso.com',
        Active: 'True',
        emails: [{ Primary: true, Value: 'mixed@contoso.com', Type: 'work' }],
        [ENTERPRISE]: { Department: 'Ops', Manager: { Value: 'someone' } },
        nickName: null,
      })
      .expect(201);
    assert.equal(r.body.userName, 'mixed@contoso.com');
    assert.equal(r.body.active, true);
    assert.equal(r.body.emails[0].primary, true);
    assert.equal(r.body[ENTERPRISE].department, 'Ops');
    assert.equal(r.body[ENTERPRISE].manager.value, 'someone');
    assert.ok(!('nickName' in r.body));
  });
});
