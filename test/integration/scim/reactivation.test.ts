import assert from 'node:assert/strict';
import request from 'supertest';
import { useApp, useTenant } from '../../support/harness.js';
import { buildUser, type TestUser } from '../../support/management.js';
import { oktaUser, patchBody, scimClient } from '../../support/scim.js';

/**
 * Review F14: an admin may reactivate someone the IdP deactivated, but the IdP stays
 * authoritative for its users: its next `active: false` applies again.
 */
describe('SCIM: reactivation by an admin does not outlast the IdP', () => {
  const app = useApp();
  const t = useTenant();
  let person: TestUser;
  beforeEach(async () => {
    person = await buildUser(app, t);
  });

  const scim = () => scimClient(app, t.scimToken);
  const status = async () =>
    (await request(app).get(`/api/v1/users/${person.id}`).set(t.admin).expect(200)).body.status as string;
  const keyWorks = async () => (await request(app).get('/api/v1/me').set(person.auth)).status === 200;

  async function reactivate() {
    assert.equal(await status(), 'suspended');
    await request(app).patch(`/api/v1/users/${person.id}`).set(t.admin).send({ status: 'active' }).expect(200);
    assert.equal(await status(), 'active');
    assert.ok(await keyWorks());
    // SCIM shows what Roster does, so the IdP sees the difference.
    assert.equal((await scim().get(`/Users/${person.id}`).expect(200)).body.active, true);
  }

  const idpShapes: [string, () => request.Test][] = [
    ['Okta PATCH', () => scim().patch(`/Users/${person.id}`, patchBody({ op: 'replace', value: { active: false } }))],
    [
      'Okta PUT',
      () => scim().put(`/Users/${person.id}`, oktaUser(person.email, { externalId: 'okta-1', active: false })),
    ],
    [
      'Entra PATCH',
      () => scim().patch(`/Users/${person.id}`, patchBody({ op: 'Replace', path: 'active', value: 'False' })),
    ],
  ];

  for (const [first, deactivate] of idpShapes) {
    for (const [again, redeactivate] of idpShapes) {
      it(`${first}, admin reactivation, then ${again} with active false suspends again`, async () => {
        await deactivate().expect(200);
        await reactivate();
        await redeactivate().expect(200);
        assert.equal(await status(), 'suspended');
        assert.equal(await keyWorks(), false);
      });
    }
  }

  it('keeps a reactivated user active through routine IdP updates that say active', async () => {
    await idpShapes[0]![1]().expect(200);
    await reactivate();
    await scim()
      .put(
        `/Users/${person.id}`,
        oktaUser(person.email, { externalId: 'okta-1', displayName: 'Renamed', active: true }),
      )
      .expect(200);
    await scim()
      .patch(`/Users/${person.id}`, patchBody({ op: 'Replace', path: 'displayName', value: 'Renamed again' }))
      .expect(200);
    assert.equal(await status(), 'active');
  });

  it("keeps an admin's suspension through the IdP's routine active:true (unchanged behaviour)", async () => {
    await request(app).patch(`/api/v1/users/${person.id}`).set(t.admin).send({ status: 'suspended' }).expect(200);
    await scim()
      .put(`/Users/${person.id}`, oktaUser(person.email, { externalId: 'okta-1', active: true }))
      .expect(200);
    assert.equal(await status(), 'suspended');
  });
});
