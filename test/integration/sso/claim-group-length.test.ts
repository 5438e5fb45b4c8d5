import assert from 'node:assert/strict';
import request from 'supertest';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { useApp } from '../../support/harness.js';
import { buildUser } from '../../support/management.js';
import { samlSignIn, TestSamlIdp, type SamlConnectionView } from '../../support/saml.js';

/**
 * A claim group whose name fits its 255-character column but whose case-mapped key does not
 * ("İ" lower-cases to two characters) is skipped, the same on SQLite and MariaDB: the sign-in
 * succeeds with the other groups (MariaDB refused the key and failed the sign-in with 400).
 */
describe('SSO: claim group names longer than their column once case-mapped', () => {
  const app = useApp();
  let t: TestTenant;
  let conn: SamlConnectionView & { id: string };
  const idp = new TestSamlIdp();
  before(async () => {
    t = await buildTenant();
    conn = (
      await request(app)
        .post('/api/v1/sso-connections')
        .set(t.admin)
        .send({ protocol: 'saml', name: 'Okta', idpMetadataXml: idp.metadata(), attributes: { groups: 'groups' } })
        .expect(201)
    ).body;
  });

  it('are skipped, the others kept, and the sign-in succeeds', async () => {
    const user = await buildUser(app, t, { email: 'ada@example.com' });
    const grows = 'İ'.repeat(200);
    const astral = '𝒜'.repeat(200); // 400 UTF-16 units, 200 characters: it fits
    const tooLong = 'x'.repeat(256);
    const res = await samlSignIn(request.agent(app), conn, (id) =>
      idp.response({
        audience: conn.entityId,
        recipient: conn.acsUrl,
        nameId: 'ada@example.com',
        inResponseTo: id,
        attributes: { groups: ['Engineering', grows, astral, tooLong] },
      }),
    );
    assert.equal(res.status, 303, res.text);
    const groups = (
      await request(app).get(`/api/v1/users/${user.id}/idp-groups`).set(t.admin).expect(200)
    ).body.items.map((g: { displayName: string }) => g.displayName);
    assert.deepEqual(groups.sort(), ['Engineering', astral].sort());
  });
});
