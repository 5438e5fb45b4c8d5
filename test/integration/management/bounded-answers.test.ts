import assert from 'node:assert/strict';
import request from 'supertest';
import type { Express } from 'express';
import { HOLDERS_SAMPLE } from '../../../src/provisioning/role-templates.js';
import { testApp } from '../../support/app.js';
import { buildTenant, type TestTenant } from '../../support/factories.js';
import { templateId } from '../../support/management.js';
import { oktaUser, scimClient } from '../../support/scim.js';

let seq = 0;

/** Active users over SCIM, cheaply: no key of their own. */
async function users(app: Express, t: TestTenant, n: number, patch: Record<string, unknown> = {}): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const created = await scimClient(app, t.scimToken).post('/Users', oktaUser(`bounded${++seq}-${Date.now()}@example.com`, { externalId: `bounded-${seq}` })).expect(201);
    if (Object.keys(patch).length) await request(app).patch(`/api/v1/users/${created.body.id}`).set(t.admin).send(patch).expect(200);
    ids.push(created.body.id);
  }
  return ids.sort();
}

describe('answers bounded by the request, not the tenant', () => {
  let app: Express;
  let t: TestTenant;
  before(async () => {
    app = await testApp();
    t = await buildTenant();
  });

  it("refuses to delete a held role template with a count and a bounded sample of its users", async () => {
    const tpl = await templateId(app, t, 'Read-only reviewer');
    const holders = await users(app, t, HOLDERS_SAMPLE + 3, { templateId: tpl });
    const res = await request(app).delete(`/api/v1/role-templates/${tpl}`).set(t.admin).expect(409);
    assert.equal(res.body.code, 'template_in_use');
    assert.equal(res.body.usersCount, HOLDERS_SAMPLE + 3);
    assert.match(res.body.detail, new RegExp(`used by ${HOLDERS_SAMPLE + 3} user`));
    assert.deepEqual(
      res.body.users.map((u: { id: string }) => u.id),
      holders.slice(0, HOLDERS_SAMPLE),
    );
    const detached = await request(app).delete(`/api/v1/role-templates/${tpl}`).query({ detach: true }).set(t.admin);
    assert.equal(detached.status, 204);
  });
});
